"""``retrocolor train``: the training loop, read top-down: :func:`train` -> :func:`train_one_epoch`
-> :func:`validate` -> :func:`save_checkpoint`, once per epoch.

The pieces live beside it: the options and presets in :mod:`models.config`, the run length and
learning rate in :mod:`models.schedule`, the resume state in :mod:`models.state`, DDP in
:mod:`models.ddp`, the run folder (layout, log, curves) in :mod:`models.runfolder`, and the
optional NoGAN phase in :mod:`models.nogan`.

Exact resume: every epoch's order and augmentation come from a generator derived from
(seed, epoch) (``models.data.epoch_generator``), the learning rate is a pure function of the
global step, and the model, optimiser, scaler and RNG states are saved at each epoch's end.  So
"4 epochs" and "2 epochs, then --resume to 4" give bit-identical weights on CPU.  A kill loses
at most the epoch in progress.

Progress: a tqdm bar per epoch on a terminal; elsewhere (logs, CI, nohup) one line per epoch on
stderr with the train loss, validation metric, time and ETA.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import models
from dataset.color import denormalize_ab, l_ab_to_rgb, normalize_ab, normalize_l
from dataset.loader import FrameSet, find_game_folders, load_frames
from models import ddp, runfolder
from models.checkpoint import save_model
from models.config import PRESETS, TrainConfig, add_arguments, default_cache_dir
from models.data import Augment, TensorData, build_batch, epoch_generator, holdout_split, sample_params
from models.ddp import Dist
from models.metrics import frame_metrics
from models.schedule import Plan, lr_at, plan
from models.state import flatten_state, load_state, resume_config, rng_state, save_state, set_rng_state, unflatten_state
from utils.errors import UserError
from utils.geometry import NATIVE_H, NATIVE_W
from utils.progress import bars_enabled, progress

__all__ = ["PRESETS", "EpochEnd", "TrainConfig", "TrainResult", "add_arguments", "default_cache_dir",
           "flatten_state", "load_state", "save_state", "train", "train_one_epoch", "unflatten_state", "validate"]


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
    #: Set when the early stop ended the run: the epoch it stopped after.
    early_stop_epoch: int | None = None
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
        if self.early_stop_epoch is not None:
            lines.append(f"early stop after epoch {self.early_stop_epoch}: validation had not improved since epoch "
                         f"{self.best_epoch}")
        if self.stopped_early:
            lines.append("stopped before the last epoch; continue with --resume")
        lines.extend(self.notes)
        return "\n".join(lines)


@dataclass(frozen=True)
class EpochEnd:
    """What an ``on_epoch_end`` callback of :func:`train` sees after each checkpoint."""

    epoch: int
    epochs: int
    step: int
    train_loss: float
    val: dict[str, float]
    best_epoch: int
    seconds: float
    model: nn.Module


#: ``on_epoch_end(info) -> True`` stops the run after that epoch, as a kill would (resumable).
EpochCallback = Callable[[EpochEnd], "bool | None"]


# ------------------------------------------------------------------------- the pieces a run holds
@dataclass
class Amp:
    """Mixed precision: autocast on CUDA (bf16, or fp16 with a grad scaler), off on CPU by default."""

    device_type: str
    dtype: torch.dtype
    enabled: bool
    scaler: torch.amp.GradScaler

    @classmethod
    def for_device(cls, mode: str, device: torch.device) -> Amp:
        use_cuda = device.type == "cuda"
        on = mode == "on" or (mode == "auto" and use_cuda)
        dtype = torch.bfloat16 if (not use_cuda or torch.cuda.is_bf16_supported()) else torch.float16
        scaler = torch.amp.GradScaler("cuda", enabled=on and dtype == torch.float16 and use_cuda)
        return cls(device.type, dtype, on, scaler)

    def autocast(self) -> Any:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.enabled)


@dataclass(frozen=True)
class Batches:
    """How the training frames are cut into global batches and each rank's share of them."""

    frames: int
    size: int
    per_rank: int

    @classmethod
    def for_data(cls, frames: int, batch_size: int, d: Dist) -> Batches:
        """The global batch: split evenly over ranks; never larger than the data."""
        gbs = min(batch_size, frames)
        per_rank = max(1, gbs // d.world)
        gbs = per_rank * d.world
        if gbs > frames:
            raise UserError(f"{frames} training frames cannot fill one batch on {d.world} processes")
        return cls(frames, gbs, per_rank)

    def order(self, gen: torch.Generator, steps: int) -> torch.Tensor:
        """The epoch's frame order: one shuffled pass, or as many as ``steps`` batches need."""
        passes = max(1, -(-steps * self.size // self.frames))
        return torch.cat([torch.randperm(self.frames, generator=gen) for _ in range(passes)])

    def build(self, data: TensorData, idx: torch.Tensor, gen: torch.Generator, aug: Augment, d: Dist,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This rank's slice of the global batch ``idx``, augmented (augmentation drawn for the whole batch)."""
        params = sample_params(self.size, gen, aug, data.hw)
        mine = slice(d.rank * self.per_rank, (d.rank + 1) * self.per_rank)
        return build_batch(data, idx[mine], {k: v[mine] for k, v in params.items()}, aug, device)


class TrainForward(nn.Module):
    """Routes ``forward`` to ``model.forward_train`` so DDP's hooks see the training forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        ft = getattr(self.model, "forward_train", None)
        return ft(x) if ft is not None else {"ab": self.model(x)}


@dataclass
class Run:
    """Everything one training run holds; the loop's functions take it instead of long argument lists."""

    cfg: TrainConfig
    d: Dist
    device: torch.device
    model: nn.Module
    data: TensorData
    val: TensorData
    aug: Augment
    amp: Amp
    batches: Batches
    plan: Plan
    class_weights: torch.Tensor | None
    meta_base: dict[str, Any]
    cwd: str
    fwd: nn.Module
    opt: torch.optim.Optimizer
    sample_pick: np.ndarray
    step: int = 0
    start_epoch: int = 1
    best: dict[str, float] = field(default_factory=lambda: {"mse_ab": float("inf")})
    best_epoch: int = 0
    log_rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def out(self) -> Path:
        return self.cfg.out

    @property
    def quiet(self) -> bool | None:
        """tqdm's ``disable``: True hides the bars, None lets utils.progress decide (terminal or not)."""
        return None if (self.cfg.show_progress and self.d.main) else True

    @property
    def epoch_lines(self) -> bool:
        """One progress line per epoch on stderr where the bars are hidden (logs, CI)."""
        return self.cfg.show_progress and self.d.main and not bars_enabled()


# ------------------------------------------------------------------------- train
def train(cfg: TrainConfig, on_epoch_end: EpochCallback | None = None) -> TrainResult:
    """Train (or resume) a run; see the module docstring.  Returns the best validation figures.

    ``on_epoch_end`` is called after each epoch's checkpoint; returning True stops the run there
    (it can be continued with ``--resume``), e.g. to train in slices of a time budget.
    """
    cfg = cfg.resolved()
    restart = runfolder.check_run_folder(cfg)
    if restart is not None:
        cfg.resume = False
    d, device = ddp.init_dist(cfg.device)
    try:
        result = _train(cfg, d, device, on_epoch_end)
        if restart is not None:
            result.notes.insert(0, restart)
        return result
    finally:
        ddp.shutdown(d)


def _train(cfg: TrainConfig, d: Dist, device: torch.device, on_epoch_end: EpochCallback | None) -> TrainResult:
    state = load_state(cfg.out) if cfg.resume else None
    if state is not None:
        cfg = resume_config(cfg, state)
    r = _setup(cfg, d, device, state)
    if cfg.show_progress and d.main:
        print(r.plan.describe(r.batches.frames, r.batches.size), file=sys.stderr, flush=True)
    stopped, early_stop, ran = False, None, False
    durations: list[float] = []
    for epoch in range(r.start_epoch, r.plan.epochs + 1):
        if _patience_exhausted(r, epoch - 1):
            early_stop = epoch - 1
            break
        ran = True
        t0 = time.time()
        train_loss, lr = train_one_epoch(r, epoch)
        vm = _validate_main(r)
        _end_epoch(r, epoch, train_loss, lr, vm, time.time() - t0)
        durations.append(time.time() - t0)
        if r.epoch_lines:
            print(_epoch_line(r, epoch, train_loss, vm, durations), file=sys.stderr, flush=True)
        if on_epoch_end is not None:
            info = EpochEnd(epoch=epoch, epochs=r.plan.epochs, step=r.step, train_loss=train_loss, val=vm,
                            best_epoch=r.best_epoch, seconds=durations[-1], model=r.model)
            if on_epoch_end(info) and epoch < r.plan.epochs:
                stopped = True
                break

    gan_path = None
    if cfg.gan and not stopped and not ran and (r.out / "gan.safetensors").is_file():
        gan_path = r.out / "gan.safetensors"  # a finished run resumed with nothing left to do
    elif cfg.gan and not stopped:
        from models.nogan import nogan

        gan_path = nogan(r)
    return TrainResult(run=r.out, best_epoch=r.best_epoch, epochs=r.plan.epochs, best_val=r.best,
                       best_path=r.out / "best.safetensors", last_path=r.out / "last.safetensors", gan_path=gan_path,
                       stopped_early=stopped, early_stop_epoch=early_stop, notes=r.notes, main=d.main)


def _patience_exhausted(r: Run, epoch: int) -> bool:
    """Early stop: ``plan.patience`` epochs up to ``epoch`` without a better val mse_ab (rank 0 decides)."""
    if not r.plan.patience:
        return False
    return ddp.main_decides(r.d, epoch - r.best_epoch >= r.plan.patience, r.device)


def _end_epoch(r: Run, epoch: int, train_loss: float, lr: float, vm: dict[str, float], seconds: float) -> None:
    """Book-keeping after an epoch: best so far, log row, sample grid, checkpoint; all ranks wait."""
    improved = r.d.main and vm["mse_ab"] < r.best["mse_ab"]
    if improved:
        r.best, r.best_epoch = dict(vm), epoch
    r.log_rows.append({"epoch": epoch, "step": r.step, "phase": "generator", "train_loss": train_loss,
                       "val_loss": vm["loss"], "val_mse_ab": vm["mse_ab"], "val_acc10": vm["acc10"], "lr": lr,
                       "seconds": round(seconds, 3)})
    if r.d.main:
        from utils.images import write_png

        write_png(r.out / "samples" / f"epoch_{epoch:03d}.png", _sample_grid(r))
    save_checkpoint(r, epoch, "generator", vm, improved)
    ddp.barrier(r.d)


def _setup(cfg: TrainConfig, d: Dist, device: torch.device, state: dict[str, Any] | None) -> Run:
    """Seed, load the data, build the model, optimiser and precision, and restore a resumed state.

    The order of the random draws here is part of the exact-resume and fixed-seed contract.
    """
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % (2**32))
    random.seed(cfg.seed)
    train_fs, val_fs, holdout, notes = _load_sets(cfg)
    data = TensorData(train_fs, show_progress=cfg.show_progress and d.main)
    val = val_inputs(val_fs, cfg.val_input)
    games = list(train_fs.games)
    del train_fs

    model = models.create(cfg.arch, **models.entry(cfg.arch).data_kwargs(games))
    if state is None and cfg.init is not None:
        notes.append(_load_init(model, cfg.init))
    elif state is None and hasattr(model, "init_from_data"):
        # Data-dependent start (unet_lut: its lookup table begins as the mean ab per L level).
        model.init_from_data(data.L, data.ab)
    model = model.to(device)
    aug = Augment(crop=cfg.crop, hflip=bool(cfg.hflip), dmg_aug=float(cfg.dmg_aug or 0),
                  twin_prob=float(cfg.twin_prob or 0), l_remap=float(cfg.l_remap or 0))
    amp = Amp.for_device(cfg.amp, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    class_weights = _class_weights(cfg, model, data, device)
    batches = Batches.for_data(len(data), int(cfg.batch_size or 1), d)
    run_plan = plan(len(data), batches.size, cfg.epochs, cfg.steps_per_epoch, cfg.patience)
    fwd = ddp.wrap(d, TrainForward(model), device)
    opt = _make_optimizer(cfg, model.parameters())
    meta_base = _checkpoint_meta(cfg, holdout, games)
    r = Run(cfg=cfg, d=d, device=device, model=model, data=data, val=val, aug=aug, amp=amp, batches=batches,
            plan=run_plan, class_weights=class_weights, meta_base=meta_base, cwd=os.getcwd(), fwd=fwd, opt=opt,
            sample_pick=np.linspace(0, len(val) - 1, min(cfg.sample_frames, len(val))).round().astype(np.int64),
            notes=notes)
    if state is not None:
        _restore(r, state)
    model.train()
    if d.main:
        runfolder.prepare(cfg.out)
    return r


def _checkpoint_meta(cfg: TrainConfig, holdout: dict[str, Any] | None, games: list[str]) -> dict[str, Any]:
    """What every checkpoint JSON of this run records about its data and settings."""
    return {
        "data": [str(Path(p).resolve()) for p in cfg.data],
        "val": [str(Path(p).resolve()) for p in cfg.val] if cfg.val else None,
        "holdout": holdout,
        "limit_per_game": cfg.limit_per_game,
        "games": games,
        "loss": cfg.loss,
        "preset": cfg.preset,
        "config": cfg.to_json(),
    }


def _restore(r: Run, state: dict[str, Any]) -> None:
    """Continue from a saved state: weights, optimiser, scaler, RNGs, step, best and log."""
    try:
        r.model.load_state_dict(state["model"], strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise UserError(f"{r.out}/state.safetensors: weights do not match arch {r.cfg.arch!r} ({first})") from None
    r.opt.load_state_dict(state["optimizer"])
    if state.get("scaler"):
        r.amp.scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    r.start_epoch, r.step = int(state["epoch"]) + 1, int(state["step"])
    r.best, r.best_epoch, r.log_rows = dict(state["best"]), int(state["best_epoch"]), list(state["log"])


def train_one_epoch(r: Run, epoch: int) -> tuple[float, float]:
    """One epoch of optimizer steps; returns (mean train loss over the ranks, last learning rate)."""
    from models.losses import compute_loss

    steps, gbs = r.plan.steps_per_epoch, r.batches.size
    gen = epoch_generator(r.cfg.seed, epoch)
    order = r.batches.order(gen, steps)
    bar = progress(range(steps), desc=f"epoch {epoch}/{r.plan.epochs}", unit="step", disable=r.quiet)
    loss_sum, lr = 0.0, float(r.cfg.lr or 0)
    for s in bar:
        x, y, g = r.batches.build(r.data, order[s * gbs:(s + 1) * gbs], gen, r.aug, r.d, r.device)
        lr = lr_at(float(r.cfg.lr or 0), str(r.cfg.schedule), r.step, r.plan.total_steps)
        for group in r.opt.param_groups:
            group["lr"] = lr
        with r.amp.autocast():
            out = r.fwd(x)
        out = {k: (v.float() if torch.is_floating_point(v) else v) for k, v in out.items()}
        loss, _ = compute_loss(out, y, game=g, kind=str(r.cfg.loss), class_weights=r.class_weights)
        if not torch.isfinite(loss):
            raise UserError(f"training diverged at epoch {epoch} step {s} (loss {float(loss)}); lower --lr")
        r.opt.zero_grad(set_to_none=True)
        r.amp.scaler.scale(loss).backward()
        r.amp.scaler.step(r.opt)
        r.amp.scaler.update()
        r.step += 1
        loss_sum += float(loss.detach())
        if s % 10 == 0:
            bar.set_postfix(loss=f"{loss_sum / (s + 1):.4f}", lr=f"{lr:.2g}")
    bar.close()
    return ddp.all_mean(r.d, loss_sum / max(1, steps), r.device), lr


def validate(model: nn.Module, val: TensorData, loss_kind: str, device: torch.device,
             class_weights: torch.Tensor | None, amp: Amp, batch: int = 64) -> dict[str, float]:
    """Validation loss (the training loss) and metrics at full resolution, input = ``val.L``."""
    from models.losses import compute_loss

    model.eval()
    fwd = TrainForward(model)
    tot_loss, tot_mse, tot_acc, n = 0.0, 0.0, 0.0, 0
    with torch.no_grad():
        for s in range(0, len(val), batch):
            x = normalize_l(val.L[s:s + batch]).to(device)
            y = normalize_ab(val.ab[s:s + batch]).to(device)
            with amp.autocast():
                out = fwd(x)
            out = {k: (v.float() if torch.is_floating_point(v) else v) for k, v in out.items()}
            loss, _ = compute_loss(out, y, game=None, kind=loss_kind, class_weights=class_weights)
            k = x.shape[0]
            tot_loss += float(loss) * k
            pred = denormalize_ab(out["ab"].permute(0, 2, 3, 1).cpu().numpy())
            true = val.ab[s:s + batch].float().permute(0, 2, 3, 1).numpy()
            m = frame_metrics(pred, true)
            tot_mse += float(m["mse_ab"].sum())
            tot_acc += float(m["acc10"].sum())
            n += k
    model.train()
    return {"loss": tot_loss / n, "mse_ab": tot_mse / n, "acc10": tot_acc / n}


def _validate_main(r: Run) -> dict[str, float]:
    """Validation on rank 0 only (other ranks get zeros; only rank 0 logs and checkpoints)."""
    if not r.d.main:
        return {"loss": 0.0, "mse_ab": 0.0, "acc10": 0.0}
    return validate(r.model, r.val, str(r.cfg.loss), r.device, r.class_weights, r.amp)


def save_checkpoint(r: Run, epoch: int, phase: str, vm: dict[str, float], improved: bool) -> None:
    """Rank 0 writes log.csv, loss.png, last.* (best.* if ``improved``) and then the resume state."""
    if not r.d.main:
        return
    meta = {**r.meta_base, "epoch": epoch, "step": r.step, "phase": phase,
            "val_metrics": {k: vm[k] for k in ("loss", "mse_ab", "acc10")}}
    runfolder.write_log(r.out, r.log_rows)
    runfolder.plot(r.out, r.log_rows)
    save_model(r.out / "last", r.model, meta)
    if improved:
        save_model(r.out / "best", r.model, meta)
    st = {
        "arch": r.cfg.arch, "epoch": epoch, "step": r.step, "phase": phase, "config": r.cfg.to_json(),
        "cwd": r.cwd, "model": r.model.state_dict(), "optimizer": r.opt.state_dict(),
        "scaler": r.amp.scaler.state_dict() if r.amp.scaler.is_enabled() else None,
        "rng": rng_state(), "best": r.best, "best_epoch": r.best_epoch, "log": r.log_rows,
    }
    save_state(r.out, st)


def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _epoch_line(r: Run, epoch: int, train_loss: float, vm: dict[str, float], durations: list[float]) -> str:
    """``epoch 3/40: train loss 1.2345, val mse_ab 0.01234 (best 0.01200 @2), acc10 41.0%, 12.3 s, ETA 7m24s``."""
    eta = sum(durations) / len(durations) * (r.plan.epochs - epoch)
    return (f"epoch {epoch}/{r.plan.epochs}: train loss {train_loss:.4f}, val mse_ab {vm['mse_ab']:.5f} "
            f"(best {r.best['mse_ab']:.5f} @{r.best_epoch}), acc10 {100 * vm['acc10']:.1f}%, "
            f"{durations[-1]:.1f} s, ETA {_fmt_seconds(eta)}")


# ------------------------------------------------------------------------- setup helpers
def _class_weights(cfg: TrainConfig, model: nn.Module, data: TensorData,
                   device: torch.device) -> torch.Tensor | None:
    """Class-rebalancing weights over the ab bins for the classification losses (None otherwise)."""
    if cfg.loss not in ("ce", "ce+l1"):
        return None
    from models.losses import class_rebalance_weights

    pick = np.linspace(0, len(data) - 1, min(len(data), 256)).round().astype(np.int64)
    sample = normalize_ab(data.ab[torch.from_numpy(pick), :, ::4, ::4])
    return class_rebalance_weights(sample, getattr(model, "ab_bins", None)).to(device)


def _make_optimizer(cfg: TrainConfig, params: Any) -> torch.optim.Optimizer:
    lr, wd = float(cfg.lr or 0), float(cfg.weight_decay or 0)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7, weight_decay=wd)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd)
    return torch.optim.AdamW(params, lr=lr, weight_decay=wd)


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


#: Memory one 160x144 training frame takes, in bytes per pixel: the uint8 colour frame and twin
#: (4), the fp16 L, ab and twin-L tensors (8), and the stacking copy while loading (~2).
#: Measured: 34,487 corpus frames + 1,000 val frames peaked at 9.3 GB RSS (~11 B/px).
TRAIN_BYTES_PER_PIXEL = 14


def _available_memory() -> int | None:
    """MemAvailable in bytes (Linux), None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _check_memory(cfg: TrainConfig) -> None:
    """Refuse, in one line and before decoding anything, a run whose frames cannot fit in memory.

    Frames are held in memory for speed; a corpus of hundreds of games at a high
    ``--limit-per-game`` would otherwise be killed by the kernel half-way through loading.
    """
    from dataset.loader import count_frames

    avail = _available_memory()
    if avail is None:
        return
    n = (count_frames(cfg.data, cfg.limit_per_game, genre_games(cfg))
         + (count_frames(cfg.val, cfg.limit_per_game) if cfg.val else 0))
    per = NATIVE_W * NATIVE_H * TRAIN_BYTES_PER_PIXEL
    if n * per <= 0.85 * avail:
        return
    games = max(1, len(find_game_folders(cfg.data, genre_games(cfg))))
    fit = max(1, int(0.85 * avail / per / games))
    raise UserError(f"{n:,} frames need about {n * per / 2**30:.1f} GiB of memory to train on and "
                    f"{avail / 2**30:.1f} GiB is available; pass --limit-per-game {fit} (or fewer games)")


def genre_games(cfg: TrainConfig) -> list[str] | None:
    """The training games of ``--genre`` (None: every game of --data)."""
    if cfg.genre is None or cfg.genres is None:
        return None
    from dataset.genres import games_of, load_genres

    return games_of(load_genres(cfg.genres), cfg.genre)


def _load_sets(cfg: TrainConfig) -> tuple[FrameSet, FrameSet, dict[str, Any] | None, list[str]]:
    """Training and validation frames (UserError for bad folders) plus notes for the user."""
    notes: list[str] = []
    _check_memory(cfg)
    fs = load_frames(cfg.data, with_dmg=True, size=None, limit_per_game=cfg.limit_per_game, cache_dir=cfg.cache_dir,
                     show_progress=cfg.show_progress, games=genre_games(cfg))
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


def val_inputs(vs: FrameSet, mode: str = "L") -> TensorData:
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



def _sample_grid(r: Run) -> np.ndarray:
    """Rows input L / prediction / truth of a few fixed validation frames (RUN/samples/)."""
    from models.evaluate import image_grid, l_to_gray_rgb

    pick, val = r.sample_pick, r.val
    r.model.eval()
    with torch.no_grad():
        x = normalize_l(val.L[pick]).to(r.device)
        pred = denormalize_ab(r.model(x).float().cpu().permute(0, 2, 3, 1).numpy())
    r.model.train()
    L = val.L[pick, 0].float().numpy()
    ab = val.ab[pick].float().permute(0, 2, 3, 1).numpy()
    rows = [[l_to_gray_rgb(L[i]) for i in range(len(pick))],
            [l_ab_to_rgb(L[i], pred[i]) for i in range(len(pick))],
            [l_ab_to_rgb(L[i], ab[i]) for i in range(len(pick))]]
    return image_grid([("rows: input L / prediction / truth", rows)])
