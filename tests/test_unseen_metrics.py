"""Step 7's measures: the look of a game (colourfulness, a/b histogram, tile uniformity), the boot ROM's
palettes as baselines, the tile-snapped output, and evaluate's by-game report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import write_game

import models
from dataset.color import DMG_LEVELS_L
from models.archs import TileSnap
from models.checkpoint import save_model
from models.evaluate import evaluate, format_report
from models.export import export_onnx
from models.metrics import (
    BOOT_DEFAULT,
    BOOT_PALETTES,
    ab_histogram,
    colourfulness,
    dmg_shade,
    js_distance,
    tile_uniformity,
)
from utils.errors import UserError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_colourfulness_is_zero_for_grey_and_grows_with_saturation():
    grey = np.full((1, 16, 16, 3), 128, np.uint8)
    assert colourfulness(grey)[0] == 0.0
    red = np.zeros((1, 16, 16, 3), np.uint8)
    red[..., 0] = 200
    # rg = 200, yb = 100 everywhere: M = 0 + 0.3 * sqrt(200^2 + 100^2)
    assert colourfulness(red)[0] == pytest.approx(0.3 * np.hypot(200, 100))
    half = red.copy()
    half[:, :8] = 128
    assert 0 < colourfulness(half)[0]


def test_tile_uniformity_counts_tile_and_shade_groups():
    shade = np.zeros((1, 16, 16), np.uint8)
    shade[:, :, 8:] = 1
    rgb = np.zeros((1, 16, 16, 3), np.uint8)
    rgb[shade == 1] = (200, 30, 30)
    assert tile_uniformity(rgb, shade) == (4, 4)              # 4 tiles, one shade each, all flat
    noisy = rgb.copy()
    noisy[0, :8, :8] = np.random.default_rng(0).integers(0, 255, (8, 8, 3))
    assert tile_uniformity(noisy, shade) == (3, 4)
    # two shades inside one tile are two groups, each judged on its own
    shade2 = shade.copy()
    shade2[0, 0:4, 0:8] = 2
    two = rgb.copy()
    two[0, 0:4, 0:8] = (10, 200, 10)
    assert tile_uniformity(two, shade2) == (5, 5)


def test_js_distance_bounds_and_histogram():
    a = ab_histogram(np.array([[0.0, 0.0]] * 10))
    b = ab_histogram(np.array([[60.0, -60.0]] * 10))
    assert js_distance(a, a) == 0.0
    assert js_distance(a, b) == pytest.approx(1.0)
    mix = a + b
    assert 0 < js_distance(a, mix) < 1


def test_histogram_puts_grey_in_one_bin_whatever_the_rounding():
    """Grey's a/b come out of colour conversion as +-1e-6, not 0: they must land in grey's bin."""
    noise = np.random.default_rng(0).normal(0, 1e-5, (1000, 2))
    assert np.array_equal(ab_histogram(noise), ab_histogram(np.zeros((1000, 2))))
    assert js_distance(ab_histogram(noise), ab_histogram(np.zeros((1, 2)))) == 0.0
    # a real colour is 1 bin away per 11 Lab units, and the range's ends clip into the last bins
    assert ab_histogram(np.array([[11.0, 0.0]])).argmax() != ab_histogram(np.zeros((1, 2))).argmax()
    assert ab_histogram(np.array([[500.0, -500.0]])).sum() == 1


def test_boot_palettes_and_shades():
    assert BOOT_PALETTES[BOOT_DEFAULT].tolist() == [[255, 255, 255], [0x7B, 0xFF, 0x31], [0x00, 0x63, 0xC5], [0, 0, 0]]
    assert len(BOOT_PALETTES) == 16
    assert dmg_shade(np.asarray(DMG_LEVELS_L)).tolist() == [3, 2, 1, 0]   # black .. white


def test_tile_snap_is_the_group_mean_and_exports(tmp_path):
    torch.manual_seed(0)
    net = models.create("unet_small")
    snap = TileSnap(net).eval()
    shade = torch.randint(0, 4, (1, 1, 144, 160))
    x = torch.tensor(DMG_LEVELS_L / 100)[shade]
    with torch.no_grad():
        raw, out = net(x), snap(x)
    sh = shade[0, 0].numpy()
    for ty, tx in ((0, 0), (5, 7), (17, 19)):
        for k in range(4):
            m = sh[ty * 8:ty * 8 + 8, tx * 8:tx * 8 + 8] == k
            if m.any():
                tile_raw = raw[0, :, ty * 8:ty * 8 + 8, tx * 8:tx * 8 + 8].numpy()[:, m]
                tile_out = out[0, :, ty * 8:ty * 8 + 8, tx * 8:tx * 8 + 8].numpy()[:, m]
                np.testing.assert_allclose(tile_out, tile_raw.mean(1, keepdims=True).repeat(m.sum(), 1), atol=1e-5)
    # export: the snap travels in the graph, and so does a changed temperature
    stem = tmp_path / "run" / "best"
    save_model(stem, net, {"arch": "unet_small", "arch_kwargs": {}})
    rep = export_onnx(stem.parent, tmp_path / "snap.onnx", tile_snap=True, temperature=0.2, timing_seconds=0.1,
                      log=None)
    assert rep["parity_max_abs"] < 1e-3
    card = json.loads((tmp_path / "snap.json").read_text())
    assert card["checkpoint_meta"]["tile_snap"] is True and card["arch_kwargs"]["temperature"] == 0.2
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "snap.onnx"), providers=["CPUExecutionProvider"])
    y = sess.run(None, {sess.get_inputs()[0].name: x.numpy().astype(np.float32)})[0]
    assert np.isfinite(y).all()
    net.temperature = 0.2
    with torch.no_grad():
        np.testing.assert_allclose(y, TileSnap(net).eval()(x).numpy(), atol=1e-4)


def test_chroma_export_scales_a_b_and_nothing_else(tmp_path):
    """``export --chroma``: the same net's a/b times the factor, in the graph and in the card."""
    import onnxruntime as ort

    torch.manual_seed(0)
    net = models.create("tile_palette").eval()
    stem = tmp_path / "run" / "best"
    save_model(stem, net, {"arch": "tile_palette", "arch_kwargs": {}})
    shade = torch.randint(0, 4, (2, 1, 144, 160), generator=torch.Generator().manual_seed(3))
    x = torch.tensor(DMG_LEVELS_L / 100, dtype=torch.float32)[shade]
    outs = {}
    for name, chroma in (("full", None), ("half", 0.45)):
        export_onnx(stem.parent, tmp_path / f"{name}.onnx", chroma=chroma, timing_seconds=0.1, log=None)
        sess = ort.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        outs[name] = sess.run(None, {"L": x.numpy()})[0]
    assert np.abs(outs["full"]).max() > 0.01          # a net that paints something
    np.testing.assert_allclose(outs["half"], 0.45 * outs["full"], atol=1e-6)
    card = json.loads((tmp_path / "half.json").read_text())
    assert card["checkpoint_meta"]["chroma"] == 0.45 and "chroma" not in json.loads(
        (tmp_path / "full.json").read_text())["checkpoint_meta"]
    for bad in (0.0, 1.5):
        with pytest.raises(UserError, match="chroma"):
            export_onnx(stem.parent, tmp_path / "bad.onnx", chroma=bad, log=None)
    assert not (tmp_path / "bad.onnx").exists()


def test_ensemble_export_averages_its_members(tmp_path):
    """``export A B --chroma S``: one graph whose a/b is S x the mean of A's and B's, listed in the card."""
    import onnxruntime as ort

    shade = torch.randint(0, 4, (2, 1, 144, 160), generator=torch.Generator().manual_seed(3))
    x = torch.tensor(DMG_LEVELS_L / 100, dtype=torch.float32)[shade].numpy()
    outs, runs = [], []
    for seed in (0, 1):
        torch.manual_seed(seed)
        stem = tmp_path / f"s{seed}" / "best"
        save_model(stem, models.create("tile_palette").eval(),
                   {"arch": "tile_palette", "arch_kwargs": {}, "config": {"seed": seed}})
        export_onnx(stem.parent, tmp_path / f"s{seed}.onnx", timing_seconds=0.1, log=None)
        sess = ort.InferenceSession(str(tmp_path / f"s{seed}.onnx"), providers=["CPUExecutionProvider"])
        outs.append(sess.run(None, {"L": x})[0])
        runs.append(stem.parent)
    assert np.abs(outs[0] - outs[1]).max() > 1e-3          # two different nets
    export_onnx(runs, tmp_path / "ens.onnx", chroma=0.8, timing_seconds=0.1, log=None)
    sess = ort.InferenceSession(str(tmp_path / "ens.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"L": x})[0], 0.8 * (outs[0] + outs[1]) / 2, atol=1e-5)
    card = json.loads((tmp_path / "ens.json").read_text())
    assert [m["seed"] for m in card["checkpoint_meta"]["ensemble"]] == [0, 1]
    assert card["description"].startswith("mean of 2 tile_palette nets")
    stem = tmp_path / "lab" / "best"
    save_model(stem, models.create("tile_palette").eval(),
               {"arch": "tile_palette", "arch_kwargs": {}, "normalisation": {"output": "other"}})
    with pytest.raises(UserError, match="normalise differently"):
        export_onnx([runs[0], stem.parent], tmp_path / "bad.onnx", log=None)
    assert not (tmp_path / "bad.onnx").exists()


def test_evaluate_reports_the_look_and_boot_palettes_by_game(tmp_path):
    for i, g in enumerate(("alpha", "beta", "gamma")):
        write_game(tmp_path / "data" / g, 6, seed=i, twins=6, w=64, h=48)
    torch.manual_seed(0)
    stem = tmp_path / "model" / "best"
    save_model(stem, models.create("v0"), {})
    rep = evaluate(stem.parent, [tmp_path / "data"], input_mode="dmg", baseline_train=[tmp_path / "data"],
                   show_progress=False)
    assert set(rep["per_game"]) == {"alpha", "beta", "gamma"}
    for g in rep["per_game"].values():
        assert g["ratio_to_gray"] == pytest.approx(g["mse_ab"] / g["baselines"]["gray"]["mse_ab"])
        look = g["look"]
        assert 0 <= look["tile_uniformity"] <= 1 and 0 <= look["hist_js"] <= 1
        assert look["colourfulness_truth"] > 0
        best, default = g["baselines"]["boot_best"], g["baselines"]["boot_default"]
        assert best["palette"] in BOOT_PALETTES and best["mse_ab"] <= default["mse_ab"]
    bg = rep["by_game"]
    assert bg["games"] == 3 and bg["grey_truth_games"] == 0
    assert bg["share_below_gray"] == pytest.approx(np.mean([g["ratio_to_gray"] < 1 for g in rep["per_game"].values()]))
    ratios = sorted(g["ratio_to_gray"] for g in rep["per_game"].values())
    assert bg["median_ratio_to_gray"] == pytest.approx(ratios[1])
    assert bg["boot_best_median_ratio_to_gray"] <= bg["boot_default_median_ratio_to_gray"]
    text = format_report(rep)
    assert "by game" in text and "best palette" in text and "hindsight" in text


def test_boot_palette_baseline_by_hand(tmp_path):
    """A game whose colour art *is* a boot palette: that palette is the hindsight-best, with mse_ab 0."""
    pal = BOOT_PALETTES["down+a"]
    rng = np.random.default_rng(0)
    d = tmp_path / "data" / "pal"
    (d / "dmg").mkdir(parents=True)
    from utils.images import write_png

    for i in range(3):
        shade = rng.integers(0, 4, (48, 64))
        write_png(d / f"s0_{i:07d}.png", pal[shade])
        write_png(d / "dmg" / f"s0_{i:07d}.png", (255 - 85 * shade).astype(np.uint8))
    torch.manual_seed(0)
    stem = tmp_path / "model" / "best"
    save_model(stem, models.create("v0"), {})
    rep = evaluate(stem.parent, [tmp_path / "data"], input_mode="dmg", baseline_train=[tmp_path / "data"],
                   show_progress=False)
    best = rep["per_game"]["pal"]["baselines"]["boot_best"]
    assert best["palette"] == "down+a" and best["mse_ab"] == pytest.approx(0.0, abs=1e-9)
    assert rep["per_game"]["pal"]["baselines"]["boot_default"]["mse_ab"] > 0.01


def test_commit_where_sure_mixes_the_bold_and_the_safe_decode():
    """``UNet.commit``: all bold where the top bin holds more than ``hi``, the plain decode below ``lo``."""
    torch.manual_seed(0)
    net = models.create("unet_small").eval()
    x = torch.tensor(DMG_LEVELS_L / 100, dtype=torch.float32)[torch.randint(0, 4, (1, 1, 32, 40))]
    with torch.no_grad():
        plain = net(x)
        net.temperature = 0.1
        bold = net(x)
        net.temperature = 0.38
        net.commit = (-1.0, 0.0, 0.1)       # every pixel "sure": the bold decode
        assert torch.allclose(net(x), bold, atol=1e-6)
        net.commit = (1.5, 2.0, 0.1)        # none sure: the plain decode
        assert torch.allclose(net(x), plain, atol=1e-6)
        net.commit = (0.0, 1.0, 0.1)        # in between: strictly between the two somewhere
        mid = net(x)
    assert not torch.allclose(mid, plain) and not torch.allclose(mid, bold)
