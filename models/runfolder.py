"""The run folder (``--out RUN``): which folders a run may write into, its log, curves and samples.

Layout::

    RUN/last.safetensors + last.json     the model after the latest finished epoch
    RUN/best.safetensors + best.json     the model with the lowest validation mse_ab
    RUN/gan.safetensors  + gan.json      the generator after the NoGAN phase (--gan only)
    RUN/state.safetensors + state.json   optimiser, step, epoch, RNG states, log: what --resume needs
    RUN/log.csv, RUN/loss.png, RUN/samples/epoch_NNN.png
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
from pathlib import Path
from typing import Any

from models.config import TrainConfig
from utils.errors import UserError
from utils.fsio import atomic_path, atomic_write_text

LOG_COLUMNS = ("epoch", "step", "phase", "train_loss", "val_loss", "val_mse_ab", "val_acc10", "lr", "seconds",
               "critic_loss")
#: What a run writes before its first training state exists (a kill in epoch 1 leaves some of these).
FIRST_EPOCH_FILES = {"samples", "log.csv", "loss.png", "last.safetensors", "last.json", "best.safetensors",
                     "best.json"}


def check_run_folder(cfg: TrainConfig) -> str | None:
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
        others = [p.name for p in out.iterdir() if p.name not in FIRST_EPOCH_FILES and not p.name.startswith(".")] \
            if out.is_dir() else ["(missing)"]
        if others:
            raise UserError(f"--resume: no training state in {out} (state.safetensors missing); start without --resume")
        return f"note: {out} had no finished checkpoint (stopped during epoch 1); started again from epoch 1"
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"--out {out} is not empty; pass --resume to continue that run or choose a new folder")
    return None


def prepare(run: Path) -> None:
    """Create the run folder and ``samples/``, and delete temporary files a killed run left."""
    run.mkdir(parents=True, exist_ok=True)
    (run / "samples").mkdir(exist_ok=True)
    remove_stale_temps(run)


def remove_stale_temps(run: Path) -> None:
    """Delete the temporary files of atomic writes that a killed run left (``.NAME.xxxx.tmp.EXT``)."""
    for folder in (run, run / "samples"):
        for p in folder.iterdir() if folder.is_dir() else ():
            if p.name.startswith(".") and ".tmp" in p.name and p.is_file():
                with contextlib.suppress(OSError):
                    p.unlink()


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def write_log(run: Path, rows: list[dict[str, Any]]) -> None:
    """RUN/log.csv: one row per epoch (and per NoGAN phase), columns :data:`LOG_COLUMNS`."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LOG_COLUMNS)
    for r in rows:
        w.writerow([_fmt(r.get(c)) for c in LOG_COLUMNS])
    atomic_write_text(run / "log.csv", buf.getvalue())


def plot(run: Path, rows: list[dict[str, Any]]) -> None:
    """RUN/loss.png: train/val loss and val mse_ab per epoch (nothing without matplotlib)."""
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
