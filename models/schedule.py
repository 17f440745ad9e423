"""How long a run trains and at what learning rate: pure functions of sizes and the step.

:func:`plan` turns the data size into epochs, steps per epoch and an early-stop patience when
the user gives neither ``--epochs`` nor ``--steps-per-epoch``.  A fixed "30 epochs of one pass"
gives a 66-frame game 30 optimizer steps in all (a model that has barely started) and a
5000-frame corpus 4500; a run should instead take enough steps to converge whatever the data
size, stop when validation stops improving, and see each frame many times under fresh random
crops.  Explicit flags always win, and when one of the two is given the other keeps its
classic meaning (one pass per epoch, or 30 epochs), so existing recipes are unchanged.

:func:`lr_at` is the learning rate as a pure function of the global step, so an exact resume
needs only the step.  Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: The data-scaled schedule takes at least this many optimizer steps in all.
MIN_TOTAL_STEPS = 2000
#: ... and epochs of at least this many steps (small data: an epoch is several passes).
MIN_EPOCH_STEPS = 50
#: Epochs of the classic schedule (and the least the scaled one runs, before an early stop).
DEFAULT_EPOCHS = 30
#: Early stop of the scaled schedule: this share of its epochs without a better val mse_ab ...
PATIENCE_SHARE = 0.25
#: ... but never fewer epochs than this.
MIN_PATIENCE = 5


@dataclass(frozen=True)
class Plan:
    """A run's length: ``epochs`` of ``steps_per_epoch`` steps, early stop after ``patience``
    epochs without improvement (0: never); ``auto`` when it was scaled to the data."""

    epochs: int
    steps_per_epoch: int
    patience: int
    auto: bool

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def describe(self, frames: int, batch: int) -> str:
        """One line for the user: what was chosen and why."""
        how = "scaled to the data" if self.auto else "as given"
        stop = f", early stop after {self.patience} epochs without improvement" if self.patience else ""
        passes = self.steps_per_epoch * batch / max(1, frames)
        return (f"schedule ({how}): {self.epochs} epochs x {self.steps_per_epoch} steps of {batch} "
                f"= {self.total_steps} steps, {passes:.2g} passes over {frames} frames per epoch{stop}")


def plan(frames: int, batch: int, epochs: int | None = None, steps_per_epoch: int | None = None,
         patience: int | None = None) -> Plan:
    """The run length for ``frames`` training frames in global batches of ``batch``.

    * neither ``epochs`` nor ``steps_per_epoch``: scaled to the data: epochs of
      ``max(one pass, MIN_EPOCH_STEPS)`` steps, at least ``DEFAULT_EPOCHS`` of them and at least
      ``MIN_TOTAL_STEPS`` steps in all, early stop after ``max(MIN_PATIENCE, PATIENCE_SHARE *
      epochs)`` epochs without improvement;
    * otherwise the classic schedule: one pass per epoch capped by ``steps_per_epoch``,
      ``epochs`` (default ``DEFAULT_EPOCHS``), no early stop.

    ``patience`` (0: never) overrides the early stop in both cases.
    """
    one_pass = max(1, frames // max(1, batch))
    if epochs is None and steps_per_epoch is None:
        steps = max(one_pass, MIN_EPOCH_STEPS)
        n_epochs = max(DEFAULT_EPOCHS, math.ceil(MIN_TOTAL_STEPS / steps))
        auto_patience = max(MIN_PATIENCE, math.ceil(PATIENCE_SHARE * n_epochs))
        return Plan(n_epochs, steps, auto_patience if patience is None else patience, auto=True)
    steps = min(one_pass, steps_per_epoch) if steps_per_epoch else one_pass
    return Plan(epochs or DEFAULT_EPOCHS, steps, patience or 0, auto=False)


def lr_at(base: float, schedule: str, step: int, total: int) -> float:
    """Learning rate at global ``step`` of ``total``: constant, or 5% linear warm-up then a
    cosine decay to 1% (``cosine``) or 0.01% (``onecycle``) of ``base``."""
    if schedule == "constant" or total <= 1:
        return base
    warm = max(1, int(0.05 * total))
    if step < warm:
        return base * (step + 1) / warm
    t = min(1.0, (step - warm) / max(1, total - warm))
    floor = 0.01 if schedule == "cosine" else 0.0001
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))
