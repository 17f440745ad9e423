"""The learning-curve tools: packing a training set to move it, and drawing a share of its games."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import write_game

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from pack_frames import pack, unpack  # noqa: E402
from unseen import subset  # noqa: E402

from dataset.loader import load_frames  # noqa: E402
from utils.errors import UserError  # noqa: E402


def test_a_pack_unpacks_to_the_same_frames_twins_and_links(tmp_path: Path) -> None:
    """Same pixels, same twins, same names, and an oversampling link stays a link (packed once)."""
    src = tmp_path / "train"
    write_game(src / "alpha", 6, seed=1, twins=4)
    write_game(src / "beta", 5, seed=2, twins=0)
    (src / "shared1-alpha").symlink_to(src / "alpha", target_is_directory=True)
    doc = pack([src], tmp_path / "pack", limit=None, jobs=1)
    assert sorted(doc["games"]) == ["alpha", "beta"] and doc["links"] == {"shared1-alpha": "alpha"}
    assert unpack(tmp_path / "pack", tmp_path / "back", jobs=1) == 11
    assert (tmp_path / "back" / "shared1-alpha").is_symlink()
    a = load_frames([src], size=None, show_progress=False, cache_dir=None)
    b = load_frames([tmp_path / "back"], size=None, show_progress=False, cache_dir=None)
    assert a.names == b.names and a.games == b.games
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.dmg, b.dmg) and np.array_equal(a.has_dmg, b.has_dmg)
    assert int(b.has_dmg.sum()) == 8


def test_a_pack_keeps_only_the_first_frames_when_limited(tmp_path: Path) -> None:
    write_game(tmp_path / "train" / "alpha", 6, seed=1, twins=6)
    pack([tmp_path / "train"], tmp_path / "pack", limit=3, jobs=1)
    unpack(tmp_path / "pack", tmp_path / "back", jobs=1)
    assert sorted(p.name for p in (tmp_path / "back" / "alpha").glob("*.png")) == [f"s1_{i:07d}.png" for i in range(3)]
    with pytest.raises(UserError, match="not a pack"):
        unpack(tmp_path / "back", tmp_path / "x", jobs=1)


def test_a_subset_draws_games_and_keeps_a_games_links_together(tmp_path: Path) -> None:
    train = tmp_path / "train"
    for name in ["g0", "g1", "g2", "g3", "g4", "g5", "shared-foo"]:
        (train / name).mkdir(parents=True)
    for k in (1, 2):
        (train / f"shared{k}-foo").symlink_to(train / "shared-foo", target_is_directory=True)
    seen = set()
    for seed in range(6):
        doc = subset(train, tmp_path / f"s{seed}", fraction=3 / 7, seed=seed)
        names = {p.name for p in (tmp_path / f"s{seed}").iterdir()}
        assert len(doc["games"]) == 3 and doc["of"] == 7
        # the shared game's three folders come in or stay out together
        assert len(names & {"shared-foo", "shared1-foo", "shared2-foo"}) in (0, 3)
        assert len(names) == (5 if "shared-foo" in doc["games"] else 3)
        assert json.loads((tmp_path / f"s{seed}.json").read_text())["games"] == doc["games"]
        seen.add(tuple(doc["games"]))
    assert len(seen) > 1  # the seed draws the games
    assert subset(train, tmp_path / "again", fraction=3 / 7, seed=0)["games"] == list(
        json.loads((tmp_path / "s0.json").read_text())["games"])
    with pytest.raises(UserError, match="fraction"):
        subset(train, tmp_path / "bad", fraction=0, seed=0)


def test_a_subset_refuses_an_out_folder_that_holds_real_files(tmp_path: Path) -> None:
    """Rewriting a subset removes its old links; it must never delete what the user keeps there."""
    (tmp_path / "train" / "g0").mkdir(parents=True)
    keep = tmp_path / "mine" / "notes.txt"
    keep.parent.mkdir()
    keep.write_text("x")
    with pytest.raises(UserError, match="more than a subset"):
        subset(tmp_path / "train", tmp_path / "mine", fraction=1, seed=0)
    assert keep.read_text() == "x"
