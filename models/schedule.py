"""How long a run trains and at what learning rate: pure functions of sizes and the step.

:func:`plan` turns the flags into epochs and steps per epoch; :func:`lr_at` is the learning
rate as a pure function of the global step, so an exact resume needs only the step.  Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Epochs when --epochs is not given and the preset has none.
DEFAULT_EPOCHS = 30


@dataclass(frozen=True)
class Plan:
    """A run's length: ``epochs`` of ``steps_per_epoch`` steps."""

    epochs: int
    steps_per_epoch: int

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def plan(frames: int, batch: int, epochs: int | None = None, steps_per_epoch: int | None = None) -> Plan:
    """The run length for ``frames`` training frames in global batches of ``batch``: one pass per
    epoch capped by ``steps_per_epoch``, ``epochs`` (default ``DEFAULT_EPOCHS``) of them."""
    one_pass = max(1, frames // max(1, batch))
    steps = min(one_pass, steps_per_epoch) if steps_per_epoch else one_pass
    return Plan(epochs or DEFAULT_EPOCHS, steps)


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
