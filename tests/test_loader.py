"""dataset.loader: every data-folder shape, DMG twins, bad files and the decode cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import make_game_frames, twin_of, write_game

from dataset import loader
from dataset.loader import find_game_folders, load_frames
from utils.errors import UserError
from utils.images import write_png


def test_shapes_plain_extracted_and_folder_of_games(tmp_path: Path) -> None:
    write_game(tmp_path / "plain", 2)
    ext = tmp_path / "extracted"
    write_game(ext / "frames", 2, seed=1)
    (ext / "manifest.jsonl").write_text("{}\n")
    root = tmp_path / "genre"
    write_game(root / "alpha", 2, twins=1)
    write_game(root / "beta" / "frames", 1)
    (root / "notes").mkdir()  # a sub-folder without frames is not a game

    [g] = find_game_folders([tmp_path / "plain"])
    assert (g.name, g.frames, g.dmg) == ("plain", tmp_path / "plain", None)
    [g] = find_game_folders([ext])
    assert (g.name, g.frames) == ("extracted", ext / "frames")
    [g] = find_game_folders([ext / "frames"])  # pointing at DIR/frames names the game DIR
    assert g.name == "extracted"
    gs = find_game_folders([root])
    assert [g.name for g in gs] == ["alpha", "beta"]
    assert gs[0].dmg == root / "alpha" / "dmg" and gs[1].frames == root / "beta" / "frames"
    assert [g.name for g in find_game_folders([root, tmp_path / "plain"])] == ["alpha", "beta", "plain"]


def test_find_game_folders_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        find_game_folders([tmp_path / "nope"])
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        find_game_folders([tmp_path / "file.txt"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no frames found"):
        find_game_folders([tmp_path / "empty"])
    with pytest.raises(UserError, match="no data folder"):
        find_game_folders([])
    write_game(tmp_path / "a" / "same", 1)
    write_game(tmp_path / "b" / "same", 1)
    with pytest.raises(UserError, match="share the game name 'same'"):
        find_game_folders([tmp_path / "a" / "same", tmp_path / "b" / "same"])


def test_load_frames_with_dmg_twins(tmp_path: Path) -> None:
    fa = write_game(tmp_path / "g" / "alpha", 4, seed=0, twins=2)
    fb = write_game(tmp_path / "g" / "beta", 3, seed=1)
    fs = load_frames([tmp_path / "g"], show_progress=False)
    assert len(fs) == 7 and fs.games == ["alpha", "beta"]
    assert np.array_equal(fs.rgb, np.concatenate([fa, fb]))
    assert fs.game.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert fs.names[0] == "alpha/s1_0000000.png" and fs.names[-1] == "beta/s1_0000002.png"
    assert fs.has_dmg.tolist() == [True, True, False, False, False, False, False]
    assert np.array_equal(fs.dmg[0], twin_of(fa[0])) and np.array_equal(fs.dmg[1], twin_of(fa[1]))
    assert not fs.dmg[2:].any()
    assert set(np.unique(fs.dmg[:2]).tolist()) <= {0, 85, 170, 255}
    sub = fs.subset([1, 5])
    assert sub.names == ["alpha/s1_0000001.png", "beta/s1_0000001.png"] and sub.has_dmg.tolist() == [True, False]
    no = load_frames([tmp_path / "g"], with_dmg=False, show_progress=False, limit_per_game=2)
    assert no.dmg is None and no.has_dmg is None and len(no) == 4


def test_corrupt_png_is_skipped_and_reported(tmp_path: Path) -> None:
    write_game(tmp_path / "g", 3)
    good = (tmp_path / "g" / "s1_0000001.png").read_bytes()
    (tmp_path / "g" / "s1_0000001.png").write_bytes(good[: len(good) // 2])  # truncated
    (tmp_path / "g" / "s1_0000009.png").write_bytes(b"not a png at all")
    fs = load_frames([tmp_path / "g"], show_progress=False)
    assert len(fs) == 2 and [n.split("/")[1] for n in fs.names] == ["s1_0000000.png", "s1_0000002.png"]
    reported = sorted(Path(p).name for p, _ in fs.skipped)
    assert reported == ["s1_0000001.png", "s1_0000009.png"]
    assert all(reason for _, reason in fs.skipped)


def test_only_corrupt_files_is_user_error(tmp_path: Path) -> None:
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "x.png").write_bytes(b"garbage")
    with pytest.raises(UserError, match="no readable frames"):
        load_frames([tmp_path / "g"], show_progress=False)


def test_mixed_sizes_are_a_user_error(tmp_path: Path) -> None:
    write_game(tmp_path / "g" / "a", 2)
    write_game(tmp_path / "g" / "b", 1, w=80, h=72)
    with pytest.raises(UserError, match="mixed sizes"):
        load_frames([tmp_path / "g"], show_progress=False, size=None)
    with pytest.raises(UserError, match="80x72"):
        load_frames([tmp_path / "g" / "b"], show_progress=False)  # default size is native 160x144
    fs = load_frames([tmp_path / "g" / "b"], show_progress=False, size=None)
    assert fs.rgb.shape == (1, 72, 80, 3)


def test_cache_reload_is_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_game(tmp_path / "g", 5, twins=3)
    (tmp_path / "g" / "s1_0000099.png").write_bytes(b"broken")
    cache = tmp_path / "cache"
    a = load_frames([tmp_path / "g"], cache_dir=cache, show_progress=False)
    files = list(cache.glob("frames-*.npz"))
    assert len(files) == 1

    def no_decoding(*_a: object, **_k: object) -> None:
        raise AssertionError("a cached load must not decode PNGs")

    monkeypatch.setattr(loader, "read_rgb", no_decoding)
    monkeypatch.setattr(loader, "read_gray", no_decoding)
    b = load_frames([tmp_path / "g"], cache_dir=cache, show_progress=False)
    for k in ("rgb", "game", "dmg", "has_dmg"):
        assert np.array_equal(getattr(a, k), getattr(b, k)) and getattr(a, k).dtype == getattr(b, k).dtype
    assert (a.names, a.games, a.skipped) == (b.names, b.games, b.skipped)
    assert len(b.skipped) == 1


def test_cache_is_invalidated_by_changes(tmp_path: Path) -> None:
    write_game(tmp_path / "g", 3)
    cache = tmp_path / "cache"
    load_frames([tmp_path / "g"], cache_dir=cache, show_progress=False)
    write_png(tmp_path / "g" / "s1_0000010.png", make_game_frames(1, 5)[0])
    assert len(load_frames([tmp_path / "g"], cache_dir=cache, show_progress=False)) == 4
    # A twin added later must show up, not a stale cache without it.
    write_png(tmp_path / "g" / "dmg" / "s1_0000000.png", twin_of(make_game_frames(1, 0)[0]))
    fs = load_frames([tmp_path / "g"], cache_dir=cache, show_progress=False)
    assert fs.has_dmg.tolist() == [True, False, False, False]
    # The size check applies to cached data too.
    with pytest.raises(UserError, match="160x144"):
        load_frames([tmp_path / "g"], cache_dir=cache, show_progress=False, size=(80, 72))


def test_broken_cache_is_rebuilt(tmp_path: Path) -> None:
    frames = write_game(tmp_path / "g", 2)
    cache = tmp_path / "cache"
    load_frames([tmp_path / "g"], cache_dir=cache, show_progress=False)
    [npz] = cache.glob("frames-*.npz")
    npz.write_bytes(b"corrupt")
    fs = load_frames([tmp_path / "g"], cache_dir=cache, show_progress=False)
    assert np.array_equal(fs.rgb, frames)
