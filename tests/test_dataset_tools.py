"""dataset.tools: info, preview, split and merge on small synthetic sets (plus one shared slice).

The split tests check the properties that keep evaluation honest: held-out frames come in
contiguous stretches of play, spread over the timeline, with ``gap`` dropped frames between any
two splits, so near-duplicate neighbours never straddle train and test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import make_game_frames, shared_path, write_game
from hypothesis import given, settings
from hypothesis import strategies as st

import retrocolor
from dataset import tools
from dataset.color import rgb_to_lab
from dataset.loader import find_game_folders, load_frames
from dataset.tools import format_info, info, merge, preview, split, time_blocks
from utils.errors import UserError
from utils.images import read_rgb, write_png

CODE = {"train": 0, "val": 1, "test": 2}


def no_temp_left(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".")]


# --------------------------------------------------------------------------- info
def test_info_counts_and_exact_colour_stats(tmp_path: Path) -> None:
    fa = write_game(tmp_path / "g" / "alpha", 6, seed=0, twins=2)
    fb = write_game(tmp_path / "g" / "beta", 4, seed=1)
    r = info([tmp_path / "g"], sample_per_game=None, show_progress=False)
    a, b, t = r["games"]["alpha"], r["games"]["beta"], r["total"]
    assert (a["frames"], a["dmg_twins"], b["frames"], b["dmg_twins"]) == (6, 2, 4, 0)
    assert (t["games"], t["frames"], t["dmg_twins"]) == (2, 10, 2)
    assert a["resolutions"] == {"160x144": 6} and t["resolutions"] == {"160x144": 10}
    assert not r["sampled"] and t["sampled_frames"] == 10
    for frames, v in ((fa, a), (fb, b), (np.concatenate([fa, fb]), t)):
        lab = rgb_to_lab(frames).reshape(-1, 3).astype(np.float64)
        chroma = np.hypot(lab[:, 1], lab[:, 2])
        assert v["mean_L"] == pytest.approx(lab[:, 0].mean(), abs=2e-3)
        assert v["mean_a"] == pytest.approx(lab[:, 1].mean(), abs=2e-3)
        assert v["mean_b"] == pytest.approx(lab[:, 2].mean(), abs=2e-3)
        assert v["mean_chroma"] == pytest.approx(chroma.mean(), abs=2e-3)
        assert v["grey_share"] == pytest.approx((chroma < tools.GREY_CHROMA).mean(), abs=2e-3)
        assert v["distinct_colours"] == len(np.unique(frames.reshape(-1, 3), axis=0))
    json.dumps(r)  # --json must be able to print it
    text = format_info(r)
    assert "alpha" in text and "beta" in text and "total" in text and "over all 10 readable frames" in text


def test_info_sampling_and_grey_game(tmp_path: Path) -> None:
    frames = make_game_frames(9, 3)
    grey = frames.mean(axis=-1, keepdims=True).astype(np.uint8).repeat(3, axis=-1)
    (tmp_path / "grey").mkdir()
    for i, f in enumerate(grey):
        write_png(tmp_path / "grey" / f"{i:03d}.png", f)
    r = info([tmp_path / "grey"], sample_per_game=3, show_progress=False)
    g = r["games"]["grey"]
    assert g["sampled_frames"] == 3 and r["sampled"] and g["frames"] == 9
    assert g["grey_share"] == 1.0 and g["mean_chroma"] < 0.01
    assert "sample of up to 3 frames per game (3 of 9 frames" in format_info(r)
    assert "total" not in format_info(r)  # one game: no total row


def test_info_reports_unreadable_and_mixed_sizes(tmp_path: Path) -> None:
    write_game(tmp_path / "g", 3)
    write_game(tmp_path / "g" / "sub", 0)  # not a game folder: ignored (frames come first)
    write_png(tmp_path / "g" / "s1_9999998.png", make_game_frames(1, 0, w=80, h=72)[0])
    (tmp_path / "g" / "s1_9999999.png").write_bytes(b"\x89PNG garbage")
    r = info([tmp_path / "g"], sample_per_game=None, show_progress=False)
    g = r["games"]["g"]
    assert g["frames"] == 5 and g["unreadable"] == 1 and len(r["unreadable"]) == 1
    assert g["resolutions"] == {"160x144": 3, "80x72": 1}
    assert "mixed(2)" in format_info(r) and "1 unreadable file" in format_info(r)


def test_info_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        info([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no frames"):
        info([tmp_path / "empty"])
    (tmp_path / "ext" / "frames").mkdir(parents=True)  # an extraction that found nothing
    with pytest.raises(UserError, match="no frames"):
        info([tmp_path / "ext"])
    with pytest.raises(UserError, match="sample"):
        info([tmp_path / "ext"], sample_per_game=-1)


def test_cli_info_table_json_and_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_game(tmp_path / "g" / "alpha", 3, twins=1)
    assert retrocolor.main(["dataset", "info", str(tmp_path / "g"), "--json", "--sample", "0"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["games"]["alpha"]["frames"] == 3 and r["games"]["alpha"]["dmg_twins"] == 1
    assert retrocolor.main(["dataset", "info", str(tmp_path / "g")]) == 0
    assert "alpha" in capsys.readouterr().out
    assert retrocolor.main(["dataset", "info", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("retrocolor: error:") and err.count("\n") == 1


# --------------------------------------------------------------------------- preview
def test_preview_single_game_tiles_are_the_frames(tmp_path: Path) -> None:
    frames = write_game(tmp_path / "g", 10)
    out = preview([tmp_path / "g"], tmp_path / "out" / "sheet.png", count=4, columns=3)
    assert out == tmp_path / "out" / "sheet.png"
    sheet = read_rgb(out)
    assert sheet.shape == (2 + 2 * (144 + 2), 2 + 3 * (160 + 2), 3)
    # Evenly spread: frames 0, 3, 6, 9 (first and last included), no label strip for one game.
    for k, i in enumerate([0, 3, 6, 9]):
        x, y = 2 + (k % 3) * 162, 2 + (k // 3) * 146
        assert np.array_equal(sheet[y:y + 144, x:x + 160], frames[i])
    assert no_temp_left(tmp_path / "out")


def test_preview_several_games_labelled_and_scaled(tmp_path: Path) -> None:
    fa = write_game(tmp_path / "g" / "alpha", 4, seed=0)
    write_game(tmp_path / "g" / "beta", 4, seed=1)
    out = preview([tmp_path / "g"], tmp_path / "s.png", count=100, columns=4, scale=2)
    sheet = read_rgb(out)
    lh, pad, tw, th = 24, 4, 320, 288
    assert sheet.shape == (pad + 2 * (th + lh + pad), pad + 4 * (tw + pad), 3)  # count capped at 8 frames
    label = sheet[pad:pad + lh, pad:pad + tw]
    assert label.max() > 150  # text drawn in the label strip
    tile = sheet[pad + lh:pad + lh + th, pad:pad + tw]
    assert np.array_equal(tile[::2, ::2], fa[0]) and np.array_equal(tile[1::2, 1::2], fa[0])


def test_preview_errors(tmp_path: Path) -> None:
    write_game(tmp_path / "g", 2)
    for kw, msg in (({"count": 0}, "count"), ({"columns": 0}, "columns"), ({"scale": 0}, "scale")):
        with pytest.raises(UserError, match=msg):
            preview([tmp_path / "g"], tmp_path / "s.png", **kw)
    with pytest.raises(UserError, match=r"\.png"):
        preview([tmp_path / "g"], tmp_path / "s.jpg")
    with pytest.raises(UserError, match="not found"):
        preview([tmp_path / "nope"], tmp_path / "s.png")
    assert not (tmp_path / "s.png").exists()


# --------------------------------------------------------------------------- split helpers
def check_time_split(codes: np.ndarray, layout: list[list[object]], gap: int) -> None:
    """The invariants of a time split, on per-frame codes in play order."""
    n = len(codes)
    assert layout[0][0] == 0 and layout[-1][1] == n
    for (s0, e0, _), (s1, _, _) in zip(layout, layout[1:], strict=False):
        assert e0 == s1 and e0 > s0  # contiguous, non-empty blocks covering everything
    for s, e, name in layout:
        kept = np.flatnonzero(codes[s:e] != -1)
        assert set(codes[s:e][kept].tolist()) <= {CODE[name]}  # a block belongs to one split
        if len(kept):
            assert kept[-1] - kept[0] + 1 == len(kept)  # frames are dropped only at block ends
    idx = {c: np.flatnonzero(codes == c) for c in (0, 1, 2)}
    for a in (0, 1, 2):
        for b in (0, 1, 2):
            if a < b and len(idx[a]) and len(idx[b]):
                dist = np.abs(idx[a][:, None] - idx[b][None, :]).min()
                assert dist > gap  # at least `gap` dropped frames between two splits


def split_codes(out: Path, game: str, n: int) -> np.ndarray:
    rec = json.loads((out / "split.json").read_text())
    codes = np.full(n, -1)
    pos = {f"s1_{i:07d}.png": i for i in range(n)}
    for s in ("train", "val", "test"):
        for name in rec["files"][s].get(game, []):
            codes[pos[name]] = CODE[s]
    return codes


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 400), blocks=st.integers(1, 30), gap=st.integers(0, 5),
    val=st.sampled_from([0.0, 0.05, 0.1, 0.2]), test=st.sampled_from([0.0, 0.1, 0.25]), seed=st.integers(0, 9),
)
def test_time_blocks_invariants(n: int, blocks: int, gap: int, val: float, test: float, seed: int) -> None:
    try:
        codes, layout = time_blocks(n, blocks, val, test, gap, np.random.default_rng(seed))
    except UserError as e:
        assert "too few" in str(e)
        return
    check_time_split(codes, layout, gap)
    held = [name for _, _, name in layout if name != "train"]
    assert ("test" in held) == (test > 0) and ("val" in held) == (val > 0)
    assert any(name == "train" for _, _, name in layout)
    # exactly `gap` frames dropped per boundary between different splits (blocks are long enough)
    boundaries = sum(a[2] != b[2] for a, b in zip(layout, layout[1:], strict=False))
    assert (codes == -1).sum() == gap * boundaries


def test_time_blocks_spread_over_the_timeline() -> None:
    """Held-out blocks come one from each equal stretch of the game, not all from its end."""
    for seed in range(20):
        codes, layout = time_blocks(1000, 20, 0.1, 0.1, 2, np.random.default_rng(seed))
        held = [i for i, (_, _, s) in enumerate(layout) if s != "train"]
        assert len(held) == 4 and [h // 5 for h in held] == [0, 1, 2, 3]
        assert sorted(s for _, _, s in layout if s != "train") == ["test", "test", "val", "val"]
        assert abs((codes == 2).sum() - 100) <= 5 and abs((codes == 1).sum() - 100) <= 5
    pos = {tuple(i for i, (_, _, s) in enumerate(time_blocks(1000, 20, 0.1, 0.1, 2, np.random.default_rng(k))[1])
                 if s != "train") for k in range(20)}
    assert len(pos) > 5  # the seed really chooses


# --------------------------------------------------------------------------- split
def test_split_by_time_writes_consistent_output(tmp_path: Path) -> None:
    write_game(tmp_path / "g" / "alpha", 60, seed=0, twins=60)
    write_game(tmp_path / "g" / "beta", 45, seed=1)
    out = tmp_path / "out"
    summary = split([tmp_path / "g"], out, blocks=10, gap=2, val=0.1, test=0.2, seed=3)
    rec = json.loads((out / "split.json").read_text())
    assert rec["params"] == {"by": "time", "val": 0.1, "test": 0.2, "blocks": 10, "gap": 2, "seed": 3,
                             "test_games": None}
    for game, n in (("alpha", 60), ("beta", 45)):
        codes = split_codes(out, game, n)
        check_time_split(codes, rec["blocks"][game], 2)
        assert [s for _, _, s in rec["blocks"][game]].count("test") == 2
        assert sorted(rec["dropped"][game]) == [f"s1_{i:07d}.png" for i in np.flatnonzero(codes == -1)]
        for s in ("train", "val", "test"):
            on_disk = sorted(p.name for p in (out / s / game).glob("*.png"))
            assert on_disk == sorted(rec["files"][s][game])
    # twins beside their frames, identical bytes; the split folders load as data folders
    name = rec["files"]["test"]["alpha"][0]
    src_twin = tmp_path / "g" / "alpha" / "dmg" / name
    assert (out / "test" / "alpha" / "dmg" / name).read_bytes() == src_twin.read_bytes()
    assert not (out / "train" / "beta" / "dmg").exists()
    fs = load_frames([out / "test"], show_progress=False)
    assert fs.games == ["alpha", "beta"]
    assert len(fs) == len(rec["files"]["test"]["alpha"]) + len(rec["files"]["test"]["beta"])
    assert fs.has_dmg[fs.game == 0].all()
    n_train = sum(len(v) for v in rec["files"]["train"].values())
    assert re.search(rf"train\s+{n_train:,} frames", summary) and "dropped" in summary
    assert no_temp_left(tmp_path)


def test_split_is_deterministic_and_refuses_to_clobber(tmp_path: Path) -> None:
    write_game(tmp_path / "g", 50)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    split([tmp_path / "g"], a, blocks=10, seed=1)
    split([tmp_path / "g"], b, blocks=10, seed=1)
    split([tmp_path / "g"], c, blocks=10, seed=2)
    ra, rb, rc = (json.loads((d / "split.json").read_text()) for d in (a, b, c))
    assert ra == rb and ra["files"] != rc["files"]
    # same split again: nothing to do
    assert "unchanged" in split([tmp_path / "g"], a, blocks=10, seed=1)
    # a different split over an earlier one needs --force, and then replaces it completely
    with pytest.raises(UserError, match="--force"):
        split([tmp_path / "g"], a, blocks=10, seed=2)
    split([tmp_path / "g"], a, blocks=10, seed=2, force=True)
    assert json.loads((a / "split.json").read_text()) == rc
    assert sorted(p.name for p in (a / "test" / "g").iterdir()) == sorted(p.name for p in (c / "test" / "g").iterdir())
    # never writes into a folder that is not an earlier split, even with force
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        split([tmp_path / "g"], tmp_path / "other", force=True, blocks=10)
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    split([tmp_path / "g"], tmp_path / "empty", blocks=10)  # an empty folder is fine
    assert (tmp_path / "empty" / "split.json").is_file()
    assert no_temp_left(tmp_path)


def test_split_interrupted_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_game(tmp_path / "g", 30)
    calls = {"n": 0}
    real = tools._Linker.__call__

    def flaky(self: tools._Linker, src: Path, dst: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 10:
            raise OSError(28, "No space left on device")
        real(self, src, dst)

    monkeypatch.setattr(tools._Linker, "__call__", flaky)
    with pytest.raises(UserError, match="No space left"):
        split([tmp_path / "g"], tmp_path / "out", blocks=5)
    assert not (tmp_path / "out").exists() and no_temp_left(tmp_path)


def test_split_by_game(tmp_path: Path) -> None:
    for i, name in enumerate(["a", "b", "c", "d"]):
        write_game(tmp_path / "g" / name, 30, seed=i)
    out = tmp_path / "out"
    summary = split([tmp_path / "g"], out, by="game", test_games=["c"], val=0.2, blocks=5, gap=1)
    rec = json.loads((out / "split.json").read_text())
    assert rec["params"]["test_games"] == ["c"] and "test games: c" in summary
    assert list(rec["files"]["test"]) == ["c"] and len(rec["files"]["test"]["c"]) == 30
    assert "c" not in rec["files"]["train"] and "c" not in rec["files"]["val"]
    for g in ("a", "b", "d"):  # val is a time slice of every train game
        check_time_split(split_codes(out, g, 30), rec["blocks"][g], 1)
        assert len(rec["files"]["val"][g]) == 6
    # chosen by seed when not named: deterministic, at least one game, never all
    r1 = split([tmp_path / "g"], tmp_path / "s1", by="game", test=0.25, val=0.0, seed=5)
    r2 = split([tmp_path / "g"], tmp_path / "s2", by="game", test=0.25, val=0.0, seed=5)
    assert r1.splitlines()[0] == r2.splitlines()[0].replace("s2", "s1")
    assert len(json.loads((tmp_path / "s1" / "split.json").read_text())["params"]["test_games"]) == 1
    with pytest.raises(UserError, match="no game named 'zz'"):
        split([tmp_path / "g"], tmp_path / "x", by="game", test_games=["zz"])
    with pytest.raises(UserError, match="every game"):
        split([tmp_path / "g"], tmp_path / "x", by="game", test_games=["a", "b", "c", "d"])


def test_split_argument_errors(tmp_path: Path) -> None:
    write_game(tmp_path / "g", 12)
    bad = [
        ({"by": "frame"}, "--by"), ({"val": 0.5, "test": 0.5}, "leave frames"), ({"val": -0.1}, "--val"),
        ({"blocks": 0}, "--blocks"), ({"gap": -1}, "--gap"), ({"blocks": 20, "gap": 2}, "too few"),
    ]
    for kw, msg in bad:
        with pytest.raises(UserError, match=msg):
            split([tmp_path / "g"], tmp_path / "out", **kw)
    with pytest.raises(UserError, match="--by game"):
        split([tmp_path / "g"], tmp_path / "out", test_games=["g"])
    with pytest.raises(UserError, match="overlaps the input"):
        split([tmp_path / "g"], tmp_path / "g" / "split", blocks=3, gap=0)
    with pytest.raises(UserError, match="not found"):
        split([tmp_path / "nope"], tmp_path / "out")
    assert not (tmp_path / "out").exists() and no_temp_left(tmp_path)


# --------------------------------------------------------------------------- merge
def test_merge_plain_and_extracted_datasets(tmp_path: Path) -> None:
    write_game(tmp_path / "src" / "alpha", 3, twins=2)
    ext = tmp_path / "downloads" / "beta"
    write_game(ext / "frames", 2, seed=1, twins=1)
    (ext / "manifest.jsonl").write_text('{"frame": "frames/s1_0000000.png"}\n')
    genre = tmp_path / "genre"
    summary = merge([tmp_path / "src", ext], genre)
    assert "merged 2 games, 5 frames (3 with DMG twins)" in summary
    assert sorted(p.name for p in (genre / "alpha").glob("*.png")) == [f"s1_{i:07d}.png" for i in range(3)]
    assert sorted(p.name for p in (genre / "alpha" / "dmg").glob("*.png")) == ["s1_0000000.png", "s1_0000001.png"]
    assert (genre / "beta" / "manifest.jsonl").read_text() == (ext / "manifest.jsonl").read_text()
    assert (genre / "beta" / "frames" / "dmg" / "s1_0000000.png").is_file()
    rec = json.loads((genre / "merge.json").read_text())
    assert rec["games"]["beta"]["manifest"] and rec["games"]["alpha"]["dmg_twins"] == 2
    assert [g.name for g in find_game_folders([genre])] == ["alpha", "beta"]
    fs = load_frames([genre], show_progress=False)
    assert len(fs) == 5 and fs.has_dmg.sum() == 3
    # refuses to clobber; --force replaces an earlier merged set
    with pytest.raises(UserError, match="--force"):
        merge([tmp_path / "src"], genre)
    merge([tmp_path / "src"], genre, force=True)
    assert [g.name for g in find_game_folders([genre])] == ["alpha"]
    assert no_temp_left(tmp_path)


def test_merge_refuses_duplicate_game_names(tmp_path: Path) -> None:
    write_game(tmp_path / "one" / "zelda", 2)
    write_game(tmp_path / "two" / "zelda", 2, seed=1)
    with pytest.raises(UserError, match="game name 'zelda' comes from both"):
        merge([tmp_path / "one", tmp_path / "two"], tmp_path / "out")
    (tmp_path / "ext" / "frames").mkdir(parents=True)
    with pytest.raises(UserError, match="no frames in"):
        merge([tmp_path / "one", tmp_path / "ext"], tmp_path / "out")
    assert not (tmp_path / "out").exists() and no_temp_left(tmp_path)


# --------------------------------------------------------------------------- real data
@pytest.mark.shared
def test_shared_info_and_time_split(tmp_path: Path) -> None:
    snake, gunpey = shared_path("data", "gbc", "snake"), shared_path("data", "gbc", "gunpey")
    r = info([snake, gunpey], sample_per_game=8, show_progress=False)
    assert r["games"]["snake"]["frames"] == 800 and r["games"]["gunpey"]["frames"] == 631
    assert r["games"]["gunpey"]["dmg_twins"] == 631
    assert r["total"]["resolutions"] == {"160x144": 1431}
    assert 0 < r["total"]["mean_chroma"] < 128 and 0 < r["total"]["mean_L"] < 100

    out = tmp_path / "split"
    split([gunpey], out, blocks=20, gap=2, seed=0)
    rec = json.loads((out / "split.json").read_text())
    names = sorted(p.name for p in gunpey.glob("*.png"))  # play order
    pos = {n: i for i, n in enumerate(names)}
    codes = np.full(len(names), -1)
    for s in ("train", "val", "test"):
        for n in rec["files"][s]["gunpey"]:
            codes[pos[n]] = CODE[s]
    check_time_split(codes, rec["blocks"]["gunpey"], 2)
    assert (codes == 2).sum() > 40 and (codes == 1).sum() > 40
    test_names = rec["files"]["test"]["gunpey"]
    assert len(list((out / "test" / "gunpey" / "dmg").glob("*.png"))) == len(test_names)
