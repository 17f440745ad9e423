"""``models.router``: one ONNX graph that sends each frame to the net that suits it.

Three stand-in colorizers each answer one constant colour, so the output names the branch taken.
Checked: monochrome (4-shade) frames go to the monochrome net, frames whose lightness levels fit
a known game go to the primary, anything else to the fallback; the graph agrees with the numpy
reference; evaluation and the player's engine feed it frame by frame; bad inputs are refused.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from dataset.color import DMG_LEVELS_L, gray_to_l  # noqa: E402
from models.router import build_router, dmg_row, game_rows, level_of, route_numpy  # noqa: E402
from utils.errors import UserError  # noqa: E402

COLOURS = {"primary": (0.25, 0.0), "fallback": (0.0, 0.25), "monochrome": (-0.25, -0.25)}


def _constant_onnx(path: Path, ab: tuple[float, float]) -> Path:
    """A colorizer answering one colour everywhere: ab = L * 0 + c (keeps the input's shape)."""
    from onnx import TensorProto, helper, numpy_helper

    c = np.asarray(ab, np.float32).reshape(1, 2, 1, 1)
    g = helper.make_graph(
        [helper.make_node("Concat", ["L", "L"], ["LL"], axis=1),
         helper.make_node("Mul", ["LL", "zero"], ["z"]),
         helper.make_node("Add", ["z", "c"], ["ab"])],
        "const", [helper.make_tensor_value_info("L", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        [helper.make_tensor_value_info("ab", TensorProto.FLOAT, ["N", 2, "H", "W"])],
        [numpy_helper.from_array(np.float32(0.0), "zero"), numpy_helper.from_array(c, "c")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def _game_frame(levels: list[float], seed: int) -> np.ndarray:
    """A 144x160 Lab L frame drawn from the given L values (a game's palette)."""
    rng = np.random.default_rng(seed)
    return np.asarray(levels, np.float32)[rng.integers(0, len(levels), (18, 20))].repeat(8, 0).repeat(8, 1)


KNOWN = [12.0, 40.5, 63.2, 88.8]  # the known game's palette lightness values
UNKNOWN = [20.0, 47.0, 55.5, 80.0]


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    d = tmp_path_factory.mktemp("router")
    paths = {k: _constant_onnx(d / f"{k}.onnx", v) for k, v in COLOURS.items()}
    counts = {"known": np.bincount(level_of(np.asarray(KNOWN)), minlength=256) * 1000}
    names, rows = game_rows(counts)
    table = np.concatenate([dmg_row()[None], rows])
    model = build_router(paths["primary"], paths["fallback"], paths["monochrome"], names, table, 0.99,
                         meta={"note": "test"})
    out = d / "router.onnx"
    onnx.save(model, str(out))
    return out, table


def _branch(ab: np.ndarray) -> str:
    got = tuple(np.round(ab.reshape(2, -1).mean(1), 3))
    return next(k for k, v in COLOURS.items() if np.allclose(got, v, atol=1e-3))


def test_each_kind_of_frame_takes_its_branch(router: tuple[Path, np.ndarray]) -> None:
    path, table = router
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dmg = gray_to_l(np.asarray([0, 85, 170, 255], np.uint8))[np.random.default_rng(0).integers(0, 4, (144, 160))]
    cases = {
        "monochrome": dmg,
        "primary": _game_frame(KNOWN, 1),
        "fallback": _game_frame(UNKNOWN, 2),
    }
    # a known game's frame with 0.5 % of stray pixels still counts as known; 5 % does not
    few, many = _game_frame(KNOWN, 3), _game_frame(KNOWN, 4)
    few.reshape(-1)[:115] = 30.0
    many.reshape(-1)[:1152] = 30.0
    cases_more = {"primary": few, "fallback": many}
    for want, L in [*cases.items(), *cases_more.items()]:
        ab = sess.run(None, {"L": (L / 100.0).astype(np.float32)[None, None]})[0]
        assert ab.shape == (1, 2, 144, 160)
        assert _branch(ab) == want
        assert route_numpy(L, table, 0.99) == want


def test_one_pixel_off_the_dmg_shades_is_not_a_monochrome_frame(router: tuple[Path, np.ndarray]) -> None:
    """The 4-shade test is "every pixel on a DMG level" (Gather + ReduceMin, no histogram)."""
    path, table = router
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dmg = gray_to_l(np.asarray([0, 85, 170, 255], np.uint8))[np.random.default_rng(5).integers(0, 4, (144, 160))]
    stray = dmg.copy()
    stray[77, 33] = 50.0
    for L, want in ((dmg, "monochrome"), (stray, "fallback")):
        ab = sess.run(None, {"L": (L / 100.0).astype(np.float32)[None, None]})[0]
        assert _branch(ab) == want == route_numpy(L, table, 0.99)
    assert not any(n.op_type == "ScatterElements" for n in onnx.load(str(path)).graph.node)


def test_dmg_levels_are_marked(router: tuple[Path, np.ndarray]) -> None:
    _, table = router
    assert table[0, level_of(np.asarray(DMG_LEVELS_L))].all() and table[0].sum() <= 12


def test_evaluate_routes_each_frame_on_its_own(router: tuple[Path, np.ndarray]) -> None:
    from models.evaluate import load_predictor

    path, _ = router
    predict, info = load_predictor(path)
    batch = np.stack([_game_frame(KNOWN, 5), _game_frame(UNKNOWN, 6), _game_frame(KNOWN, 7)])[:, None] / 100.0
    out = predict(batch.astype(np.float32))
    assert [_branch(o) for o in out] == ["primary", "fallback", "primary"]


def test_engine_runs_a_router_per_frame(router: tuple[Path, np.ndarray]) -> None:
    """Through the player's engine: a 4-shade grey frame comes out in the monochrome net's colour,
    a grey frame with 6 other shades in the fallback's."""
    from dataset.color import rgb_to_lab
    from realtime.engine import Colorizer

    path, _ = router
    col = Colorizer(str(path))
    rng = np.random.default_rng(8)
    for shades, want in (([0, 85, 170, 255], (-32, -32)), ([30, 70, 100, 140, 180, 220], (0, 32))):
        grey = np.repeat(np.repeat(np.asarray(shades, np.uint8)[rng.integers(0, len(shades), (18, 20))], 8, 0), 8, 1)
        lab = rgb_to_lab(col.colorize(grey))
        mid = (lab[..., 0] > 30) & (lab[..., 0] < 75)  # away from black/white, where sRGB clips ab
        got = lab[..., 1][mid].mean(), lab[..., 2][mid].mean()
        # sRGB clipping shrinks the colour, so compare directions: the nearest branch colour
        nearest = max(COLOURS.values(), key=lambda c: float(np.dot(c, got)) / (np.hypot(*c) * np.hypot(*got)))
        assert np.allclose(np.asarray(nearest) * 128, want), (shades, got)


def test_router_refuses_bad_parts(router: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, table = router
    d = path.parent
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(UserError, match="cannot load fallback"):
        build_router(d / "primary.onnx", bad, d / "monochrome.onnx", ["known"], table)
    with pytest.raises(UserError, match="table must be"):
        build_router(d / "primary.onnx", d / "fallback.onnx", d / "monochrome.onnx", ["a", "b"], table)
    with pytest.raises(UserError, match="threshold"):
        build_router(d / "primary.onnx", d / "fallback.onnx", d / "monochrome.onnx", ["known"], table, 1.5)
    with pytest.raises(UserError, match="level histogram"):
        game_rows({"empty": np.zeros(256)})


def test_build_router_script(tmp_path: Path, router: tuple[Path, np.ndarray]) -> None:
    """The script's table comes from real frames' level histograms (synthetic games here)."""
    from build_router import make
    from helpers import write_game

    write_game(tmp_path / "data" / "g1", 6, seed=1)
    write_game(tmp_path / "data" / "g2", 6, seed=2)
    d = router[0].parent
    info = make(d / "primary.onnx", d / "fallback.onnx", d / "monochrome.onnx", [tmp_path / "data"],
                tmp_path / "r.onnx")
    assert info["games"] == ["g1", "g2"] and all(n > 0 for n in info["levels_per_game"].values())
    sess = ort.InferenceSession(str(tmp_path / "r.onnx"), providers=["CPUExecutionProvider"])
    from dataset.color import rgb_to_lab
    from utils.images import read_rgb

    frame = read_rgb(sorted((tmp_path / "data" / "g1").glob("*.png"))[0])
    L = rgb_to_lab(frame)[..., 0]
    ab = sess.run(None, {"L": (L / 100.0).astype(np.float32)[None, None]})[0]
    assert _branch(ab) == "primary"  # a training frame of a known game


def test_gate_check_script_tells_unknown_palettes(tmp_path: Path) -> None:
    """Leave-one-game-out: a game whose palette another game shares stays "known"; a game with
    its own palette (here: inverted lightness) goes to the fallback once it is left out."""
    import subprocess

    from helpers import make_game_frames

    from utils.images import write_png

    games = {"a": make_game_frames(6, 1), "b": make_game_frames(6, 2), "c": 255 - make_game_frames(6, 3)}
    for g, frames in games.items():
        for part, sl in (("train", slice(0, 4)), ("test", slice(4, 6))):
            for i, f in enumerate(frames[sl]):
                write_png(tmp_path / "split" / part / g / f"s1_{i:07d}.png", f)
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "gate_check.py"), str(tmp_path / "split")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    share = {line.split()[0]: line.split(":")[1].split("%")[0].strip() for line in r.stdout.splitlines()
             if "test frames" in line}
    assert share == {"a": "0", "b": "0", "c": "100"}, r.stdout
    assert "sent mostly to the fallback: 1 of 3" in r.stdout


def test_replace_monochrome_swaps_one_branch_and_keeps_the_others(router, tmp_path):
    from models.router import component_weights, replace_monochrome

    path, _table = router
    new = _constant_onnx(tmp_path / "new_mono.onnx", (0.5, -0.5))
    model = replace_monochrome(path, new, meta={"monochrome_note": "swapped"})
    out = tmp_path / "swapped.onnx"
    onnx.save(model, str(out))
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    old = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(s, L):
        return s.run(None, {"L": (L / 100.0).astype(np.float32)[None, None]})[0][0, :, 0, 0]

    mono = _game_frame(list(DMG_LEVELS_L), 1)
    np.testing.assert_allclose(run(sess, mono), (0.5, -0.5))
    for levels in (KNOWN, UNKNOWN):
        frame = _game_frame(levels, 2)
        np.testing.assert_allclose(run(sess, frame), run(old, frame))
    meta = __import__("json").loads({p.key: p.value for p in model.metadata_props}["retrocolor"])
    assert meta["router"] is True and meta["monochrome_note"] == "swapped"
    assert meta["components"]["monochrome"] == "new_mono.onnx"
    # the weights of a branch come back by their own names
    assert set(component_weights(out, "monochrome")) == {"zero", "c"}
    assert component_weights(out, "monochrome")["c"].ravel().tolist() == [0.5, -0.5]
    with pytest.raises(UserError, match="cannot load"):
        replace_monochrome(path, tmp_path / "missing.onnx")


# ------------------------------------------------------------------ the known-game gate (4-shade input)
def _dmg_map(seed: int) -> np.ndarray:
    """A made-up DMG game's 320x288 background: 40 tiles of its own, laid out at random."""
    rng = np.random.default_rng(seed)
    tiles = rng.integers(0, 4, (40, 8, 8))
    return tiles[rng.integers(0, 40, (36, 40))].transpose(0, 2, 1, 3).reshape(288, 320)


def _dmg_frames(seed: int, offsets: list[tuple[int, int]]) -> list[np.ndarray]:
    """Screens of that game scrolled to ``offsets`` (x, y): off the tile grid, as a real game scrolls."""
    m = _dmg_map(seed)
    return [m[y:y + 144, x:x + 160] for x, y in offsets]


#: Training screens that between them hold every 8x8 window of the map.
COVER = [(x, y) for x in (0, 80, 160) for y in (0, 72, 144)]
ELSEWHERE = [(37, 51), (101, 3), (155, 140)]


def _l_of_shades(s: np.ndarray) -> np.ndarray:
    return np.asarray(DMG_LEVELS_L, np.float32)[s]


def test_window_hashes_skip_uniform_windows_and_match_at_any_scroll() -> None:
    from models.router import known_windows, window_hashes, window_shares

    h, valid = window_hashes(np.zeros((16, 16), np.int64))
    assert h.shape == (9, 9) and not valid.any()
    h, valid = window_hashes(np.full((16, 16), 3, np.int64))
    assert not valid.any()
    table = known_windows(_dmg_frames(1, COVER), bits=20)
    # the same game scrolled anywhere else is known; another game is not
    for fr in _dmg_frames(1, ELSEWHERE):
        assert window_shares(fr, table) == 1.0
    for fr in _dmg_frames(2, ELSEWHERE):
        assert window_shares(fr, table) <= 0.2
    # a blank screen tells nothing either way
    assert window_shares(np.zeros((144, 160), np.int64), table) == 1.0


def test_known_gate_sends_only_known_dmg_games_to_the_specialist(router, tmp_path) -> None:
    from models.router import (
        add_known_gate,
        component_weights,
        has_gate,
        known_share,
        known_windows,
        replace_monochrome,
        replace_unknown,
    )

    path, _table = router
    unknown = _constant_onnx(tmp_path / "unknown.onnx", (0.5, 0.5))
    table = known_windows(_dmg_frames(1, COVER), bits=20)
    model = add_known_gate(path, unknown, table, threshold=0.8)
    out = tmp_path / "gated.onnx"
    onnx.save(model, str(out))
    assert has_gate(model)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])

    def colour(L: np.ndarray) -> tuple[float, ...]:
        ab = sess.run(None, {"L": (L / 100.0).astype(np.float32)[None, None]})[0]
        assert ab.shape == (1, 2, 144, 160)
        return tuple(np.round(ab[0, :, 0, 0], 3))

    for fr in _dmg_frames(1, ELSEWHERE):
        L = _l_of_shades(fr)
        assert known_share(L, table) >= 0.8
        assert colour(L) == COLOURS["monochrome"]
        assert route_numpy(L, _table, 0.99, gate=table, gate_threshold=0.8) == "monochrome"
    for seed in (2, 3):
        for fr in _dmg_frames(seed, ELSEWHERE[:2]):
            L = _l_of_shades(fr)
            assert known_share(L, table) < 0.8
            assert colour(L) == (0.5, 0.5)
            assert route_numpy(L, _table, 0.99, gate=table, gate_threshold=0.8) == "unknown"
            assert route_numpy(L, _table, 0.99) == "monochrome"   # without the gate
    # the graph's share is the numpy one: a frame half known, half new, on either side of 0.5
    mixed = _dmg_frames(1, ELSEWHERE[:1])[0].copy()
    mixed[:, 80:] = _dmg_frames(4, ELSEWHERE[:1])[0][:, 80:]
    share = known_share(_l_of_shades(mixed), table)
    assert 0.3 < share < 0.7
    for thr, want in ((share - 0.02, COLOURS["monochrome"]), (share + 0.02, (0.5, 0.5))):
        p = tmp_path / f"gated_{thr:.3f}.onnx"
        onnx.save(add_known_gate(path, unknown, table, threshold=thr), str(p))
        s2 = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        ab = s2.run(None, {"L": (_l_of_shades(mixed) / 100.0).astype(np.float32)[None, None]})[0]
        assert tuple(np.round(ab[0, :, 0, 0], 3)) == want
    # colour input still takes the level router's branches
    assert colour(_game_frame(KNOWN, 1)) == COLOURS["primary"]
    assert colour(_game_frame(UNKNOWN, 2)) == COLOURS["fallback"]
    # components come back by name; the specialist can still be swapped; a second gate is refused
    assert component_weights(out, "unknown")["c"].ravel().tolist() == [0.5, 0.5]
    assert component_weights(out, "monochrome")["c"].ravel().tolist() == [-0.25, -0.25]
    swapped = tmp_path / "swapped.onnx"
    onnx.save(replace_monochrome(out, _constant_onnx(tmp_path / "m2.onnx", (0.1, 0.1))), str(swapped))
    np.testing.assert_allclose(component_weights(swapped, "monochrome")["c"].ravel(), [0.1, 0.1])
    assert component_weights(swapped, "unknown")["c"].ravel().tolist() == [0.5, 0.5]
    # and so can the net for unknown games, with the gate as it was: the same frames, the new colour
    unk2 = tmp_path / "unknown2.onnx"
    model2 = replace_unknown(swapped, _constant_onnx(tmp_path / "u2.onnx", (0.3, -0.2)))
    onnx.save(model2, str(unk2))
    s3 = ort.InferenceSession(str(unk2), providers=["CPUExecutionProvider"])
    for seed, want in ((1, (0.1, 0.1)), (2, (0.3, -0.2))):
        L = _l_of_shades(_dmg_frames(seed, ELSEWHERE[:1])[0])
        ab = s3.run(None, {"L": (L / 100.0).astype(np.float32)[None, None]})[0]
        np.testing.assert_allclose(ab[0, :, 0, 0], want, atol=1e-6)
    meta2 = json.loads({p.key: p.value for p in model2.metadata_props}["retrocolor"])
    assert meta2["gate"]["unknown"] == "u2.onnx" and meta2["gate"]["threshold"] == pytest.approx(0.8)
    with pytest.raises(UserError, match="no known-game gate"):
        replace_unknown(path, unk2)
    with pytest.raises(UserError, match="already has"):
        add_known_gate(out, unknown, table)
    with pytest.raises(UserError, match="2\\*\\*bits"):
        add_known_gate(path, unknown, table[:1000])
    with pytest.raises(UserError, match="no component 'unknown'"):
        component_weights(path, "unknown")


def test_known_gate_script_builds_its_table_from_twins_as_the_graph_reads_them(router, tmp_path) -> None:
    """The table is built from twin PNGs and queried from the L the engine feeds: one shade order."""
    from helpers import write_game
    from known_gate import build_table, twin_shades

    from dataset.color import gray_to_l
    from models.router import add_known_gate, known_share
    from utils.images import read_rgb

    write_game(tmp_path / "known" / "mine", 12, seed=5, twins=12)
    write_game(tmp_path / "other" / "theirs", 4, seed=9, twins=4)
    table, info = build_table([str(tmp_path / "known")])
    assert info["games"] == ["mine"] and info["twins"] == 12 and info["windows_known"] > 0
    names, shades = twin_shades([str(tmp_path / "known")])
    assert names == ["mine"] and shades[0].shape == (12, 144, 160) and set(np.unique(shades[0])) <= {0, 1, 2, 3}
    path, _ = router
    gated = tmp_path / "gated.onnx"
    onnx.save(add_known_gate(path, _constant_onnx(tmp_path / "u.onnx", (0.5, 0.5)), table, 0.8), str(gated))
    sess = ort.InferenceSession(str(gated), providers=["CPUExecutionProvider"])
    for folder, want in (("known/mine", COLOURS["monochrome"]), ("other/theirs", (0.5, 0.5))):
        grey = read_rgb(tmp_path / folder / "dmg" / "s1_0000001.png")[..., 0]
        L = gray_to_l(grey)
        assert (known_share(L, table) >= 0.8) == (folder == "known/mine")
        ab = sess.run(None, {"L": (L / 100.0).astype(np.float32)[None, None]})[0]
        assert tuple(np.round(ab[0, :, 0, 0], 3)) == want
