"""Remembered colour schemes: a game told by its screens (realtime.picks), the picks file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from realtime import picks
from realtime.picks import LiveRecall, PicksFile, fingerprint


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


def _play(rec: LiveRecall, screens: list[np.ndarray], start: float = 0.0, fps: float = 2.0) -> float:
    """Feed ``screens`` as live does, one every 1/fps s from ``start``; the time after the last."""
    for i, s in enumerate(screens):
        rec.add(s, start + i / fps)
    return start + len(screens) / fps


def _splash(step: int) -> np.ndarray:
    """A sponsor's logo that several games open with, fading in: step 0..3 lightens it."""
    logo = np.full((144, 160), 3)
    art = np.random.default_rng(99).integers(0, 4, (64, 96))
    logo[40:104, 32:128] = np.minimum(art + (3 - step), 3)
    return logo


def _twice(screens: list[np.ndarray]) -> np.ndarray:
    """The windows a session of ``screens`` counts (and keeps): those at least two of them show."""
    seen = np.concatenate([np.unique(picks._kept(s)) for s in screens])
    h, n = np.unique(seen, return_counts=True)
    return h[n >= 2]


def _games(**worlds: np.ndarray) -> dict[str, tuple[int, np.ndarray, bool]]:
    return {k: (i + 1, fingerprint([_screen(w, j) for j in range(30)]), False)
            for i, (k, w) in enumerate(worlds.items())}


def test_a_later_session_of_a_game_is_recognised_and_another_game_is_not() -> None:
    a, b = _game(1), _game(2)
    games = _games(a=a, b=b)
    for world, want in ((a, ("a", 1)), (b, ("b", 2))):
        rec = LiveRecall(games)
        _play(rec, [_screen(world, i) for i in range(100, 120)])   # screens the past session never showed
        assert rec.matched == want
    stranger = LiveRecall(games)
    _play(stranger, [_screen(_game(3), i) for i in range(20)])
    assert stranger.matched is None
    # near-blank screens (a title's few letters) are no evidence, even when every window is known:
    # here the remembered game showed exactly these screens
    rng = np.random.default_rng(5)
    blanks = []
    for i in range(2):
        screen = np.full((144, 160), 3)
        screen[8 * i:8 * i + 8, 16:32] = rng.integers(0, 3, (8, 16))
        blanks.append(screen)
    few = LiveRecall({"t": (1, fingerprint(blanks), False)})
    _play(few, [b for b in blanks for _ in range(2)], fps=0.2)        # each twice (a window counts once
    # a second frame shows it), 5 s apart
    assert 0 < len(few._seen) < picks.MIN_WINDOWS and few.matched is None


def test_a_splash_two_games_share_decides_nothing_until_their_own_screens() -> None:
    """Games that open on the same logo fading in: at 60 fps that is several frames of new windows
    within a second, all in the remembered game's fingerprint."""
    a, c = _game(1), _game(4)
    games = {"a": (1, fingerprint([_splash(k) for k in range(4)] + [_screen(a, j) for j in range(30)]), False)}
    fade = [_splash(k) for k in range(4) for _ in range(4)]         # 16 frames at 60 fps: a quarter second
    other = LiveRecall(games)
    t = _play(other, fade, fps=60.0)
    assert other.matched is None                                     # the splash alone decides nothing
    _play(other, [_splash(3)] * 60, start=t, fps=60.0)               # held for a second: still nothing new
    _play(other, [_screen(c, i) for i in range(20)], start=t + 1.0)  # then its own screens
    assert other.matched is None
    same = LiveRecall(games)
    t = _play(same, fade, fps=60.0)
    _play(same, [_screen(a, i) for i in range(100, 120)], start=t)
    assert same.matched == ("a", 1)


def test_a_capped_fingerprint_compares_only_its_hash_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(picks, "MAX_WINDOWS", 400)
    a = _game(1)
    w = fingerprint([_screen(a, i) for i in range(40)])
    assert len(w) == 400 and np.all(np.diff(w.astype(np.int64)) > 0)
    rec = LiveRecall({"a": (2, w, True)})
    _play(rec, [_screen(a, i) for i in range(100, 140)])
    assert rec.matched == ("a", 2)
    uncapped = LiveRecall({"a": (2, w, False)})                      # read as whole, it is a stranger
    _play(uncapped, [_screen(a, i) for i in range(100, 140)])
    assert uncapped.matched is None
    # a session that showed more keeps the lowest and says it was capped, so the next one reads it so
    monkeypatch.setenv("RETROCOLOR_PICKS", str(tmp_path / "picks.json"))
    f = PicksFile("live", ["g1", "g2"])
    first = LiveRecall.load(f)
    _play(first, [_screen(a, i) for i in range(40)])
    assert first.save(f, 2, "mGBA") == "remembered"
    ((_, again_w, capped),) = LiveRecall.load(PicksFile("live", ["g1", "g2"])).games.values()
    assert capped and len(again_w) == 400


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
    screens = [_screen(a, i) for i in range(30)]
    _play(first, screens)
    assert first.save(f, 7, "mGBA") == "remembered"
    (key, entry), = json.loads(path.read_text())["games"].items()
    assert key.startswith("screens:") and entry["scheme"] == 7 and entry["game"] == "game-7"
    assert entry["hash"] == picks.HASH_ID and entry["capped"] is False
    # every window two looked-at screens showed is in the print, not a sample of frames
    assert np.array_equal(picks._decode(entry["windows"]), _twice(screens))
    # the next session recognises it; C to 9 updates the same entry, its screens added
    f, again = session()
    _play(again, [_screen(a, i) for i in range(50, 70)])
    assert again.matched == (key, 7)
    assert again.save(f, 9, "mGBA") == "remembered"
    (entry,) = json.loads(path.read_text())["games"].values()
    assert entry["game"] == "game-9"
    both = np.union1d(_twice(screens), _twice([_screen(a, i) for i in range(50, 70)]))
    assert np.array_equal(picks._decode(entry["windows"]), both)
    # schemes are found by the game they come from: a rebuilt schemes file that moved it moves the pick,
    # one without it has no such pick (and says so)
    assert LiveRecall.load(PicksFile("live", ["game-9", *sixteen[:8]])).games[key][0] == 1
    assert LiveRecall.load(PicksFile("live", sixteen[:8])).games == {}
    # a session that opened like it and went on to another game's screens is kept apart: its pick
    # does not replace that game's, nor its windows join that game's
    f, alike = session()
    t = _play(alike, [_screen(a, i) for i in range(90, 105)])
    assert alike.matched == (key, 9)
    _play(alike, [_screen(_game(6), i) for i in range(60)], start=t)
    assert alike.save(f, 5, "mGBA") == "remembered"
    kept = json.loads(path.read_text())["games"]
    assert len(kept) == 2 and kept[key]["scheme"] == 9 and np.array_equal(picks._decode(kept[key]["windows"]), both)
    path.write_text(json.dumps({"version": 1, "games": {key: kept[key]}}))
    # a session of it that ends on the model forgets it
    f, last = session()
    _play(last, [_screen(a, i) for i in range(70, 90)])
    assert last.matched == (key, 9) and last.save(f, None, "mGBA") == "forgot"
    assert json.loads(path.read_text())["games"] == {}
    # entries play keeps (no screens), damaged ones and ones made with other window hashes are no live games
    ok = {"scheme": 2, "game": "game-2", "hash": picks.HASH_ID, "windows": picks._encode(fingerprint(screens))}
    path.write_text(json.dumps({"version": 1, "games": {
        "sha1:ab": {"scheme": 2, "game": "game-2"}, "screens:x": {**ok, "windows": "not base64!"},
        "screens:y": {**ok, "hash": "00000000"}, "screens:z": ok}}))
    assert list(session()[1].games) == ["screens:z"]


def test_the_file_keeps_the_latest_live_games(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETROCOLOR_PICKS", str(tmp_path / "picks.json"))
    monkeypatch.setattr(picks, "MAX_GAMES", 2)
    stamps = iter(f"2026-12-06 10:00:0{i}" for i in range(9))
    monkeypatch.setattr(picks.time, "strftime", lambda fmt, *a: next(stamps) if " " in fmt else "x")
    keys = []
    for seed in (1, 2, 3):
        f = PicksFile("live", ["g"])
        rec = LiveRecall.load(f)
        _play(rec, [_screen(_game(seed), i) for i in range(10)])
        assert rec.save(f, 1, "mGBA") == "remembered"
        keys.append(next(k for k in json.loads(f.path.read_text())["games"] if k not in keys))
    assert sorted(json.loads(f.path.read_text())["games"]) == sorted(keys[1:])   # the oldest went


def test_frames_closer_than_the_rate_are_not_looked_at() -> None:
    a = _game(1)
    rec = LiveRecall(_games(a=a))
    _play(rec, [_screen(a, i) for i in range(100, 160)], fps=60.0)  # one second at 60 fps
    assert rec.matched is None and len(rec._seen) < len(_twice([_screen(a, i) for i in range(100, 160)]))
