"""`retrocolor bench`: it runs and writes the documented JSON schema (timings are not asserted)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_onnx

from realtime import bench
from utils.errors import UserError


def test_bench_json_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    model = tiny_onnx(tmp_path / "tiny.onnx")
    shutil.copy(model, tmp_path / "tiny.int8.onnx")  # an int8 twin is benchmarked too
    out = tmp_path / "bench.json"
    lines: list[str] = []
    res = bench.run_bench([str(model)], frames=30, json_path=out, log=lines.append)
    data = json.loads(out.read_text())
    assert set(data) == {"tiny", "tiny.int8"} == set(res)
    for entry in data.values():
        assert entry["fps"] > 0 and entry["frames"] == 30
        assert set(entry["latency_ms"]) == {"p50", "p99"}
        assert set(entry["stages_ms"]) == {"capture", "preprocess", "inference", "postprocess", "display"}
        for st in entry["stages_ms"].values():
            assert 0 <= st["p50"] <= st["p99"]
        assert entry["latency_ms"]["p50"] >= entry["stages_ms"]["inference"]["p50"]
        assert "in-memory" in entry["capture"] and "dummy" in entry["display"]  # says what it could not measure
    assert any("fps sustained" in ln for ln in lines)


def test_game_frames_look_like_a_dmg_game() -> None:
    frames = bench.game_frames(10)
    assert frames.shape == (10, 144, 160) and frames.dtype == np.uint8
    assert set(np.unique(frames)) == {0, 85, 170, 255}
    assert not np.array_equal(frames[0], frames[1])  # it moves


def test_bench_without_models(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import weights

    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(UserError, match="no shipped model"):
        bench.run_bench(None, frames=5, log=None)
    with pytest.raises(UserError, match="--frames"):
        bench.run_bench([str(tiny_onnx(tmp_path / "m.onnx"))], frames=0, log=None)


def test_cli_bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import retrocolor

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    model = tiny_onnx(tmp_path / "m.onnx")
    out = tmp_path / "b.json"
    argv = ["bench", "--model", str(model), "--frames", "30", "--input-scale", "2", "--json", str(out)]
    assert retrocolor.main(argv) == 0
    assert "m: " in capsys.readouterr().out
    assert json.loads(out.read_text())["m"]["input"].startswith("320x288")
