"""What a training run depends on: :class:`TrainConfig`, the presets, and the ``train`` flags.

One place declares a training option: its :class:`TrainConfig` field.  The field's metadata
(see :func:`option`) says whether it is a command-line flag and with what help text (the
default is appended from the same declaration), and whether ``--resume`` lets a new value
replace the run's own (``resume="new"``: hardware, the epoch count, NoGAN) or keeps the run's
(the default: everything that decides the weights).  :func:`add_arguments` builds the flags
from the fields and :meth:`TrainConfig.from_args` reads them back, so adding an option is one
field here (plus the code that uses it).

Torch-free on purpose: the command line builds its parser from this module on the base
install; only :meth:`TrainConfig.resolved` (called by training) asks the model registry.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from utils.errors import UserError

#: Preset values; ``None`` in a TrainConfig field means "take it from the preset".
PRESETS: dict[str, dict[str, Any]] = {
    # Like for like with the reference articles (Keras defaults): MSE, RMSprop lr 1e-3 with
    # Keras' rho 0.9 / eps 1e-7, batch 32, 30 epochs, full frames, no augmentation.
    "reference": dict(epochs=30, batch_size=32, lr=1e-3, loss="mse", optimizer="rmsprop", schedule="constant",
                      weight_decay=0.0, crop=None, hflip=False, dmg_aug=0.0, twin_prob=0.0, l_remap=0.0),
    # Our defaults: AdamW + warm-up/cosine, the model's preferred loss, crops, flips, DMG look
    # and real twins.  epochs=None: the schedule scales with the data (models.schedule.plan).
    "ours": dict(epochs=None, batch_size=32, lr=2e-3, loss=None, optimizer="adamw", schedule="cosine",
                 weight_decay=1e-4, crop=128, hflip=True, dmg_aug=0.25, twin_prob=0.25, l_remap=0.0),
}
#: NoGAN schedule: critic pre-training steps, then adversarial epochs at a lower lr.
GAN_CRITIC_STEPS = 200
GAN_EPOCHS = 1
GAN_LR_FACTOR = 0.1
GAN_WEIGHT = 0.01

_NO_DEFAULT_TEXT = object()


def option(default: Any = None, help: str | None = None, *, default_factory: Any = None, resume: str = "run",
           default_text: Any = _NO_DEFAULT_TEXT, **argparse_kwargs: Any) -> Any:
    """A :class:`TrainConfig` field declared once.

    ``help``: the flag's help text (no ``help``: not a command-line flag); ``(default: ...)`` is
    appended from ``default_text``, else from ``default``, unless the text already says it.
    ``resume``: ``"run"`` (the run's saved value wins on ``--resume``) or ``"new"`` (the value
    given now wins).  Other keyword arguments go to ``ArgumentParser.add_argument``.
    """
    meta = {"help": help, "resume": resume, "default_text": default_text, "argparse": argparse_kwargs}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything a run depends on.  ``None`` fields are filled from the preset by :meth:`resolved`."""

    arch: str = option("unet", "model name (see models.list_models)")
    data: list[Path] = option(default_factory=list, help="training frames", nargs="+", type=Path, required=True,
                              default_text=None)
    val: list[Path] | None = option(None, "validation frames", nargs="+", type=Path,
                                    default_text="hold out time blocks of --data")
    out: Path = option(Path("run"), "run folder (checkpoints, log.csv, plots)", resume="new", type=Path,
                       required=True, default_text=None)
    preset: str = option("ours", "reference: MSE, RMSprop lr 1e-3, batch 32, 30 epochs, as the articles",
                         choices=["ours", "reference"])
    epochs: int | None = option(None, "passes over the data", resume="new", type=int,
                                default_text="scaled to the data (at least ~2000 steps in all, with an early "
                                "stop) unless --steps-per-epoch is given (then 30); reference preset: 30")
    batch_size: int | None = option(None, "samples per step", type=int, default_text="the preset's, 32 for both")
    lr: float | None = option(None, "peak learning rate", type=float,
                              default_text="the preset's; ours 2e-3 AdamW cosine, reference 1e-3")
    loss: str | None = option(None, "loss", choices=["mse", "l1", "huber", "ce", "ce+l1"],
                              default_text="the arch's own; mse for the reference preset")
    optimizer: str | None = None
    schedule: str | None = None
    weight_decay: float | None = None
    crop: int | None = option(None, "random square crop for training (multiple of 8; 0: whole frames)", type=int,
                              default_text="the preset's: 128 (shrunk to small frames), reference: whole frames")
    hflip: bool | None = None
    dmg_aug: float | None = option(None, "probability of the 4-shade 'DMG look' augmentation", type=float,
                                   default_text="the preset's: 0.25, reference 0")
    twin_prob: float | None = option(None, "probability of feeding a frame's real monochrome twin as input, "
                                     "where it has one", type=float, default_text="the preset's: 0.25, reference 0")
    l_remap: float | None = option(None, "probability of an 'unknown palette' sample: L through a random monotone "
                                   "curve, true colours as target (an experiment for unseen games; see the README)",
                                   type=float, default_text="0 in both presets")
    #: Start from this checkpoint's weights (every tensor whose name and shape match): fine-tuning.
    init: Path | None = option(None, "start from this checkpoint's weights (fine-tuning; tensors whose name and "
                               "shape match)", type=Path, default_text=None)
    steps_per_epoch: int | None = option(None, "optimizer steps per epoch, at most one pass over the data "
                                         "(quick runs)", type=int,
                                         default_text="one pass; scaled to the data when --epochs is not given "
                                         "either")
    #: Stop when the validation mse_ab has not improved for this many epochs (0: never).
    patience: int | None = option(None, "stop when validation mse_ab has not improved for N epochs (0: never)",
                                  resume="new", type=int,
                                  default_text="with the data-scaled schedule a quarter of its epochs (at least "
                                  "5), else never")
    limit_per_game: int | None = option(None, "use at most N frames per game", type=int, default_text="all")
    #: Train on one group of games only: a genre model (the group's games must be in --data).
    genre: str | None = option(None, "train only on the games of this genre or cluster of --genres", default_text=None)
    genres: Path | None = option(None, "genres JSON (retrocolor dataset genres) that --genre names a group of",
                                 type=Path, default_text=None)
    val_fraction: float = option(0.1, "share of each game (its last frames in play order) held out without --val",
                                 type=float)
    val_gap: int = 2
    #: What validation (model selection) feeds the net: each frame's own L, or the real monochrome
    #: twin's L (only frames that have one): a monochrome specialist is picked on what it will see.
    val_input: str = option("L", "validation input: each frame's own L, or its real monochrome twin (frames that "
                            "have one): for a monochrome specialist", choices=["L", "twin"])
    seed: int = option(0, "seed of initialisation, data order and augmentation", type=int)
    device: str = option("auto", "auto, cpu, cuda, cuda:N", resume="new")
    amp: str = option("auto", "mixed precision (auto: on CUDA)", resume="new", choices=["auto", "on", "off"])
    workers: int = option(0, resume="new")
    resume: bool = option(False, "continue the run in --out exactly where it stopped", resume="new",
                          action="store_true", default_text=None)
    gan: bool = option(False, "NoGAN fine-tuning phase after the generator is trained", resume="new",
                       action="store_true", default_text=None)
    gan_critic_steps: int = option(GAN_CRITIC_STEPS, resume="new")
    gan_epochs: int = option(GAN_EPOCHS, resume="new")
    cache_dir: Path | None = option(None, "decoded-frame cache ('none': off)", resume="new",
                                    default_text="$RETROCOLOR_CACHE, else ~/.cache/retrocolor/frames")
    #: True when --crop was given (a preset's crop is shrunk to small frames, a given one is checked).
    crop_explicit: bool = False
    sample_frames: int = 8
    show_progress: bool = option(True, resume="new")

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
        else:
            kw["cache_dir"] = Path(kw["cache_dir"])
        kw["data"] = [Path(p) for p in kw.get("data", [])]
        if kw.get("val") is not None:
            kw["val"] = [Path(p) for p in kw["val"]]
        kw["out"] = Path(kw.get("out", "run"))
        if kw.get("init") is not None:
            kw["init"] = Path(kw["init"])
        if kw.get("genres") is not None:
            kw["genres"] = Path(kw["genres"])
        return cls(**kw)

    def resolved(self) -> TrainConfig:
        """A copy with preset values filled in and everything validated (UserError if bad)."""
        import models

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
            c.loss = models.entry(c.arch).loss
        checks = [
            (c.epochs is None or c.epochs >= 1, "--epochs must be at least 1"),
            (c.batch_size is not None and c.batch_size >= 1, "--batch-size must be at least 1"),
            (c.lr is not None and c.lr > 0, "--lr must be positive"),
            (c.crop is None or (c.crop >= 8 and c.crop % 8 == 0), "--crop must be a positive multiple of 8"),
            (0.0 <= float(c.dmg_aug or 0) <= 1.0, "--dmg-aug must be a probability in [0, 1]"),
            (0.0 <= float(c.twin_prob or 0) <= 1.0, "--twin-prob must be a probability in [0, 1]"),
            (0.0 <= float(c.l_remap or 0) <= 1.0, "--l-remap must be a probability in [0, 1]"),
            (c.steps_per_epoch is None or c.steps_per_epoch >= 1, "--steps-per-epoch must be at least 1"),
            (c.patience is None or c.patience >= 0, "--patience must be 0 (never stop early) or more"),
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
        if (c.genre is None) != (c.genres is None):
            raise UserError("--genre NAME and --genres FILE go together")
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


def resume_new_fields() -> set[str]:
    """Fields whose value given now replaces the run's own on ``--resume`` (``option(resume="new")``)."""
    return {f.name for f in fields(TrainConfig) if f.metadata.get("resume") == "new"}


def default_cache_dir() -> Path:
    """Where decoded frames are cached between runs: $RETROCOLOR_CACHE or the user cache dir."""
    from utils.fsio import user_path

    return user_path("RETROCOLOR_CACHE", "XDG_CACHE_HOME", ".cache", "frames")


def _help_text(f: Field[Any]) -> str:
    text = str(f.metadata["help"])
    shown = f.metadata["default_text"]
    if shown is _NO_DEFAULT_TEXT:
        shown = None if f.default is MISSING else f.default
    if shown is None or "default" in text:
        return text
    return f"{text} (default: {shown})"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``retrocolor train`` flags, one per :class:`TrainConfig` field that has ``help``.

    Every flag parses to ``None`` when absent, so :meth:`TrainConfig.from_args` keeps the
    field's own default: the default lives in one place.
    """
    for f in fields(TrainConfig):
        if not f.metadata.get("help"):
            continue
        kwargs = dict(f.metadata["argparse"])
        kwargs.setdefault("default", None)
        parser.add_argument("--" + f.name.replace("_", "-"), help=_help_text(f), **kwargs)
