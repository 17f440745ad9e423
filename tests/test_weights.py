"""The shipped models: listed, loadable without torch, and as good as their model cards say."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, make_game_frames, shared_path

import weights

SHIPPED = weights.list_models()
#: Games whose held-out figures the card-reproduction test re-measures (a fixed slice: 3 of 21).
CHECK_GAMES = ["aevilia", "big2small", "gunpey"]


def test_a_default_model_is_shipped_with_a_complete_card() -> None:
    names = [m["name"] for m in SHIPPED]
    assert "default" in names
    for m in SHIPPED:
        card = m["card"]
        for key in ("arch", "params", "macs_160x144", "training", "held_out", "latency", "description"):
            assert key in card, f"{m['name']}: model card lacks {key!r}"
        assert m["path"].stat().st_size < 5_000_000, "shipped weights must stay small"
        if m["int8_path"]:
            # A router's int8 twin quantises its primary net only: the generic, monochrome and unseen
            # nets and the gate's 1 MB table stay fp32 (4.16 of 4.81 MB with a 1.3 MB unseen net).
            ratio = 0.9 if card.get("router") else 0.5
            assert m["int8_path"].stat().st_size < ratio * m["path"].stat().st_size
            assert card["held_out"]["int8_L"]["per_game"], "the card must carry the int8 model's figures too"
        assert card["held_out"]["fp32"]["L"]["per_game"], "the card must carry per-game held-out metrics"
        # The card ships inside the wheel: no paths of the machine that made it.
        text = m["path"].with_suffix(".json").read_text()
        assert not re.search(r'"(/|[A-Za-z]:\\\\)[^"]*"', text), f"{m['name']}: absolute path in the model card"


def test_shipped_models_run_on_the_base_install_without_torch(tmp_path: Path) -> None:
    """The player path (weights -> realtime) with torch made unimportable, as on `pip install retrocolor`."""
    frame = make_game_frames(1, seed=3)[0].mean(axis=2).astype(np.uint8)
    np.save(tmp_path / "f.npy", frame)
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np, weights\n"
        "from realtime.engine import Colorizer\n"
        "f = np.load(sys.argv[1])\n"
        "for m in weights.list_models():\n"
        "    for name in [m['name']] + ([m['name'] + '.int8'] if m['int8_path'] else []):\n"
        "        out = Colorizer(name).colorize(np.repeat(np.repeat(f, 2, 0), 2, 1))\n"
        "        assert out.shape == (288, 320, 3), out.shape\n"
        "        chroma = np.abs(out.astype(int) - out.mean(axis=2, keepdims=True)).mean()\n"
        "        print(name, round(float(chroma), 2))\n"
        "assert 'torch' not in sys.modules or sys.modules['torch'] is None\n"
        "assert not any(k == 'models' or k.startswith('models.') for k in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "f.npy")], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for line in r.stdout.splitlines():
        name, chroma = line.split()
        assert float(chroma) > 1.0, f"{name} returned a grey frame: it did not colorize"


VARIANTS = [(m["name"], "fp32") for m in SHIPPED] + [(m["name"], "int8") for m in SHIPPED if m["int8_path"]]


@pytest.mark.shared
@pytest.mark.parametrize("model,variant", VARIANTS)
def test_card_metrics_reproduce_on_held_out_frames(model: str, variant: str, tmp_path: Path) -> None:
    """Rebuild the card's split from ../shared and re-measure 3 games: fp32 within 5% of the card.

    int8 figures depend on the CPU: onnxruntime's int8 kernels round differently with and without
    VNNI (a VNNI machine measured aevilia at 0.0059 against the card's 0.0077).  So for int8 the
    card's figure is checked as what it is, a bound: no more than 30% worse than the card, and
    never better than the fp32 model (which would mean the quantised graph is not the one shipped).
    """
    pytest.importorskip("torch")  # models.evaluate lives in the training extra
    from dataset.tools import split
    from models.evaluate import evaluate

    gbc = shared_path("data", "gbc")
    split([gbc], tmp_path / "split", by="time")  # the card's split: defaults (20 blocks, gap 2, seed 0)
    card = next(m for m in SHIPPED if m["name"] == model)["card"]
    held = card["held_out"]
    per_game = held["fp32"]["L"]["per_game"] if variant == "fp32" else held["int8_L"]["per_game"]
    test_dirs = [tmp_path / "split" / "test" / g for g in CHECK_GAMES]
    rep = evaluate(weights.resolve(model, int8=variant == "int8"), test_dirs, input_mode="L",
                   baseline_train=[tmp_path / "split" / "train" / g for g in CHECK_GAMES], show_progress=False)
    fp32 = held["fp32"]["L"]["per_game"]
    for g in CHECK_GAMES:
        got, want = rep["per_game"][g], per_game[g]
        assert got["n_frames"] == want["n_frames"], g
        if variant == "fp32":
            assert got["mse_ab"] == pytest.approx(want["mse_ab"], rel=0.05, abs=2e-4), g
            assert got["acc10"] == pytest.approx(want["acc10"], abs=0.01), g
        else:
            assert fp32[g]["mse_ab"] * 0.95 - 2e-4 <= got["mse_ab"] <= want["mse_ab"] * 1.3 + 2e-4, g
            assert got["acc10"] >= want["acc10"] - 0.05, g
    assert json.loads(json.dumps(rep["overall"]))  # the report stays JSON-serialisable


ROUTERS = [m["name"] for m in SHIPPED if m["card"].get("router")]
#: Dual-mode games of CHECK_GAMES: their real monochrome twins are re-measured too.
TWIN_GAMES = ["big2small", "gunpey"]


@pytest.mark.shared
@pytest.mark.parametrize("model", ROUTERS)
def test_router_card_twins_and_routing_reproduce(model: str, tmp_path: Path) -> None:
    """A routing model's card: its monochrome-twin figures and how its test frames were routed."""
    pytest.importorskip("torch")
    from dataset.color import gray_to_l, rgb_to_lab
    from dataset.loader import load_frames
    from dataset.tools import split
    from models.evaluate import evaluate
    from models.router import route_numpy

    split([shared_path("data", "gbc")], tmp_path / "split", by="time")
    card = next(m for m in SHIPPED if m["name"] == model)["card"]
    test_dirs = [tmp_path / "split" / "test" / g for g in TWIN_GAMES]
    rep = evaluate(weights.resolve(model), test_dirs, input_mode="dmg",
                   baseline_train=[tmp_path / "split" / "train" / g for g in TWIN_GAMES], show_progress=False)
    for g in TWIN_GAMES:
        got, want = rep["per_game"][g], card["held_out"]["fp32"]["dmg"]["per_game"][g]
        assert got["n_frames"] == want["n_frames"], g
        assert got["mse_ab"] == pytest.approx(want["mse_ab"], rel=0.05, abs=2e-4), g
        assert got["acc10"] == pytest.approx(want["acc10"], abs=0.01), g
    # the routing the card reports, recomputed with the graph's own table
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(weights.resolve(model))).graph
    table = next(numpy_helper.to_array(t) for t in graph.initializer if t.name == "r_table")
    fs = load_frames(test_dirs, size=None, with_dmg=True, show_progress=False)
    counts: dict[str, dict[str, int]] = {}
    for i in range(len(fs)):
        g = fs.games[fs.game[i]]
        r = route_numpy(rgb_to_lab(fs.rgb[i])[..., 0], table, card["router"]["threshold"])
        counts.setdefault(g, {}).setdefault(r, 0)
        counts[g][r] += 1
        if fs.has_dmg[i]:
            assert route_numpy(gray_to_l(fs.dmg[i]), table, card["router"]["threshold"]) == "monochrome"
    assert counts == {g: card["routing"]["L"][g] for g in TWIN_GAMES}
