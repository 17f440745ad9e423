"""A training set that cannot fit in memory is refused in one line, before any frame is decoded."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_game

pytest.importorskip("torch")

from models import train as train_mod  # noqa: E402
from models.config import TrainConfig  # noqa: E402
from utils.errors import UserError  # noqa: E402


def test_too_many_frames_for_memory_is_one_line_with_the_fix(tmp_path: Path, monkeypatch) -> None:
    for i in range(3):
        write_game(tmp_path / "data" / f"g{i}", 20, seed=i)
    per = 160 * 144 * train_mod.TRAIN_BYTES_PER_PIXEL
    monkeypatch.setattr(train_mod, "_available_memory", lambda: 30 * per)  # room for ~25 frames, not 60
    cfg = TrainConfig(arch="v0", data=[tmp_path / "data"], out=tmp_path / "run", epochs=1, steps_per_epoch=1)
    with pytest.raises(UserError, match=r"60 frames need about .* pass --limit-per-game 8 \(or fewer games\)"):
        train_mod.train(cfg)
    assert not (tmp_path / "run").exists()  # refused before anything was written
    # the suggested limit fits
    train_mod._check_memory(TrainConfig(arch="v0", data=[tmp_path / "data"], out=tmp_path / "run",  # noqa: SLF001
                                        limit_per_game=8))
