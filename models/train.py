"""``retrocolor train``: data, augmentation, optimisation, checkpoints, exact resume, DDP, NoGAN.

Run folder layout (``--out RUN``)::

    RUN/last.safetensors + last.json     the model after the latest finished epoch
    RUN/best.safetensors + best.json     the model with the lowest validation mse_ab
    RUN/gan.safetensors  + gan.json      the generator after the NoGAN phase (--gan only)
    RUN/state.safetensors + state.json   optimiser, step, epoch, RNG states, log: what --resume needs
    RUN/log.csv, RUN/loss.png, RUN/samples/epoch_NNN.png

Exact resume: every epoch's order and augmentation come from a generator derived from
(seed, epoch) (``models.data.epoch_generator``), the learning rate is a pure function of the
global step, and the model, optimiser, scaler and RNG states are saved at each epoch's end.  So
"4 epochs" and "2 epochs, then --resume to 4" give bit-identical weights on CPU.  The state is
one safetensors file whose metadata carries the JSON skeleton (tensors in safetensors,
structure and scalars in JSON, never pickle); being one file, its atomic rename is the commit
point.  ``state.json`` is a readable copy.  A kill loses at most the epoch in progress.

DDP: launched by torchrun (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set), each rank takes its
slice of every *global* batch (``--batch-size`` is the global batch), gradients are averaged by
DDP (gloo on CPU, nccl on CUDA), and only rank 0 writes files.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

import models
from dataset.color import AB_SCALE, L_SCALE, l_ab_to_rgb
from dataset.loader import FrameSet, load_frames
from models.checkpoint import save_model
from models.data import Augment, TensorData, build_batch, epoch_generator, holdout_split, sample_params
from models.metrics import frame_metrics
from utils.errors import UserError
from utils.fsio import atomic_path, atomic_write_json, atomic_write_text
from utils.progress import progress

STATE_FORMAT = "retrocolor-train-state-1"
LOG_COLUMNS = ("epoch", "step", "phase", "train_loss", "val_loss", "val_mse_ab", "val_acc10", "lr", "seconds",
               "critic_loss")

#: Preset values; ``None`` in a TrainConfig field means "take it from the preset".
PRESETS: dict[str, dict[str, Any]] = {
    # Like for like with the reference articles (Keras defaults): MSE, RMSprop lr 1e-3 with
    # Keras' rho 0.9 / eps 1e-7, batch 32, 30 epochs, full frames, no augmentation.
    "reference": dict(epochs=30, batch_size=32, lr=1e-3, loss="mse", optimizer="rmsprop", schedule="constant",
                      weight_decay=0.0, crop=None, hflip=False, dmg_aug=0.0, twin_prob=0.0, l_remap=0.0),
    # Our defaults: AdamW + warm-up/cosine, the model's preferred loss, crops, flips, DMG look
    # and real twins.
    "ours": dict(epochs=30, batch_size=32, lr=2e-3, loss=None, optimizer="adamw", schedule="cosine",
                 weight_decay=1e-4, crop=128, hflip=True, dmg_aug=0.25, twin_prob=0.25, l_remap=0.0),
}
#: The loss each arch trains best with under the "ours" preset (others: mse).
PREFERRED_LOSS = {"unet": "ce+l1", "unet_small": "ce+l1", "unet_lut": "ce+l1", "unet_lut_fast": "ce+l1",
                  "fusion": "mse"}
#: NoGAN schedule: critic pre-training steps, then adversarial epochs at a lower lr.
GAN_CRITIC_STEPS = 200
GAN_EPOCHS = 1
GAN_LR_FACTOR = 0.1
GAN_WEIGHT = 0.01


@dataclass
class TrainConfig:
    """Everything a run depends on.  ``None`` fields are filled from the preset by :meth:`resolved`."""

    arch: str = "unet"
    data: list[Path] = field(default_factory=list)
    out: Path = Path("run")
    val: list[Path] | None = None
    preset: str = "ours"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    loss: str | None = None
    optimizer: str | None = None
    schedule: str | None = None
    weight_decay: float | None = None
    crop: int | None = None
    hflip: bool | None = None
    dmg_aug: float | None = None
    twin_prob: float | None = None
    l_remap: float | None = None
    #: Start from this checkpoint's weights (every tensor whose name and shape match): fine-tuning.
    init: Path | None = None
    steps_per_epoch: int | None = None
    limit_per_game: int | None = None
    val_fraction: float = 0.1
    val_gap: int = 2
    #: What validation (model selection) feeds the net: each frame's own L, or the real monochrome
    #: twin's L (only frames that have one): a monochrome specialist is picked on what it will see.
    val_input: str = "L"
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    workers: int = 0
    resume: bool = False
    gan: bool = False
    gan_critic_steps: int = GAN_CRITIC_STEPS
    gan_epochs: int = GAN_EPOCHS
    cache_dir: Path | None = None
    #: True when --crop was given (a preset's crop is shrunk to small frames, a given one is checked).
    crop_explicit: bool = False
    sample_frames: int = 8
    #: Stop after this epoch as if killed (tests of --resume; not a CLI flag).
    stop_after_epoch: int | None = None
    show_progress: bool = True

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> TrainConfig:
        """Build from the ``retrocolor train`` arguments (flags absent from the parser keep defaults)."""
        kw: dict[str, Any] = {}
        names = {f.name for f in fields(cls)}
        for k, v in vars(a).items():
            if k in names and v is not None:
                kw[k] = v
        if "cache_dir" in kw and str(kw["cache_dir"]).lower() in ("none", "off", ""):
            kw["cache_dir"] = None
        elif "cache_dir" not in kw:
            kw["cache_dir"] = default_cache_dir()
        kw["data"] = [Path(p) for p in kw.get("data", [])]
        if kw.get("val") is not None:
            kw["val"] = [Path(p) for p in kw["val"]]
        kw["out"] = Path(kw.get("out", "run"))
        if kw.get("init") is not None:
            kw["init"] = Path(kw["init"])
        return cls(**kw)

    def resolved(self) -> TrainConfig:
        """A copy with preset values filled in and everything validated (UserError if bad)."""
        if self.preset not in PRESETS:
            raise UserError(f"unknown preset {self.preset!r}; known: {', '.join(PRESETS)}")
        if self.arch not in models.list_models():
            raise UserError(f"unknown arch {self.arch!r}; known: {', '.join(models.list_models())}")
        c = TrainConfig(**{f.name: getattr(self, f.name) for f in fields(self)})
        c.crop_explicit = c.crop_explicit or self.crop is not None
        for k, v in PRESETS[self.preset].items():
            if getattr(c, k) is None:
                setattr(c, k, v)
        if c.crop == 0:  # --crop 0: whole frames
            c.crop = None
        if c.loss is None:
            c.loss = PREFERRED_LOSS.get(c.arch, "mse")
        checks = [
            (c.epochs is not None and c.epochs >= 1, "--epochs must be at least 1"),
            (c.batch_size is not None and c.batch_size >= 1, "--batch-size must be at least 1"),
            (c.lr is not None and c.lr > 0, "--lr must be positive"),
            (c.crop is None or (c.crop >= 8 and c.crop % 8 == 0), "--crop must be a positive multiple of 8"),
            (0.0 <= float(c.dmg_aug or 0) <= 1.0, "--dmg-aug must be a probability in [0, 1]"),
            (0.0 <= float(c.twin_prob or 0) <= 1.0, "--twin-prob must be a probability in [0, 1]"),
            (0.0 <= float(c.l_remap or 0) <= 1.0, "--l-remap must be a probability in [0, 1]"),
            (c.steps_per_epoch is None or c.steps_per_epoch >= 1, "--steps-per-epoch must be at least 1"),
            (c.limit_per_game is None or c.limit_per_game >= 1, "--limit-per-game must be at least 1"),
            (0.0 <= c.val_fraction < 1.0, "--val-fraction must be in [0, 1)"),
            (c.val_input in ("L", "twin"), "--val-input must be L or twin"),
            (c.optimizer in ("adamw", "rmsprop", "adam", "sgd"), f"unknown optimizer {c.optimizer!r}"),
            (c.schedule in ("constant", "cosine", "onecycle"), f"unknown schedule {c.schedule!r}"),
            (c.amp in ("auto", "on", "off"), "--amp must be auto, on or off"),
        ]
        for ok, msg in checks:
            if not ok:
                raise UserError(msg)
        from models.losses import LOSS_KINDS

        if c.loss not in LOSS_KINDS:
            raise UserError(f"unknown loss {c.loss!r}; known: {', '.join(LOSS_KINDS)}")
        if not c.data:
            raise UserError("no training data given (--data DIR)")
        return c

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict (paths as strings) for checkpoints and the state file."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, Path):
                d[k] = str(v)
            elif isinstance(v, list):
                d[k] = [str(x) for x in v]
        return d


def default_cache_dir() -> Path:
    """Where decoded frames are cached between runs: $RETROCOLOR_CACHE or the user cache dir."""
    env = os.environ.get("RETROCOLOR_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "retrocolor" / "frames"


@dataclass
class TrainResult:
    """What :func:`train` returns; ``str()`` is what the CLI prints."""

    run: Path
    best_epoch: int
    epochs: int
    best_val: dict[str, float]
    best_path: Path
    last_path: Path
    gan_path: Path | None = None
    stopped_early: bool = False
    notes: list[str] = field(default_factory=list)
    #: False on DDP ranks other than 0: they print nothing (rank 0 speaks for the run).
    main: bool = True

    def __str__(self) -> str:
        if not self.main:
            return ""
        v = self.best_val
        lines = [
            f"best epoch {self.best_epoch}/{self.epochs}: val mse_ab {v.get('mse_ab', float('nan')):.5f}, "
            f"acc10 {100 * v.get('acc10', float('nan')):.1f}%, val loss {v.get('loss', float('nan')):.4f}",
            f"best: {self.best_path}",
            f"last: {self.last_path}",
        ]
        if self.gan_path is not None:
            lines.append(f"gan:  {self.gan_path}")
        lines.append(f"log:  {self.run / 'log.csv'}  curves: {self.run / 'loss.png'}  samples: {self.run / 'samples'}")
        if self.stopped_early:
            lines.append("stopped before the last epoch; continue with --resume")
        lines.extend(self.notes)
        return "\n".join(lines)


# ------------------------------------------------------------------------- state (de)serialisation
def flatten_state(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """Turn nested state (dicts with any keys, lists, tuples, tensors, numpy arrays, scalars)
    into a JSON skeleton, moving tensors into ``tensors`` under dotted names (no pickle)."""
    if isinstance(obj, torch.Tensor):
        name = prefix
        tensors[name] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": name}
    if isinstance(obj, np.ndarray):
        name = prefix
        tensors[name] = torch.from_numpy(np.ascontiguousarray(obj.astype(np.int64) if obj.dtype == np.uint32 else obj))
        return {"__ndarray__": name, "dtype": str(obj.dtype)}
    if isinstance(obj, dict):
        return {"__map__": [[flatten_state(k, tensors, f"{prefix}.k{i}"), flatten_state(v, tensors, f"{prefix}.{i}")]
                            for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten_state(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten_state(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, torch.dtype):
        return {"__dtype__": str(obj).replace("torch.", "")}
    raise TypeError(f"cannot serialise {type(obj).__name__} in training state")


def unflatten_state(skel: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(skel, list):
        return [unflatten_state(v, tensors) for v in skel]
    if isinstance(skel, dict):
        if "__tensor__" in skel:
            return tensors[skel["__tensor__"]]
        if "__ndarray__" in skel:
            return tensors[skel["__ndarray__"]].numpy().astype(skel["dtype"])
        if "__map__" in skel:
            return {unflatten_state(k, tensors): unflatten_state(v, tensors) for k, v in skel["__map__"]}
        if "__tuple__" in skel:
            return tuple(unflatten_state(v, tensors) for v in skel["__tuple__"])
        if "__dtype__" in skel:
            return getattr(torch, skel["__dtype__"])
    return skel


def _rng_state() -> dict[str, Any]:
    st: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict[str, Any]) -> None:
    torch.set_rng_state(st["torch"].to(torch.uint8))
    np.random.set_state(tuple(st["numpy"]))  # type: ignore[arg-type]
    py = st["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.to(torch.uint8) for t in st["cuda"]])


def save_state(run: Path, state: dict[str, Any]) -> None:
    """Write RUN/state.safetensors (authoritative, JSON skeleton in its metadata) and state.json."""
    tensors: dict[str, torch.Tensor] = {}
    skel = flatten_state(state, tensors, "s")
    text = json.dumps({"format": STATE_FORMAT, "state": skel})
    with atomic_path(run / "state.safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"format": STATE_FORMAT, "skeleton": text})
    readable = {k: state[k] for k in ("arch", "epoch", "step", "phase", "best", "config") if k in state}
    atomic_write_json(run / "state.json", {"format": STATE_FORMAT, **readable,
                                           "note": "readable copy; --resume reads state.safetensors"})


def load_state(run: Path) -> dict[str, Any]:
    """Read RUN/state.safetensors; UserError if missing, truncated or not ours."""
    st = run / "state.safetensors"
    if not st.is_file():
        raise UserError(f"--resume: no training state in {run} (state.safetensors missing); start without --resume")
    try:
        from safetensors import safe_open

        with safe_open(str(st), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(st))
        doc = json.loads(meta.get("skeleton", ""))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"{st}: unreadable or truncated training state ({' '.join(str(e).split())[:120]})") from None
    if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
        raise UserError(f"{st}: not a retrocolor training state")
    try:
        return unflatten_state(doc["state"], tensors)
    except KeyError as e:
        raise UserError(f"{st}: inconsistent training state (missing tensor {e})") from None


# ------------------------------------------------------------------------- distributed helpers
@dataclass
class Dist:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def _init_dist(device_pref: str) -> tuple[Dist, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    want_cuda = device_pref.startswith("cuda") or (device_pref == "auto" and torch.cuda.is_available())
    if want_cuda and not torch.cuda.is_available():
        raise UserError(f"--device {device_pref}: CUDA is not available on this machine")
    if device_pref not in ("auto", "cpu") and not device_pref.startswith("cuda"):
        raise UserError(f"--device must be auto, cpu, cuda or cuda:N, got {device_pref!r}")
    if world > 1:
        import torch.distributed as dist

        if want_cuda:
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        else:
            device = torch.device("cpu")
        if not dist.is_initialized():
            dist.init_process_group("nccl" if want_cuda else "gloo")
        return Dist(rank, world, local), device
    if want_cuda:
        return Dist(), torch.device(device_pref if device_pref.startswith("cuda") else "cuda")
    return Dist(), torch.device("cpu")


def _barrier(d: Dist) -> None:
    if d.active:
        import torch.distributed as dist

        dist.barrier()


def _all_mean(d: Dist, value: float, device: torch.device) -> float:
    if not d.active:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / d.world


# ------------------------------------------------------------------------- pieces of the loop
class _TrainForward(nn.Module):
    """Routes ``forward`` to ``model.forward_train`` so DDP's hooks see the training forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        ft = getattr(self.model, "forward_train", None)
        return ft(x) if ft is not None else {"ab": self.model(x)}


def _lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """Learning rate as a pure function of the global step (so resume needs only the step)."""
    base = float(cfg.lr or 0)
    if cfg.schedule == "constant" or total <= 1:
        return base
    warm = max(1, int(0.05 * total))
    if step < warm:
        return base * (step + 1) / warm
    t = min(1.0, (step - warm) / max(1, total - warm))
    floor = 0.01 if cfg.schedule == "cosine" else 0.0001
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def _make_optimizer(cfg: TrainConfig, params: Any) -> torch.optim.Optimizer:
    lr, wd = float(cfg.lr or 0), float(cfg.weight_decay or 0)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7, weight_decay=wd)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd)
    return torch.optim.AdamW(params, lr=lr, weight_decay=wd)


def _arch_kwargs(arch: str, n_games: int) -> dict[str, Any]:
    """Constructor kwargs the training data decides: the game count for the fusion aux head."""
    if arch == "fusion" and n_games > 1:
        return {"num_games": n_games}
    return {}


def _load_init(model: nn.Module, path: Path) -> str:
    """Copy every tensor of checkpoint ``path`` whose name and shape match into ``model``.

    This is how a per-game model starts from the shipped default, or a slimmer arch from a
    trained bigger one; whatever does not match keeps its fresh initialisation.
    """
    from models.checkpoint import load_model

    src, meta = load_model(path)
    own = model.state_dict()
    picked = {k: v for k, v in src.state_dict().items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not picked:
        raise UserError(f"--init {path}: no weights fit arch {getattr(model, 'arch', '?')!r} "
                        f"(the checkpoint is {meta.get('arch')!r})")
    model.load_state_dict(picked, strict=False)
    return f"initialised {len(picked)} of {len(own)} tensors from {path} ({meta.get('arch')})"


def _load_sets(cfg: TrainConfig) -> tuple[FrameSet, FrameSet, dict[str, Any] | None, list[str]]:
    """Training and validation frames (UserError for bad folders) plus notes for the user."""
    notes: list[str] = []
    fs = load_frames(cfg.data, with_dmg=True, size=None, limit_per_game=cfg.limit_per_game, cache_dir=cfg.cache_dir,
                     show_progress=cfg.show_progress)
    for path, why in fs.skipped:
        notes.append(f"skipped unreadable file: {why if path in why else f'{path}: {why}'}")
    holdout = None
    if cfg.val:
        vs = load_frames(cfg.val, with_dmg=True, size=None, limit_per_game=cfg.limit_per_game, cache_dir=cfg.cache_dir,
                         show_progress=cfg.show_progress)
        for path, why in vs.skipped:
            notes.append(f"skipped unreadable validation file: {why if path in why else f'{path}: {why}'}")
        if vs.rgb.shape[1:] != fs.rgb.shape[1:]:
            raise UserError(f"validation frames are {vs.rgb.shape[2]}x{vs.rgb.shape[1]} but training frames are "
                            f"{fs.rgb.shape[2]}x{fs.rgb.shape[1]}")
        train_fs = fs
    elif cfg.val_fraction > 0:
        tr, va = holdout_split(fs, cfg.val_fraction, cfg.val_gap)
        if va.size == 0 or tr.size == 0:
            raise UserError(f"too few frames ({len(fs)}) to hold out {cfg.val_fraction:.0%} of each game for "
                            "validation; add frames or pass --val DIR")
        train_fs, vs = fs.subset(tr), fs.subset(va)
        holdout = {"fraction": cfg.val_fraction, "gap": cfg.val_gap}
    else:
        train_fs, vs = fs, fs
        notes.append("validation uses the training frames (--val-fraction 0): "
                     "its numbers measure fit, not generalisation")
    h, w = train_fs.rgb.shape[1:3]
    if h % 8 or w % 8:
        if cfg.crop is None:
            raise UserError(f"frames are {w}x{h}; sizes must be multiples of 8 for training: pass --crop N")
    if cfg.crop is not None and (cfg.crop > min(h, w)):
        if cfg.crop_explicit:
            raise UserError(f"--crop {cfg.crop} is larger than the frames ({w}x{h})")
        cfg.crop = min(h, w) - min(h, w) % 8
    return train_fs, vs, holdout, notes


def _val_inputs(vs: FrameSet, mode: str = "L") -> TensorData:
    """Validation tensors; ``mode="twin"`` keeps the frames with a monochrome twin and feeds its L."""
    if mode == "twin":
        if vs.has_dmg is None or not vs.has_dmg.any():
            raise UserError("--val-input twin: the validation frames have no monochrome twins (dmg/ folders)")
        vs = vs.subset(np.flatnonzero(vs.has_dmg))
    h, w = vs.rgb.shape[1:3]
    h8, w8 = h - h % 8, w - w % 8
    if (h8, w8) != (h, w):
        vs = FrameSet(rgb=np.ascontiguousarray(vs.rgb[:, :h8, :w8]), game=vs.game, names=vs.names, games=vs.games,
                      dmg=None if vs.dmg is None else np.ascontiguousarray(vs.dmg[:, :h8, :w8]), has_dmg=vs.has_dmg)
    data = TensorData(vs)
    if mode == "twin":
        assert data.twin_L is not None
        data.L = data.twin_L
    return data


def _validate(model: nn.Module, cfg: TrainConfig, val: TensorData, device: torch.device, class_weights: Any,
              autocast: Any, batch: int = 64) -> dict[str, float]:
    """Validation loss (the training loss) and metrics at full resolution, input = own L."""
    from models.losses import compute_loss

    model.eval()
    fwd = _TrainForward(model)
    tot_loss, tot_mse, tot_acc, n = 0.0, 0.0, 0.0, 0
    with torch.no_grad():
        for s in range(0, len(val), batch):
            x = (val.L[s:s + batch].float() / L_SCALE).to(device)
            y = (val.ab[s:s + batch].float() / AB_SCALE).to(device)
            with autocast():
                out = fwd(x)
            out = {k: (v.float() if torch.is_floating_point(v) else v) for k, v in out.items()}
            loss, _ = compute_loss(out, y, game=None, kind=str(cfg.loss), class_weights=class_weights)
            k = x.shape[0]
            tot_loss += float(loss) * k
            pred = out["ab"].permute(0, 2, 3, 1).cpu().numpy() * AB_SCALE
            true = val.ab[s:s + batch].float().permute(0, 2, 3, 1).numpy()
            m = frame_metrics(pred, true)
            tot_mse += float(m["mse_ab"].sum())
            tot_acc += float(m["acc10"].sum())
            n += k
    model.train()
    return {"loss": tot_loss / n, "mse_ab": tot_mse / n, "acc10": tot_acc / n}


def _val_main(d: Dist, *args: Any) -> dict[str, float]:
    """Validation on rank 0 only (other ranks get zeros; only rank 0 logs and checkpoints)."""
    return _validate(*args) if d.main else {"loss": 0.0, "mse_ab": 0.0, "acc10": 0.0}


def _sample_grid(model: nn.Module, val: TensorData, pick: np.ndarray, device: torch.device) -> np.ndarray:
    from models.evaluate import image_grid, l_to_gray_rgb

    model.eval()
    with torch.no_grad():
        x = (val.L[pick].float() / L_SCALE).to(device)
        pred = model(x).float().cpu().permute(0, 2, 3, 1).numpy() * AB_SCALE
    model.train()
    L = val.L[pick, 0].float().numpy()
    ab = val.ab[pick].float().permute(0, 2, 3, 1).numpy()
    rows = [[l_to_gray_rgb(L[i]) for i in range(len(pick))],
            [l_ab_to_rgb(L[i], pred[i]) for i in range(len(pick))],
            [l_ab_to_rgb(L[i], ab[i]) for i in range(len(pick))]]
    return image_grid([("rows: input L / prediction / truth", rows)])


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _write_log(run: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LOG_COLUMNS)
    for r in rows:
        w.writerow([_fmt(r.get(c)) for c in LOG_COLUMNS])
    atomic_write_text(run / "log.csv", buf.getvalue())


def _plot(run: Path, rows: list[dict[str, Any]]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # matplotlib is in the [train] extra; without it, no curves
        return
    ep = [r["epoch"] for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=80)
    a1.plot(ep, [r["train_loss"] for r in rows], "o-", label="train loss")
    a1.plot(ep, [r["val_loss"] for r in rows], "s-", label="val loss")
    a1.set_xlabel("epoch")
    a1.set_title("loss")
    a1.legend()
    a2.plot(ep, [r["val_mse_ab"] for r in rows], "o-", color="C2")
    a2.set_xlabel("epoch")
    a2.set_title("val mse_ab (ab/128)")
    for a in (a1, a2):
        a.grid(alpha=0.3)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.9, wspace=0.2)  # tight_layout: 3x slower
    with atomic_path(run / "loss.png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


#: What a run writes before its first training state exists (a kill in epoch 1 leaves some of these).
_FIRST_EPOCH_FILES = {"samples", "log.csv", "loss.png", "last.safetensors", "last.json", "best.safetensors",
                      "best.json"}


def _check_run_folder(cfg: TrainConfig) -> str | None:
    """Refuse a folder we must not write into; returns a note when ``--resume`` restarts from epoch 1.

    A run killed before its first checkpoint finished has no ``state.safetensors`` but is not
    empty (``samples/``, perhaps ``log.csv`` or ``last.*``): without this the user could neither
    ``--resume`` it nor start it again in the same folder.  Such a run is resumed from nothing.
    """
    out = cfg.out
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    if cfg.resume:
        if (out / "state.safetensors").is_file():
            return None
        others = [p.name for p in out.iterdir() if p.name not in _FIRST_EPOCH_FILES and not p.name.startswith(".")] \
            if out.is_dir() else ["(missing)"]
        if others:
            raise UserError(f"--resume: no training state in {out} (state.safetensors missing); start without --resume")
        return f"note: {out} had no finished checkpoint (stopped during epoch 1); started again from epoch 1"
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"--out {out} is not empty; pass --resume to continue that run or choose a new folder")
    return None


def _remove_stale_temps(run: Path) -> None:
    """Delete the temporary files of atomic writes that a killed run left (``.NAME.xxxx.tmp.EXT``)."""
    for folder in (run, run / "samples"):
        for p in folder.iterdir() if folder.is_dir() else ():
            if p.name.startswith(".") and ".tmp" in p.name and p.is_file():
                with contextlib.suppress(OSError):
                    p.unlink()


# ------------------------------------------------------------------------- train
def train(cfg: TrainConfig) -> TrainResult:
    """Train (or resume) a run; see the module docstring.  Returns the best validation figures."""
    cfg = cfg.resolved()
    restart = _check_run_folder(cfg)
    if restart is not None:
        cfg.resume = False
    dist_, device = _init_dist(cfg.device)
    try:
        result = _train(cfg, dist_, device)
        if restart is not None:
            result.notes.insert(0, restart)
        return result
    finally:
        if dist_.active:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def _train(cfg: TrainConfig, d: Dist, device: torch.device) -> TrainResult:  # noqa: C901 - one loop, read top-down
    from models.losses import class_rebalance_weights, compute_loss

    run = cfg.out
    run_cwd = os.getcwd()
    state: dict[str, Any] | None = None
    if cfg.resume:
        state = load_state(run)
        saved = state["config"]
        if saved.get("arch") != cfg.arch:
            raise UserError(f"--resume: {run} holds a {saved.get('arch')!r} run, not {cfg.arch!r} "
                            f"(pass --arch {saved.get('arch')})")
        # Relative paths are the run's own: resolved against the folder it was started from, so a
        # resume from elsewhere, or with the same folders written as absolute paths, is the same run.
        base = Path(state.get("cwd") or ".")
        same = lambda a, b: ([str((base / p).resolve()) for p in (a or [])]
                             == [str(Path(p).resolve()) for p in (b or [])])
        if not same(saved.get("data"), cfg.data) or not same(saved.get("val"), cfg.val):
            raise UserError(f"--resume: --data/--val differ from the run's ({', '.join(saved.get('data', []))})")
        # The run's own settings win; only the epoch count (to extend a run), the hardware
        # settings and the NoGAN phase (added to a finished generator run: the NoGAN recipe)
        # may change on resume.
        keep = {"epochs", "device", "amp", "workers", "resume", "show_progress", "stop_after_epoch", "cache_dir", "out",
                "gan", "gan_critic_steps", "gan_epochs"}
        merged = {**{k: v for k, v in saved.items() if k not in keep}, **{k: getattr(cfg, k) for k in keep}}
        merged["data"] = [Path(p) for p in cfg.data]  # the same folders (checked above), spelt for this cwd
        merged["val"] = [Path(p) for p in cfg.val] if cfg.val else None
        merged["out"] = Path(merged["out"])
        if merged.get("crop") is None and merged.get("crop_explicit"):
            merged["crop"] = 0  # the run asked for whole frames (--crop 0), not the preset's crop
        cfg = TrainConfig(**{k: merged[k] for k in (f.name for f in fields(TrainConfig)) if k in merged}).resolved()

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % (2**32))
    random.seed(cfg.seed)
    train_fs, val_fs, holdout, notes = _load_sets(cfg)
    data = TensorData(train_fs, show_progress=cfg.show_progress and d.main)
    val = _val_inputs(val_fs, cfg.val_input)
    games = list(train_fs.games)
    del train_fs

    model = models.create(cfg.arch, **_arch_kwargs(cfg.arch, len(games)))
    if state is None and cfg.init is not None:
        notes.append(_load_init(model, cfg.init))
    elif state is None and hasattr(model, "init_from_data"):
        # Data-dependent start (unet_lut: its lookup table begins as the mean ab per L level).
        model.init_from_data(data.L, data.ab)
    model = model.to(device)
    aug = Augment(crop=cfg.crop, hflip=bool(cfg.hflip), dmg_aug=float(cfg.dmg_aug or 0),
                  twin_prob=float(cfg.twin_prob or 0), l_remap=float(cfg.l_remap or 0))

    use_cuda = device.type == "cuda"
    amp_on = cfg.amp == "on" or (cfg.amp == "auto" and use_cuda)
    amp_dtype = torch.bfloat16 if (not use_cuda or torch.cuda.is_bf16_supported()) else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp_on and amp_dtype == torch.float16 and use_cuda)

    def autocast() -> Any:
        return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_on)

    if use_cuda:
        torch.backends.cudnn.benchmark = True

    class_weights = None
    if cfg.loss in ("ce", "ce+l1"):
        pick = np.linspace(0, len(data) - 1, min(len(data), 256)).round().astype(np.int64)
        sample = data.ab[torch.from_numpy(pick), :, ::4, ::4].float() / AB_SCALE
        class_weights = class_rebalance_weights(sample, getattr(model, "ab_bins", None)).to(device)

    # Global batch: split evenly over ranks; never larger than the data.
    n = len(data)
    gbs = min(int(cfg.batch_size or 1), n)
    per_rank = max(1, gbs // d.world)
    gbs = per_rank * d.world
    if gbs > n:
        raise UserError(f"{n} training frames cannot fill one batch on {d.world} processes")
    steps = n // gbs
    if cfg.steps_per_epoch:
        steps = min(steps, cfg.steps_per_epoch)
    total_steps = steps * int(cfg.epochs or 1)

    fwd: nn.Module = _TrainForward(model)
    if d.active:
        from torch.nn.parallel import DistributedDataParallel as DDP

        fwd = DDP(fwd, device_ids=[device.index] if use_cuda else None)
    opt = _make_optimizer(cfg, model.parameters())

    start_epoch, step, best, log_rows = 1, 0, {"mse_ab": float("inf")}, []
    best_epoch = 0
    if state is not None:
        try:
            model.load_state_dict(state["model"], strict=True)
        except RuntimeError as e:
            first = str(e).splitlines()[0]
            raise UserError(f"{run}/state.safetensors: weights do not match arch {cfg.arch!r} ({first})") from None
        opt.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        start_epoch, step = int(state["epoch"]) + 1, int(state["step"])
        best, best_epoch, log_rows = dict(state["best"]), int(state["best_epoch"]), list(state["log"])

    rng_pick = np.linspace(0, len(val) - 1, min(cfg.sample_frames, len(val))).round().astype(np.int64)
    meta_base = {
        "data": [str(Path(p).resolve()) for p in cfg.data],
        "val": [str(Path(p).resolve()) for p in cfg.val] if cfg.val else None,
        "holdout": holdout,
        "limit_per_game": cfg.limit_per_game,
        "games": games,
        "loss": cfg.loss,
        "preset": cfg.preset,
        "config": cfg.to_json(),
    }
    if d.main:
        run.mkdir(parents=True, exist_ok=True)
        (run / "samples").mkdir(exist_ok=True)
        _remove_stale_temps(run)

    def checkpoint(epoch: int, phase: str, vm: dict[str, float], improved: bool, extra_state: dict[str, Any]) -> None:
        if not d.main:
            return
        meta = {**meta_base, "epoch": epoch, "step": step, "phase": phase,
                "val_metrics": {k: vm[k] for k in ("loss", "mse_ab", "acc10")}}
        _write_log(run, log_rows)
        _plot(run, log_rows)
        save_model(run / "last", model, meta)
        if improved:
            save_model(run / "best", model, meta)
        st = {
            "arch": cfg.arch, "epoch": epoch, "step": step, "phase": phase, "config": cfg.to_json(),
            "cwd": run_cwd, "model": model.state_dict(), "optimizer": opt.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else None,
            "rng": _rng_state(), "best": best, "best_epoch": best_epoch, "log": log_rows, **extra_state,
        }
        save_state(run, st)

    stopped = False
    quiet = None if (cfg.show_progress and d.main) else True
    model.train()
    epochs = int(cfg.epochs or 1)
    for epoch in range(start_epoch, epochs + 1):
        t0 = time.time()
        gen = epoch_generator(cfg.seed, epoch)
        perm = torch.randperm(n, generator=gen)
        bar = progress(range(steps), desc=f"epoch {epoch}/{epochs}", unit="step", disable=quiet)
        loss_sum, lr = 0.0, float(cfg.lr or 0)
        for s in bar:
            idx = perm[s * gbs:(s + 1) * gbs]
            params = sample_params(gbs, gen, aug, data.hw)
            mine = slice(d.rank * per_rank, (d.rank + 1) * per_rank)
            x, y, g = build_batch(data, idx[mine], {k: v[mine] for k, v in params.items()}, aug, device)
            lr = _lr_at(cfg, step, total_steps)
            for group in opt.param_groups:
                group["lr"] = lr
            with autocast():
                out = fwd(x)
            out = {k: (v.float() if torch.is_floating_point(v) else v) for k, v in out.items()}
            loss, _ = compute_loss(out, y, game=g, kind=str(cfg.loss), class_weights=class_weights)
            if not torch.isfinite(loss):
                raise UserError(f"training diverged at epoch {epoch} step {s} (loss {float(loss)}); lower --lr")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            step += 1
            loss_sum += float(loss.detach())
            if s % 10 == 0:
                bar.set_postfix(loss=f"{loss_sum / (s + 1):.4f}", lr=f"{lr:.2g}")
        bar.close()
        train_loss = _all_mean(d, loss_sum / max(1, steps), device)
        vm = _val_main(d, model, cfg, val, device, class_weights, autocast)
        improved = d.main and vm["mse_ab"] < best["mse_ab"]
        if improved:
            best, best_epoch = dict(vm), epoch
        log_rows.append({"epoch": epoch, "step": step, "phase": "generator", "train_loss": train_loss,
                         "val_loss": vm["loss"], "val_mse_ab": vm["mse_ab"], "val_acc10": vm["acc10"], "lr": lr,
                         "seconds": round(time.time() - t0, 3)})
        if d.main:
            from utils.images import write_png

            write_png(run / "samples" / f"epoch_{epoch:03d}.png", _sample_grid(model, val, rng_pick, device))
        checkpoint(epoch, "generator", vm, improved, {})
        _barrier(d)
        if cfg.stop_after_epoch is not None and epoch >= cfg.stop_after_epoch and epoch < epochs:
            stopped = True
            break

    gan_path = None
    ran_epochs = start_epoch <= epochs
    if cfg.gan and not stopped and not ran_epochs and (run / "gan.safetensors").is_file():
        gan_path = run / "gan.safetensors"  # a finished run resumed with nothing left to do
    elif cfg.gan and not stopped:
        gan_path = _nogan(cfg, d, device, model, data, val, aug, gbs, per_rank, log_rows, autocast, class_weights,
                          meta_base, epochs)

    debug_dir = os.environ.get("RETROCOLOR_DDP_DEBUG_DIR")
    if debug_dir and d.active:
        Path(debug_dir).mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                  str(Path(debug_dir) / f"rank{d.rank}.safetensors"))
    return TrainResult(run=run, best_epoch=best_epoch, epochs=epochs, best_val=best, best_path=run / "best.safetensors",
                       last_path=run / "last.safetensors", gan_path=gan_path, stopped_early=stopped, notes=notes,
                       main=d.main)


# ------------------------------------------------------------------------- NoGAN
def _nogan(cfg: TrainConfig, d: Dist, device: torch.device, model: nn.Module, data: TensorData, val: TensorData,
           aug: Augment, gbs: int, per_rank: int, log_rows: list[dict[str, Any]], autocast: Any, class_weights: Any,
           meta_base: dict[str, Any], epochs: int) -> Path | None:
    """NoGAN (DeOldify): the generator is pre-trained (the normal run); pre-train a critic on
    real vs generated colour, then a short adversarial phase at a lower learning rate.

    Runs on rank 0's process group like the rest (DDP wraps the critic too); the generator after
    the adversarial phase is written to RUN/gan.*, leaving best.* as the pre-GAN generator.
    Not resumable mid-phase: a killed GAN phase is rerun from the generator checkpoint.
    """
    from models import gan
    from models.losses import compute_loss

    torch.manual_seed(cfg.seed + 1)
    critic = gan.PatchCritic().to(device)
    copt = torch.optim.Adam(critic.parameters(), lr=2e-4, betas=(0.5, 0.99))
    gopt = torch.optim.Adam(model.parameters(), lr=float(cfg.lr or 1e-3) * GAN_LR_FACTOR, betas=(0.5, 0.99))
    fwd: nn.Module = _TrainForward(model)
    if d.active:
        from torch.nn.parallel import DistributedDataParallel as DDP

        fwd = DDP(fwd, device_ids=[device.index] if device.type == "cuda" else None)

    def critic_step(loss: torch.Tensor) -> None:
        # The critic is not DDP-wrapped (gan.generator_loss calls it functionally); its
        # gradients are averaged by hand so every rank's copy stays identical.
        copt.zero_grad(set_to_none=True)
        loss.float().backward()
        if d.active:
            import torch.distributed as dist

            for p in critic.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= d.world
        copt.step()

    n = len(data)
    quiet = None if (cfg.show_progress and d.main) else True

    def batches(epoch_tag: int, count: int) -> Any:
        gen = epoch_generator(cfg.seed, 10_000 + epoch_tag)
        perm = torch.randperm(n, generator=gen)
        for s in range(count):
            j = s % max(1, n // gbs)
            idx = perm[j * gbs:(j + 1) * gbs]
            params = sample_params(gbs, gen, aug, data.hw)
            mine = slice(d.rank * per_rank, (d.rank + 1) * per_rank)
            yield build_batch(data, idx[mine], {k: v[mine] for k, v in params.items()}, aug, device)

    # 1. Critic pre-training against the frozen generator.
    t0 = time.time()
    c_sum, steps = 0.0, max(1, int(cfg.gan_critic_steps))
    if cfg.steps_per_epoch:
        steps = min(steps, cfg.steps_per_epoch)
    for x, y, _ in progress(batches(0, steps), total=steps, desc="critic", disable=quiet):
        with torch.no_grad(), autocast():
            fake = model(x).float()
        with autocast():
            loss = gan.critic_loss(critic, x, fake, y)
        critic_step(loss)
        c_sum += float(loss.detach())
    vm = _val_main(d, model, cfg, val, device, class_weights, autocast)
    c_mean = _all_mean(d, c_sum / steps, device)
    log_rows.append({"epoch": epochs + 1, "step": steps, "phase": "critic", "train_loss": None, "val_loss": vm["loss"],
                     "val_mse_ab": vm["mse_ab"], "val_acc10": vm["acc10"], "lr": 2e-4,
                     "seconds": round(time.time() - t0, 3), "critic_loss": c_mean})

    # 2. Short adversarial phase.
    gsteps = max(1, n // gbs)
    if cfg.steps_per_epoch:
        gsteps = min(gsteps, cfg.steps_per_epoch)
    for ge in range(1, int(cfg.gan_epochs) + 1):
        t0 = time.time()
        g_sum, c_sum = 0.0, 0.0
        for x, y, g in progress(batches(ge, gsteps), total=gsteps, desc=f"gan {ge}/{cfg.gan_epochs}",
                                disable=quiet):
            with autocast():
                out = fwd(x)
            out = {k: (v.float() if torch.is_floating_point(v) else v) for k, v in out.items()}
            rec, _ = compute_loss(out, y, game=g, kind=str(cfg.loss), class_weights=class_weights)
            with autocast():
                adv = gan.generator_loss(critic, x, out["ab"])
            gl = rec + GAN_WEIGHT * adv.float()
            gopt.zero_grad(set_to_none=True)
            gl.backward()
            gopt.step()
            with autocast():
                cl = gan.critic_loss(critic, x, out["ab"].detach(), y)
            critic_step(cl)
            g_sum += float(gl.detach())
            c_sum += float(cl.detach())
        vm = _val_main(d, model, cfg, val, device, class_weights, autocast)
        g_mean = _all_mean(d, g_sum / gsteps, device)
        log_rows.append({"epoch": epochs + 1 + ge, "step": gsteps, "phase": "gan", "train_loss": g_mean,
                         "val_loss": vm["loss"], "val_mse_ab": vm["mse_ab"], "val_acc10": vm["acc10"],
                         "lr": gopt.param_groups[0]["lr"], "seconds": round(time.time() - t0, 3),
                         "critic_loss": _all_mean(d, c_sum / gsteps, device)})
    if d.main:
        meta = {**meta_base, "epoch": epochs, "phase": "gan",
                "val_metrics": {k: vm[k] for k in ("loss", "mse_ab", "acc10")}}
        _write_log(cfg.out, log_rows)
        _plot(cfg.out, [r for r in log_rows if r.get("train_loss") is not None])
        save_model(cfg.out / "gan", model, meta)
    _barrier(d)
    return cfg.out / "gan.safetensors"
