"""ONNX export (models.export): parity with torch, int8 quantisation, metadata, errors, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import make_game_frames

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

import models  # noqa: E402
from models import export as ex  # noqa: E402
from models.checkpoint import save_model  # noqa: E402
from utils.errors import UserError  # noqa: E402
from utils.images import write_png  # noqa: E402

META = {"description": "tiny test colorizer", "games": ["aevilia", "airaki"], "metrics": {"val": {"mse_ab": 123.4}},
        "data": {"train": ["somewhere/train"]}}
#: int8 vs fp32 on the calibration frames, Lab units.  Measured 1.16 (max) and 0.21 (mse) for this
#: model; the bounds leave ~3x margin for other CPUs' rounding.
INT8_MAX_ABS_AB = 4.0
INT8_MSE_AB = 1.0


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = models.create("v0")
    with torch.no_grad():
        model.dec[-2].weight.mul_(8.0)  # an untrained v0 predicts almost grey; spread its colours
    d = tmp_path_factory.mktemp("ck")
    save_model(d / "best", model, META)
    return d


@pytest.fixture(scope="module")
def calib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("calib")
    for i, f in enumerate(make_game_frames(12, 1)):
        write_png(d / f"f{i:02d}.png", f)
    return d


@pytest.fixture(scope="module")
def exported(ckpt: Path, calib: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("onnx") / "v0.onnx"
    report = ex.export_onnx(ckpt, out, calib=[calib], int8=True, timing_seconds=0.05, log=None)
    return report


def _torch_model(ckpt: Path) -> torch.nn.Module:
    from models.checkpoint import load_model

    return load_model(ckpt)[0]


def test_fp32_parity_at_two_sizes_and_batch_2(ckpt: Path, exported: dict) -> None:
    model = _torch_model(ckpt)
    sess = ort.InferenceSession(exported["output"], providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["L"] and [o.name for o in sess.get_outputs()] == ["ab"]
    rng = np.random.default_rng(0)
    for shape in [(2, 1, 144, 160), (1, 1, 96, 128)]:
        x = rng.random(shape, dtype=np.float32)
        got = sess.run(["ab"], {"L": x})[0]
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        assert got.shape == (shape[0], 2, shape[2], shape[3])
        assert np.abs(got - ref).max() < 1e-4
        assert ref.std() > 0.01  # the comparison is not between two constant outputs
    assert exported["dynamic"] is True
    assert exported["parity_max_abs"] < 1e-4
    assert exported["frames"] == 12 and "calib" in exported["frames_source"]


def test_int8_model_is_written_and_close_to_fp32(exported: dict, calib: Path) -> None:
    q = exported["int8"]
    assert Path(q["path"]).is_file() and q["path"].endswith("v0.int8.onnx")
    assert 0 < q["max_abs_ab"] < INT8_MAX_ABS_AB
    assert 0 < q["mse_ab"] < INT8_MSE_AB
    assert q["speedup"] > 0 and q["int8_ms"] > 0
    # Independently: the int8 graph really is quantised and runs on new frames.
    import onnx

    ops = {n.op_type for n in onnx.load(q["path"]).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    x = ex.calibration_frames([calib], 4)
    a = ort.InferenceSession(exported["output"], providers=["CPUExecutionProvider"]).run(["ab"], {"L": x})[0]
    b = ort.InferenceSession(q["path"], providers=["CPUExecutionProvider"]).run(["ab"], {"L": x})[0]
    assert np.abs(a - b).max() * 128 < INT8_MAX_ABS_AB


def test_metadata_round_trip(exported: dict) -> None:
    from realtime.engine import Colorizer

    meta = ex.read_metadata(exported["output"])
    for k, v in META.items():
        assert meta[k] == v
    assert meta["arch"] == "v0" and meta["normalisation"]["output"] == "ab/128"
    assert meta["format"] == ex.FORMAT and meta["onnx"]["opset"] == 17
    # Each top-level key is also its own metadata_props entry, for generic ONNX viewers.
    import onnx

    props = {p.key: p.value for p in onnx.load(exported["output"]).metadata_props}
    assert props["arch"] == "v0" and json.loads(props["games"]) == META["games"]
    # The engine reads the same metadata without torch or onnx.
    col = Colorizer(exported["output"])
    assert col.meta["games"] == META["games"] and col.meta["metrics"] == META["metrics"]
    assert Colorizer(exported["int8"]["path"]).meta["quantization"]["type"].startswith("static int8")
    card = json.loads(Path(exported["card"]).read_text())
    assert card["description"] == META["description"] and card["arch"] == "v0"
    assert card["int8"]["path"] == exported["int8"]["path"]


def test_parity_failure_writes_nothing(ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ex, "FP32_TOLERANCE", 0.0)
    out = tmp_path / "bad.onnx"
    with pytest.raises(UserError, match="disagrees with torch"):
        ex.export_onnx(ckpt, out, log=None, timing_seconds=0.01)
    assert list(tmp_path.iterdir()) == []


def test_export_errors(ckpt: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="needs real calibration"):
        ex.export_onnx(ckpt, tmp_path / "m.onnx", int8=True, log=None)
    with pytest.raises(UserError, match=r"\.onnx"):
        ex.export_onnx(ckpt, tmp_path / "m.bin", log=None)
    with pytest.raises(UserError, match="not found"):
        ex.export_onnx(tmp_path / "nope", tmp_path / "m.onnx", log=None)
    with pytest.raises(UserError, match="not found"):
        ex.calibration_frames([tmp_path / "missing"])


def test_cli_export(ckpt: Path, calib: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import retrocolor

    out = tmp_path / "cli.onnx"
    assert retrocolor.main(["export", str(ckpt), "-o", str(out), "--calib", str(calib), "--calib-frames", "4"]) == 0
    text = capsys.readouterr().out
    assert "parity onnxruntime vs torch on 4 frames" in text and out.is_file() and out.with_suffix(".json").is_file()
    assert retrocolor.main(["export", str(ckpt), "-o", str(tmp_path / "x.onnx"), "--int8-output", "y.onnx"]) == 2
