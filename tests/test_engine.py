"""The torch-free engine (realtime.engine.Colorizer) and the weights package.

These tests build their ONNX models with the onnx helper API, so they run without PyTorch;
:func:`helpers.tiny_onnx` and :func:`helpers.dmg_frame` serve the other realtime tests too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import BGB, GREEN, GREYS, ROOT, dmg_frame, dmg_index, make_game_frames, tiny_onnx

from dataset import color
from realtime import engine
from realtime.engine import Colorizer, flicker, lab_to_rgb_fast
from utils.errors import UserError

onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_onnx(tmp_path_factory.mktemp("m") / "tiny.onnx")


def reference(col: Colorizer, grey_or_rgb: np.ndarray) -> np.ndarray:
    """The slow reference pipeline at native size: dataset.color + the raw model call."""
    arr = grey_or_rgb
    lum = color.gray_to_l(arr) if arr.ndim == 2 else color.rgb_to_l(arr)
    ab = col.predict_ab(color.normalize_l(lum)[None, None])[0] * color.AB_SCALE
    return color.l_ab_to_rgb(lum, ab.transpose(1, 2, 0))


def reference_up(col: Colorizer, native_l: np.ndarray, full_l: np.ndarray) -> np.ndarray:
    """Reference for upscaled input: each pixel's own L + its cell's ab (centre convention)."""
    ab = col.predict_ab(color.normalize_l(native_l)[None, None])[0] * color.AB_SCALE
    h, w = full_l.shape
    ry = np.minimum(((np.arange(h) + 0.5) * 144 / h).astype(int), 143)
    rx = np.minimum(((np.arange(w) + 0.5) * 160 / w).astype(int), 159)
    ab_up = ab.transpose(1, 2, 0)[ry][:, rx]
    return color.l_ab_to_rgb(full_l, ab_up)


# ----------------------------------------------------------------------------- numerics
def test_fast_luts_agree_with_dataset_color() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5000, 3), dtype=np.uint8)
    q = engine._q_of_rgb(rgb[:, 0].astype(np.intp), rgb[:, 1].astype(np.intp), rgb[:, 2].astype(np.intp))
    assert np.abs(engine._L_OF_Q[q] - color.rgb_to_l(rgb)).max() < 0.02
    lab = np.stack([rng.uniform(0, 100, 5000), rng.uniform(-90, 90, 5000), rng.uniform(-90, 90, 5000)], -1)
    fast = lab_to_rgb_fast(lab[:, 0], lab[:, 1], lab[:, 2]).astype(int)
    ref = color.lab_to_rgb(lab).astype(int)
    assert np.abs(fast - ref).max() <= 1
    assert (fast != ref).mean() < 0.01


def test_native_matches_reference_pipeline(tiny: Path) -> None:
    col = Colorizer(tiny)
    rgb = make_game_frames(1, 3)[0]  # 4 colours: add noise so it is a many-shade colour frame
    rgb = np.clip(rgb.astype(int) + np.random.default_rng(0).integers(-20, 20, rgb.shape), 0, 255).astype(np.uint8)
    out = col.colorize(rgb)
    assert out.shape == (144, 160, 3) and out.dtype == np.uint8
    assert col.active_palette is None  # many shades: the frame's own L is used
    diff = np.abs(out.astype(int) - reference(col, rgb))
    # LUT lightness is exact to ~0.01 L; the gamma table to a fraction of a code value.
    assert diff.max() <= 2 and (diff > 0).mean() < 0.02
    assert set(col.timings) >= {"preprocess", "inference", "postprocess"}
    # Colour really comes out: a/b spread is not zero.
    ab = color.rgb_to_lab(out)[..., 1:]
    assert ab.std() > 2.0


# ----------------------------------------------------------------------------- scales
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_integer_upscales_equal_nearest_upscale_of_native(tiny: Path, scale: int) -> None:
    col = Colorizer(tiny)
    frame = dmg_frame(1, GREEN)
    native = col.colorize(frame)
    up = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    out = col.colorize(up)
    assert out.shape == (144 * scale, 160 * scale, 3)
    assert np.array_equal(out, cv2.resize(native, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST))


@pytest.mark.parametrize("interp", [cv2.INTER_NEAREST, cv2.INTER_NEAREST_EXACT])
def test_non_integer_upscale_reads_the_grid_and_keeps_edges_crisp(tiny: Path, interp: int) -> None:
    col = Colorizer(tiny)
    frame = dmg_frame(2)
    native = col.colorize(frame)
    up = cv2.resize(frame, (400, 360), interpolation=interp)  # 2.5x, either scaler convention
    out = col.colorize(up)
    assert out.shape == (360, 400, 3)
    # The native grid was read exactly (the model saw the same input) ...
    cy = ((np.arange(144) + 0.5) * 2.5).astype(int)
    cx = ((np.arange(160) + 0.5) * 2.5).astype(int)
    assert np.array_equal(out[cy][:, cx], native)
    # ... and every output pixel combines its own input pixel's lightness with its cell's colour:
    # edges stay where the input has them, even where the scaler disagrees with our grid.
    ref = reference_up(col, color.gray_to_l(frame), color.gray_to_l(up))
    assert np.abs(out.astype(int) - ref).max() <= 2


def test_rejects_frames_that_are_not_a_game_screen(tiny: Path) -> None:
    col = Colorizer(tiny)
    with pytest.raises(UserError, match="smaller"):
        col.colorize(np.zeros((100, 100), np.uint8))
    with pytest.raises(UserError, match="10:9"):
        col.colorize(np.zeros((360, 640, 3), np.uint8))
    with pytest.raises(UserError, match="uint8"):
        col.colorize(np.zeros((144, 160), np.float32))
    with pytest.raises(UserError, match="shape"):
        col.colorize(np.zeros((144, 160, 2), np.uint8))


# ----------------------------------------------------------------------------- palettes and formats
PURPLE = np.array([[250, 220, 255], [200, 120, 210], [90, 40, 120], [20, 0, 40]], np.uint8)


@pytest.mark.parametrize("palette", [GREEN, BGB, PURPLE], ids=["dmg-green", "bgb", "custom-purple"])
def test_tinted_palette_gives_the_same_colours_as_grey(tiny: Path, palette: np.ndarray) -> None:
    col = Colorizer(tiny)
    grey_out = col.colorize(dmg_frame(4))
    tinted_out = Colorizer(tiny).colorize(dmg_frame(4, palette))
    assert np.array_equal(grey_out, tinted_out)
    # Without the palette mapping the green frame would feed different L and give other colours.
    raw = Colorizer(tiny, palette="off").colorize(dmg_frame(4, palette))
    assert not np.array_equal(raw, grey_out)


def test_fewer_than_four_shades_use_known_or_learned_palette(tiny: Path) -> None:
    idx = dmg_index(5)
    three = np.where(idx == 1, 0, idx)  # shades 0, 2, 3 only
    ref = Colorizer(tiny).colorize(GREYS[three])
    # The classic green palette is known without having seen it.
    assert np.array_equal(Colorizer(tiny).colorize(GREEN[three]), ref)
    # A custom palette is learned from a 4-shade frame, then used for 3-shade frames.
    custom = np.array([[240, 230, 200], [180, 150, 120], [110, 80, 60], [40, 20, 10]], np.uint8)
    col = Colorizer(tiny)
    fresh = col.colorize(custom[three])
    assert not np.array_equal(fresh, ref)  # unknown palette with 3 shades: plain L
    col.colorize(custom[idx])
    assert np.array_equal(col.colorize(custom[three]), ref)


def test_bgra_grey_and_output_formats(tiny: Path) -> None:
    col = Colorizer(tiny)
    rgb = dmg_frame(6, GREEN)
    ref = col.colorize(rgb)
    up = cv2.resize(rgb, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
    bgra = cv2.cvtColor(up, cv2.COLOR_RGB2BGRA)
    ref3 = cv2.resize(ref, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(col.colorize(bgra), ref3)  # 4 channels default to BGRA (mss)
    rgba = cv2.cvtColor(up, cv2.COLOR_RGB2RGBA)
    assert np.array_equal(col.colorize(rgba, bgra=False), ref3)
    assert np.array_equal(col.colorize(cv2.cvtColor(up, cv2.COLOR_RGB2BGR), bgra=True), ref3)
    out_bgra = col.colorize(bgra, output="bgra")
    assert out_bgra.shape == (432, 480, 4) and (out_bgra[..., 3] == 255).all()
    assert np.array_equal(out_bgra[..., 2::-1], ref3)
    grey = dmg_frame(6)
    g_ref = col.colorize(grey)
    assert np.array_equal(col.colorize(grey[:, :, None]), g_ref)
    assert np.array_equal(col.colorize(np.repeat(grey[:, :, None], 3, axis=2)), g_ref)
    assert np.array_equal(g_ref, ref)  # grey and green of one scene agree


def test_blurred_video_frame_uses_each_pixels_own_lightness(tiny: Path) -> None:
    col = Colorizer(tiny)
    frame = cv2.resize(make_game_frames(1, 7)[0], (320, 288), interpolation=cv2.INTER_LINEAR)
    out = col.colorize(frame)
    assert out.shape == frame.shape
    native_l = color.rgb_to_l(cv2.resize(frame, (160, 144), interpolation=cv2.INTER_AREA))
    diff = np.abs(out.astype(int) - reference_up(col, native_l, color.rgb_to_l(frame)))
    assert diff.max() <= 3 and (diff > 1).mean() < 0.01
    # Not simply the native result upscaled: blur between cells is kept.
    assert not np.array_equal(out, cv2.resize(col.colorize(cv2.resize(frame, (160, 144), interpolation=cv2.INTER_AREA)),
                                              (320, 288), interpolation=cv2.INTER_NEAREST))


# ----------------------------------------------------------------------------- smoothing
def test_smoothing_lowers_flicker_on_a_static_scene(tmp_path: Path) -> None:
    model = tiny_onnx(tmp_path / "wide.onnx", global_mix=10.0)
    idx = dmg_index(8)
    frames = []
    for i in range(24):
        f = GREYS[idx].copy()
        y, x = 40 + (i % 5) * 3, 30 + (i * 7) % 90
        f[y:y + 30, x:x + 30] = GREYS[(idx[y:y + 30, x:x + 30] + 1 + i % 3) % 4]  # a moving, changing sprite
        frames.append(f)
    outs = {}
    for s in (0.0, 0.8):
        col = Colorizer(model, smoothing=s)
        outs[s] = [col.colorize(f) for f in frames]
    raw, smooth = flicker(frames, outs[0.0]), flicker(frames, outs[0.8])
    assert raw > 0.2  # the static scene changes colour although its L did not
    assert smooth < 0.6 * raw
    # Pixels whose L changed are not smoothed (no ghosting of the moving sprite).
    changed = frames[-1] != frames[-2]
    assert np.array_equal(outs[0.8][-1][changed], outs[0.0][-1][changed])


def test_smoothing_holds_a_slow_one_way_drift(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model whose colour creeps one way on a static scene (0.25 ab units a frame, 2.75 in
    all): blending alone moves the colour by the same total, only later, so it cannot lower this
    flicker; the dead band holds a change that small, so smoothing removes it."""
    import realtime.engine as engine

    frames = [GREYS[dmg_index(9)].copy() for _ in range(12)]

    def run(smoothing: float) -> list[np.ndarray]:
        col = Colorizer(tiny, smoothing=smoothing)
        real_run, step = col.session.run, iter(range(100))

        def drifting(names, feed):
            return [real_run(names, feed)[0] + np.float32(next(step) * 0.25 / 128.0)]

        col.session.run = drifting
        return [col.colorize(f) for f in frames]

    raw = flicker(frames, run(0.0))
    with_band = flicker(frames, run(0.5))
    monkeypatch.setattr(engine, "DEADBAND_AB", 0.0)
    blend_only = flicker(frames, run(0.5))
    assert raw > 0.05
    assert blend_only > 0.6 * raw  # damping alone: about the same total change
    assert with_band < 0.1 * raw


def test_smoothing_is_validated(tiny: Path) -> None:
    with pytest.raises(UserError, match="smoothing"):
        Colorizer(tiny, smoothing=1.0)
    col = Colorizer(tiny)
    with pytest.raises(UserError):
        col.smoothing = -0.1


def test_flicker_metric_is_zero_for_identical_outputs() -> None:
    f = dmg_frame(0)
    out = np.dstack([f, f // 2, f])
    assert flicker([f, f, f], [out, out, out]) == 0.0
    other = out.copy()
    other[0:10] = 255 - other[0:10]
    assert flicker([f, f], [out, other]) > 0


# ----------------------------------------------------------------------------- bad models
def test_bad_model_files_are_one_line_user_errors(tmp_path: Path) -> None:
    txt = tmp_path / "notes.onnx"
    txt.write_text("this is not a model\n")
    with pytest.raises(UserError, match="not a loadable ONNX"):
        Colorizer(txt)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        Colorizer(empty)
    with pytest.raises(UserError, match="input has|expected \\(B, 1, H, W\\)"):
        Colorizer(tiny_onnx(tmp_path / "rgb_in.onnx", in_ch=3))
    with pytest.raises(UserError, match="2, H, W"):
        Colorizer(tiny_onnx(tmp_path / "three_out.onnx", out_ch=3))
    with pytest.raises(UserError, match="fixed at 128x128"):
        Colorizer(tiny_onnx(tmp_path / "fixed.onnx", size=(128, 128)))
    with pytest.raises(UserError, match="not found"):
        Colorizer(tmp_path / "missing.onnx")
    with pytest.raises(UserError, match="folder"):
        Colorizer(tmp_path)
    # A model with a fixed native size is fine.
    col = Colorizer(tiny_onnx(tmp_path / "native.onnx", size=(144, 160)))
    assert col.colorize(dmg_frame(0)).shape == (144, 160, 3)
    assert col.meta["arch"] == "tiny"


# ----------------------------------------------------------------------------- weights
@pytest.fixture
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import weights

    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path)
    return tmp_path


def test_weights_empty_folder(shipped: Path) -> None:
    import weights

    assert weights.list_models() == []
    with pytest.raises(UserError, match="no model is shipped"):
        weights.resolve(weights.DEFAULT)
    with pytest.raises(UserError, match="none shipped"):
        weights.resolve("nope")


def test_weights_list_and_resolve(shipped: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    import weights

    tiny_onnx(shipped / "gbc-small.onnx")
    tiny_onnx(shipped / "gbc-small.int8.onnx")
    (shipped / "gbc-small.json").write_text(json.dumps({"description": "small and fast", "default": True}))
    tiny_onnx(shipped / "other.onnx")
    rows = weights.list_models()
    assert [r["name"] for r in rows] == ["gbc-small", "other"]
    assert rows[0]["description"] == "small and fast" and rows[0]["default"] is True
    assert rows[0]["int8_path"] == shipped / "gbc-small.int8.onnx" and rows[1]["int8_path"] is None
    assert weights.resolve("default") == shipped / "gbc-small.onnx"
    assert weights.resolve("gbc-small", int8=True) == shipped / "gbc-small.int8.onnx"
    assert weights.resolve("gbc-small.int8") == shipped / "gbc-small.int8.onnx"
    with pytest.raises(UserError, match="no int8"):
        weights.resolve("other", int8=True)
    with pytest.raises(UserError, match="shipped: default, gbc-small, other"):
        weights.resolve("unknown")
    for bad in ("../gbc-small", "..", ".hidden"):
        with pytest.raises(UserError):
            weights.resolve(bad)
    with pytest.raises(UserError, match="not found"):
        weights.resolve("sub/gbc-small")
    # An existing path wins over names; the engine takes names.
    own = tiny_onnx(tmp_path_factory.mktemp("own") / "mine.onnx")
    assert weights.resolve(str(own)) == own
    assert Colorizer("other").name == "other"
    assert weights.card_for(shipped / "gbc-small.int8.onnx")["description"] == "small and fast"


def test_models_command_says_what_each_model_is(shipped: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import retrocolor

    tiny_onnx(shipped / "gbc-small.onnx")
    tiny_onnx(shipped / "gbc-small.int8.onnx")
    (shipped / "gbc-small.json").write_text(json.dumps({
        "description": "small and fast", "default": True, "arch": "unet_lut", "params": 241469,
        "macs_160x144": 110947328,
        "metrics": {"mse_ab": 0.0041, "acc10": 0.93}, "fp32_ms": 4.2, "int8": {"int8_ms": 5.1},
        "held_out": {"int8_L": {"overall": {"mse_ab": 0.0043}}},
    }))
    tiny_onnx(shipped / "other.onnx")
    (shipped / "other.json").write_text("{not json")  # a broken card must not hide the model
    assert retrocolor.main(["models"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "gbc-small [default]: small and fast"
    assert out[1].strip() == ("arch unet_lut, 241k params, 111M MACs, held-out mse_ab 0.0041 acc10 0.930, "
                              "4.2 ms/frame (1 thread)")
    assert out[2].strip() == str(shipped / "gbc-small.onnx")
    assert out[3].strip().startswith("int8 (--model gbc-small.int8; held-out mse_ab 0.0043, 5.1 ms/frame")
    assert out[3].endswith(str(shipped / "gbc-small.int8.onnx"))
    assert out[4] == "other: (no model card)" and out[5].strip() == str(shipped / "other.onnx")
    assert len(out) == 6


def test_weights_single_model_is_the_default(shipped: Path) -> None:
    import weights

    tiny_onnx(shipped / "only.onnx")
    assert weights.resolve(weights.DEFAULT) == shipped / "only.onnx"
    assert weights.shipped_names() == ["default", "only"]


# ----------------------------------------------------------------------------- torch-free
def test_player_path_never_imports_torch(tiny: Path, tmp_path: Path) -> None:
    img = tmp_path / "in.png"
    cv2.imwrite(str(img), cv2.resize(dmg_frame(3), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST))
    code = f"""
import sys
sys.modules['torch'] = None  # any 'import torch' now raises ImportError
import numpy as np
import realtime
from realtime.engine import Colorizer
from realtime.offline import colorize_path
from realtime import bench  # noqa: F401
assert realtime.Colorizer is Colorizer
out = Colorizer({str(tiny)!r}).colorize(np.full((288, 320), 85, np.uint8))
assert out.shape == (288, 320, 3)
colorize_path({str(img)!r}, {str(tmp_path / 'out.png')!r}, model={str(tiny)!r}, log=None)
bad = sorted(m for m in sys.modules
             if m.split('.')[0] == 'models' or (m.split('.')[0] == 'torch' and sys.modules[m] is not None))
print('LEAKED', bad)
assert not bad, bad
print('OK')
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "OK" in r.stdout
    assert (tmp_path / "out.png").is_file()
