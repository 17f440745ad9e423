"""Evaluation: metric values by hand, baselines, input modes, ONNX == checkpoint, JSON schema."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import make_game_frames, shared_path

import models
import retrocolor
from dataset.color import l_ab_to_rgb, rgb_to_lab
from models.checkpoint import save_model
from models.evaluate import evaluate, format_report
from models.metrics import METRIC_KEYS, PSNR_CAP, LutBaseline, frame_metrics, rgb_to_lab_fast
from utils.images import write_png

KEYS = set(METRIC_KEYS) | {"n_frames"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_frames(d: Path, frames: np.ndarray, twins: dict[int, np.ndarray] | None = None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        write_png(d / f"f{i:03d}.png", f)
    for i, t in (twins or {}).items():
        write_png(d / "dmg" / f"f{i:03d}.png", t)
    return d


def ckpt(tmp_path: Path, meta: dict | None = None, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    stem = tmp_path / "model" / "best"
    save_model(stem, models.create("v0"), meta or {})
    return stem.parent


@pytest.fixture
def games(tmp_path: Path) -> Path:
    root = tmp_path / "val"
    write_frames(root / "alpha", make_game_frames(6, 1, w=32, h=24),
                 twins={i: np.full((24, 32), 85 * (i % 4), np.uint8) for i in (0, 2, 4)})
    write_frames(root / "beta", make_game_frames(4, 2, w=32, h=24))
    return root


def test_metric_definitions_by_hand() -> None:
    rng = np.random.default_rng(0)
    true = rng.normal(0, 30, (2, 4, 4, 2)).astype(np.float32)
    pred = true + np.array([3.0, 4.0], np.float32)  # delta E exactly 5 everywhere
    m = frame_metrics(pred, true)
    assert np.allclose(m["mse_ab"], (9 + 16) / 2 / 128**2)
    assert np.allclose(m["delta_e"], 5.0) and np.allclose(m["acc10"], 1.0)
    assert np.all(np.isnan(m["psnr"]))
    rgb = make_game_frames(1, 0, w=16, h=16)
    lab = rgb_to_lab(rgb)
    m = frame_metrics(lab[..., 1:], lab[..., 1:], lab[..., 0], rgb)
    assert m["mse_ab"][0] == 0 and m["psnr"][0] == PSNR_CAP
    far = frame_metrics(lab[..., 1:] + 20, lab[..., 1:], lab[..., 0], rgb)
    rebuilt = l_ab_to_rgb(lab[0, ..., 0], lab[0, ..., 1:] + 20).astype(float)
    assert np.isclose(far["psnr"][0], 10 * np.log10(255**2 / ((rebuilt - rgb[0]) ** 2).mean()))
    assert far["acc10"][0] == 0
    assert np.array_equal(rgb_to_lab_fast(rgb), lab)


def test_gray_baseline_by_hand_and_json_schema(games: Path, tmp_path: Path) -> None:
    js = tmp_path / "r.json"
    rep = evaluate(ckpt(tmp_path), [games], baseline_train=[games], json_path=js, show_progress=False)
    doc = json.loads(js.read_text())
    assert set(doc["overall"]) == KEYS
    assert set(doc["baselines"]) == {"gray", "lut"} and all(set(doc["baselines"][k]) == KEYS for k in ("gray", "lut"))
    assert set(doc["per_game"]) == {"alpha", "beta"}
    for g in doc["per_game"].values():
        assert set(g) == KEYS | {"baselines", "ratio_to_gray", "look"} and set(g["baselines"]["lut"]) == KEYS
    # gray: mean over frames of mean((ab/128)^2), by hand.
    frames = np.concatenate([make_game_frames(6, 1, w=32, h=24), make_game_frames(4, 2, w=32, h=24)])
    ab = rgb_to_lab(frames)[..., 1:].astype(np.float64) / 128.0
    by_hand = float(np.mean([np.mean(f**2) for f in ab]))
    assert doc["baselines"]["gray"]["mse_ab"] == pytest.approx(by_hand, rel=1e-9)
    alpha = float(np.mean([np.mean(f**2) for f in ab[:6]]))
    assert doc["per_game"]["alpha"]["baselines"]["gray"]["mse_ab"] == pytest.approx(alpha, rel=1e-9)
    assert doc["overall"]["n_frames"] == 10 and doc["per_game"]["beta"]["n_frames"] == 4
    # The palette maps L to colour exactly: the LUT (fitted on these frames) beats gray by far.
    assert doc["baselines"]["lut"]["mse_ab"] < doc["baselines"]["gray"]["mse_ab"] / 10
    assert doc["baselines"]["lut"]["acc10"] > 0.99
    text = format_report(rep)
    assert "gray baseline" in text and "LUT baseline" in text and "alpha" in text


def test_lut_beats_gray_on_held_out_frames(tmp_path: Path) -> None:
    train = write_frames(tmp_path / "train" / "g", make_game_frames(6, 7, w=32, h=24))
    val = write_frames(tmp_path / "val" / "g", make_game_frames(5, 8, w=32, h=24))
    rep = evaluate(ckpt(tmp_path, {"data": [str(train)]}), [val], show_progress=False)
    assert rep["lut"]["source"].startswith("model training data")
    assert rep["baselines"]["lut"]["mse_ab"] < 0.2 * rep["baselines"]["gray"]["mse_ab"]
    # Unit level: a LUT with one L level fitted to two colours predicts their mean.
    lut = LutBaseline(4)
    lut.update(np.array([10.0, 10.0, 90.0]), np.array([[10.0, 0.0], [30.0, 0.0], [5.0, 5.0]]))
    assert np.allclose(lut.predict(np.array([10.0, 90.0, 60.0])), [[20, 0], [5, 5], [15, 5 / 3]])


def test_dmg_mode_skips_frames_without_twin(games: Path, tmp_path: Path) -> None:
    rep = evaluate(ckpt(tmp_path), [games], input_mode="dmg", baseline_train=[games], show_progress=False)
    assert rep["overall"]["n_frames"] == 3
    assert rep["skipped"]["no_twin"] == {"alpha": 3, "beta": 4} and rep["skipped"]["no_twin_total"] == 7
    assert list(rep["per_game"]) == ["alpha"]
    assert rep["lut"]["filled_bins"] <= 4
    assert "skipped 7 frames without a monochrome twin" in format_report(rep)
    d4 = evaluate(ckpt(tmp_path), [games], input_mode="dmg4", baseline_train=[games], show_progress=False)
    assert d4["overall"]["n_frames"] == 10 and d4["lut"]["filled_bins"] <= 4


def test_onnx_matches_checkpoint(games: Path, tmp_path: Path) -> None:
    import warnings

    model_dir = ckpt(tmp_path, seed=3)
    from models.checkpoint import load_model

    net, _ = load_model(model_dir)
    onnx_path = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(1, 1, 24, 32), str(onnx_path), input_names=["L"], output_names=["ab"],
                          dynamic_axes={"L": {0: "b"}, "ab": {0: "b"}}, dynamo=False)
    a = evaluate(model_dir, [games], baseline_train=[games], show_progress=False)
    b = evaluate(onnx_path, [games], baseline_train=[games], show_progress=False)
    assert b["model"]["kind"] == "onnx"
    for k in METRIC_KEYS:
        assert b["overall"][k] == pytest.approx(a["overall"][k], rel=1e-4, abs=1e-6)
        assert b["baselines"]["lut"][k] == a["baselines"]["lut"][k]
    # And the model is not trivially the gray baseline (the comparison could not fail otherwise).
    assert a["overall"]["mse_ab"] != pytest.approx(a["baselines"]["gray"]["mse_ab"], rel=1e-3)


def test_grid_and_cli(games: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid, js = tmp_path / "g.png", tmp_path / "e.json"
    rc = retrocolor.main(["evaluate", str(ckpt(tmp_path)), "--data", str(games), "--baseline-train", str(games),
                          "--grid", str(grid), "--json", str(js), "--limit-per-game", "3"])
    out = capsys.readouterr().out
    assert rc == 0 and "model (overall)" in out
    img = cv2.imread(str(grid))
    assert img.shape == (2 * (14 + 3 * 24), 3 * 32, 3)
    assert json.loads(js.read_text())["overall"]["n_frames"] == 6


def test_no_lut_source_is_reported_not_fatal(games: Path, tmp_path: Path) -> None:
    rep = evaluate(ckpt(tmp_path), [games], show_progress=False)
    assert rep["baselines"]["lut"] is None and "baseline-train" in rep["lut"]["note"]


def test_exported_model_fits_its_lut_from_the_recorded_training_data(games: Path, tmp_path: Path) -> None:
    """An exported model's card keeps the checkpoint's data path: evaluate needs no --baseline-train."""
    from models.export import export_onnx

    d = ckpt(tmp_path, meta={"arch": "v0", "data": [str(games)]})
    export_onnx(d, tmp_path / "m.onnx", timing_seconds=0.05, log=None)
    rep = evaluate(tmp_path / "m.onnx", [games], show_progress=False)
    assert rep["baselines"]["lut"] is not None and str(games) in rep["lut"]["source"]


def test_bad_models_are_one_line_errors(games: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = ckpt(tmp_path)
    st = d / "best.safetensors"
    st.write_bytes(st.read_bytes()[:100])
    for model, word in ((str(d), "truncated"), (str(tmp_path / "nope.onnx"), "not found"),
                        (str(tmp_path / "nothing"), "not found")):
        rc = retrocolor.main(["evaluate", model, "--data", str(games)])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and "\n" not in err and word in err, err
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    rc = retrocolor.main(["evaluate", str(tmp_path / "bad.onnx"), "--data", str(games)])
    assert rc == 2 and "ONNX" in capsys.readouterr().err


@pytest.mark.shared
def test_real_twins_slice(tmp_path: Path) -> None:
    gbc = shared_path("data", "gbc")
    model = ckpt(tmp_path, {"data": [str(gbc / "big2small")], "limit_per_game": 40,
                            "holdout": {"fraction": 0.1, "gap": 2}})
    rep = evaluate(model, [gbc / "corrib75"], input_mode="dmg", limit_per_game=12, show_progress=False)
    n = rep["overall"]["n_frames"]
    assert n + rep["skipped"]["no_twin_total"] == 12 and n > 0
    from dataset.loader import load_frames

    twins = load_frames([gbc / "big2small"], limit_per_game=40, show_progress=False).has_dmg
    assert rep["lut"]["fit_frames"] == int(twins[:34].sum()) > 0  # training block only, twins only
    assert rep["lut"]["filled_bins"] <= 4
    assert all(np.isfinite(rep[k]["mse_ab"]) for k in ("overall",)) and rep["baselines"]["lut"]["n_frames"] == n
    assert list(rep["per_game"]) == ["corrib75"] and "input dmg" in format_report(rep)


def test_weighted_metrics_equal_per_pixel() -> None:
    from models.metrics import frame_metrics_weighted

    rgb = make_game_frames(3, 4, w=24, h=16)
    lab = rgb_to_lab(rgb)
    lut = LutBaseline(8)
    lut.update(lab[..., 0], lab[..., 1:] * 0.5 + 7)  # a deliberately poor table
    per_pixel = frame_metrics(lut.predict(lab[..., 0]), lab[..., 1:], lab[..., 0], rgb)
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    key = (np.arange(3)[:, None, None] << 24) | (r << 16) | (g << 8) | b
    _, first, count = np.unique(key.ravel(), return_index=True, return_counts=True)
    f = first // (24 * 16)
    flat_lab, flat_rgb = lab.reshape(-1, 3)[first], rgb.reshape(-1, 3)[first]
    w = frame_metrics_weighted(f, count, lut.predict(flat_lab[:, 0]), flat_lab[:, 1:], flat_lab[:, 0], flat_rgb, 3)
    for k in METRIC_KEYS:
        assert np.allclose(w[k], per_pixel[k], rtol=1e-9), k
    assert per_pixel["acc10"].max() < 1 and per_pixel["psnr"].max() < PSNR_CAP


def test_dmg_input_with_a_colour_only_lut_source_falls_back_to_its_4_shade_look(games: Path, tmp_path: Path) -> None:
    """A model trained on a colour longplay, scored on real twins: its training frames have no
    twins, so the LUT baseline is fitted on their 4-shade look (said so), not refused."""
    colour_only = tmp_path / "longplay"
    write_frames(colour_only / "alpha", make_game_frames(6, 1, w=32, h=24))
    rep = evaluate(ckpt(tmp_path), [games], input_mode="dmg", baseline_train=[colour_only], show_progress=False)
    assert rep["overall"]["n_frames"] == 3
    assert "4-shade look" in rep["lut"]["source"] and rep["lut"]["filled_bins"] <= 4
    assert "lut" in rep["baselines"] and rep["baselines"]["lut"]["mse_ab"] is not None
