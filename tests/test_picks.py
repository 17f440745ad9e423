"""Remembered colour schemes: a game told by its screens (realtime.picks), the picks file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from realtime import picks
from realtime.picks import MIN_WINDOWS, LiveRecall, PicksFile, fingerprint


def _game(seed: int, tiles: int = 48) -> np.ndarray:
    """A game's world: ``tiles`` random 8x8 shade patterns (0 = black .. 3 = white) on a fixed
    32x32-tile map, (256, 256) shades."""
    rng = np.random.default_rng(seed)
    tileset = rng.integers(0, 4, (tiles, 8, 8))
    return tileset[rng.integers(0, tiles, (32, 32))].transpose(0, 2, 1, 3).reshape(256, 256)


def _screen(world: np.ndarray, seed: int) -> np.ndarray:
    """A 144x160 view of the world at a random scroll (any pixel phase)."""
    y, x = np.random.default_rng(seed).integers(0, (256 - 144, 256 - 160))
    return world[y:y + 144, x:x + 160]


def test_a_later_session_of_a_game_is_recognised_and_another_game_is_not() -> None:
    a, b = _game(1), _game(2)
    games = {"a": (3, fingerprint([_screen(a, i) for i in range(30)])),
             "b": (5, fingerprint([_screen(b, i) for i in range(30)]))}
    for tileset, want in ((a, ("a", 3)), (b, ("b", 5))):
        rec = LiveRecall(games)
        for i in range(100, 110):              # screens the past session never showed, other scrolls
            rec.add(_screen(tileset, i))
        assert rec.matched == want
    stranger = LiveRecall(games)
    for i in range(10):
        stranger.add(_screen(_game(3), i))
    assert stranger.matched is None
    # a blank or near-blank screen (a title's few letters) is no evidence, even if every window is known
    few = LiveRecall(games)
    screen = np.full((144, 160), 3)
    screen[64:72, 72:88] = _screen(a, 100)[:8, :16]
    for _ in range(50):
        few.add(screen)
    assert len(few._seen) < MIN_WINDOWS and few.matched is None


def test_a_capped_fingerprint_compares_only_its_hash_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(picks, "MAX_WINDOWS", 400)
    a = _game(1)
    w = fingerprint([_screen(a, i) for i in range(40)])
    assert len(w) == 400 and np.all(np.diff(w.astype(np.int64)) > 0)
    rec = LiveRecall({"a": (2, w)})
    for i in range(100, 140):
        rec.add(_screen(a, i))
    assert rec.matched == ("a", 2)


def test_save_keeps_the_pick_with_the_screens_and_a_model_ending_forgets_it(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "picks.json"
    monkeypatch.setenv("RETROCOLOR_PICKS", str(path))
    sixteen = [f"game-{i}" for i in range(1, 17)]          # the game each scheme is the palette of

    def session() -> tuple[PicksFile, LiveRecall]:
        f = PicksFile("live", sixteen)
        return f, LiveRecall.load(f)

    a = _game(1)
    f, first = session()
    assert first.games == {}
    assert first.save(f, None, "mGBA") is None and not path.exists()      # nothing picked, nothing kept
    for i in range(30):
        first.add(_screen(a, i))
    assert first.save(f, 7, "mGBA") == "remembered"
    (key, entry), = json.loads(path.read_text())["games"].items()
    assert key.startswith("screens:") and entry["scheme"] == 7 and entry["game"] == "game-7"
    # the next session recognises it; C to 9 updates the same entry
    f, again = session()
    for i in range(50, 60):
        again.add(_screen(a, i))
    assert again.matched == (key, 7)
    assert again.save(f, 9, "mGBA") == "remembered"
    assert [e["game"] for e in json.loads(path.read_text())["games"].values()] == ["game-9"]
    # schemes are found by the game they come from: a rebuilt schemes file that moved it moves the pick,
    # one without it has no such pick
    assert LiveRecall.load(PicksFile("live", ["game-9", *sixteen[:8]])).games[key][0] == 1
    assert LiveRecall.load(PicksFile("live", sixteen[:8])).games == {}
    # a session of it that ends on the model forgets it
    f, last = session()
    for i in range(70, 80):
        last.add(_screen(a, i))
    assert last.matched == (key, 9) and last.save(f, None, "mGBA") == "forgot"
    assert json.loads(path.read_text())["games"] == {}
    # entries play keeps (no screens) and damaged ones are no live games
    path.write_text(json.dumps({"version": 1, "games": {"sha1:ab": {"scheme": 2, "game": "game-2"},
                                                         "screens:x": {"scheme": 2, "game": "game-2",
                                                                       "windows": "not base64!"}}}))
    assert session()[1].games == {}


def test_a_session_keeps_frames_evenly_without_growing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(picks, "KEEP_FRAMES", 8)
    rec = LiveRecall({})
    for i in range(100):
        rec.add(np.full((144, 160), i % 4))
    assert len(rec._frames) < 8 and rec._every >= 16
