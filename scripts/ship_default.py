"""Turn a training run into a shipped model: ONNX (fp32 + int8), measured model card, README figures.

    python scripts/ship_default.py RUN --name default --split runs/compare/split \
        --description "genre-wide default: all 21 games of shared/data/gbc"

Router mode (``--fallback ONNX --monochrome RUN``): the run and the monochrome run are exported
to a components folder and ``weights/NAME.onnx`` becomes one routing graph of the three
(``models.router``, ``scripts/build_router.py``), ``NAME.int8.onnx`` the same with the run's
int8 export; the card then also says how the test frames were routed.

Steps, all through the project's own APIs so the figures are the ones users would get:
1. ``models.export.export_onnx`` -> ``weights/NAME.onnx`` and ``weights/NAME.int8.onnx``
   (parity-checked, int8 calibrated on the split's validation frames).
2. ``models.evaluate.evaluate`` of the fp32 and int8 ONNX files on the split's *test* blocks
   (input L, the 4-shade posterised L, and the real monochrome twins), per game.
3. ``realtime.bench.run_bench`` for latency.
4. The model card ``weights/NAME.json``: arch, parameters, MACs at 160x144, training data and
   recipe, held-out metrics per game, latency.  Paths are written relative to the data root so
   the card means the same on every machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import models  # noqa: E402
from models.checkpoint import load_model  # noqa: E402
from models.evaluate import evaluate  # noqa: E402
from models.export import export_onnx  # noqa: E402
from models.flops import count_macs  # noqa: E402
from realtime.bench import run_bench  # noqa: E402
from utils.fsio import atomic_write_json  # noqa: E402

KEYS = ("mse_ab", "delta_e", "acc10", "psnr", "n_frames")


def _short(rep: dict) -> dict:
    def pick(d: dict) -> dict:
        return {k: (round(d[k], 5) if isinstance(d[k], float) else d[k]) for k in KEYS if k in d}

    return {
        "overall": pick(rep["overall"]),
        "baselines": {b: pick(rep["baselines"][b]) for b in ("gray", "lut")},
        "per_game": {
            g: {**pick(v), "baselines": {b: pick(v["baselines"][b]) for b in ("gray", "lut")}}
            for g, v in rep["per_game"].items()
        },
    }


def _ms(path: Path) -> float:
    """Median ms per 160x144 frame on onnxruntime, 1 thread; random lightness (a router's fallback branch)."""
    import time

    import numpy as np
    import onnxruntime as ort

    from utils.ort import session_options

    sess = ort.InferenceSession(str(path), session_options(1), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(0, 1, (1, 1, 144, 160)).astype(np.float32)
    name = sess.get_inputs()[0].name
    times = []
    for _ in range(120):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - t)
    return round(float(np.median(times[20:])) * 1000, 3)


def _component_card(onnx_path: Path) -> dict:
    """arch / params / MACs of an exported model, from its card (or its checkpoint's)."""
    card = json.loads(onnx_path.with_suffix(".json").read_text())
    out = {"arch": card.get("arch"), "params": card.get("params"), "macs_160x144": card.get("macs_160x144"),
           "file": onnx_path.name}
    if out["params"] is None or out["macs_160x144"] is None:
        m = models.create(card["arch"], **(card.get("arch_kwargs") or {}))
        out["params"], out["macs_160x144"] = models.count_params(m), count_macs(m, 144, 160)
    return out


def _ship_router(a: argparse.Namespace, onnx: Path) -> dict:
    """Export the run and the monochrome run, then build the fp32 and int8 routers into ``onnx``."""
    from build_router import make

    comp = a.components or (ROOT / "runs" / f"{a.name}_components")
    comp.mkdir(parents=True, exist_ok=True)
    primary, mono = comp / "primary.onnx", comp / "monochrome.onnx"
    export_onnx(a.run, primary, calib=[a.split / "val"], int8=True, calib_frames=128)
    export_onnx(a.monochrome, mono, calib=[a.split / "val"], calib_frames=64)
    info = make(primary, a.fallback, mono, [a.split / "train"], onnx)
    table = info["table"]
    make(primary.with_name("primary.int8.onnx"), a.fallback, mono, [a.split / "train"],
         onnx.with_name(f"{a.name}.int8.onnx"), table=(info["games"], table))
    fb = _component_card(a.fallback) if a.fallback.with_suffix(".json").exists() else {"arch": "?", "params": 0,
                                                                                     "macs_160x144": 0}
    return {
        "primary_card": primary.with_suffix(".json"),
        "fallback": fb,
        "monochrome": _component_card(mono),
        "table": table,
        "fp32_ms": _ms(onnx),
        "int8_ms": _ms(onnx.with_name(f"{a.name}.int8.onnx")),
        "card": {
            "what": "one ONNX graph, three nets; only the chosen one runs per frame (models.router)",
            "primary": "frames whose lightness levels fit a known game's (the games below)",
            "fallback": f"other colour frames (games never seen): {a.fallback.name}",
            "monochrome": "4-shade monochrome frames (a DMG game, or a DMG palette the engine recognised)",
            "threshold": info["threshold"], "min_share": info["min_share"], "games": info["games"],
            "monochrome_recipe": a.monochrome_recipe,
        },
    }


def _routing(test: Path, table, threshold: float) -> dict:
    """How the test frames are routed, per input and game (the graph's own arithmetic)."""
    from dataset.color import gray_to_l, rgb_to_lab
    from dataset.loader import load_frames
    from models.router import route_numpy

    fs = load_frames([test], size=None, with_dmg=True, show_progress=False)
    out: dict = {"L": {}, "dmg": {}}
    for i in range(len(fs)):
        g = fs.games[fs.game[i]]
        r = route_numpy(rgb_to_lab(fs.rgb[i])[..., 0], table, threshold)
        out["L"].setdefault(g, {}).setdefault(r, 0)
        out["L"][g][r] += 1
        if fs.has_dmg is not None and fs.has_dmg[i]:
            r = route_numpy(gray_to_l(fs.dmg[i]), table, threshold)
            out["dmg"].setdefault(g, {}).setdefault(r, 0)
            out["dmg"][g][r] += 1
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="training run folder (its best checkpoint is shipped)")
    ap.add_argument("--name", default="default")
    ap.add_argument("--split", type=Path, required=True, help="the split the run was trained on (train/val/test)")
    ap.add_argument("--description", required=True)
    ap.add_argument("--recipe", default="", help="the command that trained the run, for the card")
    ap.add_argument("--bench-seconds", type=float, default=5.0)
    ap.add_argument("--out", type=Path, default=ROOT / "weights")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs", help="where the gallery PNG goes")
    ap.add_argument("--fallback", type=Path, default=None,
                    help="ONNX model for games the run never saw: ship a router (models.router) of the run, "
                         "this and --monochrome")
    ap.add_argument("--monochrome", type=Path, default=None,
                    help="training run of the monochrome specialist (router mode)")
    ap.add_argument("--monochrome-recipe", default="", help="the command that trained --monochrome, for the card")
    ap.add_argument("--components", type=Path, default=None,
                    help="where the router's parts are exported (default runs/NAME_components)")
    a = ap.parse_args()
    if (a.fallback is None) != (a.monochrome is None):
        ap.error("--fallback and --monochrome go together (router mode)")

    onnx = a.out / f"{a.name}.onnx"
    router = None
    if a.fallback is None:
        export_onnx(a.run, onnx, calib=[a.split / "val"], int8=True, calib_frames=128)
    else:
        router = _ship_router(a, onnx)
    model, meta = load_model(a.run)
    test = [a.split / "test"]
    a.docs.mkdir(parents=True, exist_ok=True)
    results = {}
    for mode in ("L", "dmg4", "dmg"):
        grid = a.docs / f"gallery_{a.name}_{mode}.png" if mode in ("L", "dmg") else None
        rep = evaluate(onnx, test, input_mode=mode, baseline_train=[a.split / "train"], grid_path=grid,
                       show_progress=False)
        results[mode] = _short(rep)
        o = rep["overall"]
        print(f"{mode:5s} fp32: mse_ab {o['mse_ab']:.5f} acc10 {o['acc10']:.3f} delta_e {o['delta_e']:.2f} "
              f"| lut {rep['baselines']['lut']['mse_ab']:.5f} gray {rep['baselines']['gray']['mse_ab']:.5f}")
    int8 = onnx.with_name(f"{a.name}.int8.onnx")
    rep8 = evaluate(int8, test, input_mode="L", baseline_train=[a.split / "train"], show_progress=False)
    print(f"L     int8: mse_ab {rep8['overall']['mse_ab']:.5f} acc10 {rep8['overall']['acc10']:.3f}")
    bench_json = a.out.parent / "runs" / f"bench_{a.name}.json"
    bench_json.parent.mkdir(parents=True, exist_ok=True)
    bench = run_bench([str(onnx)], seconds=a.bench_seconds, json_path=bench_json)

    card_path = onnx.with_suffix(".json")
    card = json.loads((card_path if router is None else router["primary_card"]).read_text())
    ck = card.pop("checkpoint_meta", {}) or {}
    card.update({
        "name": a.name,
        "description": a.description,
        "default": a.name == "default",
        "params": models.count_params(model),
        "macs_160x144": count_macs(model, 144, 160),
        "training": {
            "data": "shared/data/gbc, contiguous time blocks (retrocolor dataset split, 20 blocks, gap 2, seed 0): "
                    "train blocks; validation blocks for model selection",
            "recipe": a.recipe,
            "epochs": ck.get("epoch"),
            "games": ck.get("games"),
            "preset": (ck.get("config") or {}).get("preset") if isinstance(ck.get("config"), dict) else None,
        },
        "held_out": {
            "what": "test blocks of the same split (other stretches of play of the same games); "
                    "baselines: gray (ab = 0) and a lookup table fitted on the train blocks",
            "fp32": results,
            "int8_L": _short(rep8),
        },
        "latency": bench,
        "metrics": results["L"]["overall"],
    })
    if router is not None:
        card.update({
            "arch": f"router({card['arch']} | {router['fallback']['arch']} | {router['monochrome']['arch']})",
            "params": card["params"] + router["fallback"]["params"] + router["monochrome"]["params"],
            "macs_160x144": max(card["macs_160x144"], router["fallback"]["macs_160x144"],
                                router["monochrome"]["macs_160x144"]),
            "fp32_ms": router["fp32_ms"],
            "router": router["card"],
        })
        card["int8"] = {"path": f"{a.name}.int8.onnx", "int8_ms": router["int8_ms"],
                        "what": "the same router with the primary net quantised to int8 (static QDQ)"}
        card["routing"] = _routing(a.split / "test", router["table"], router["card"]["threshold"])
    # The card travels inside the wheel: file names, not this machine's paths.
    if isinstance(card.get("int8"), dict) and card["int8"].get("path"):
        card["int8"]["path"] = Path(card["int8"]["path"]).name
    for row in bench.values():
        if isinstance(row, dict) and row.get("model_path"):
            row["model_path"] = Path(row["model_path"]).name
    atomic_write_json(card_path, card)
    print(f"card -> {card_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
