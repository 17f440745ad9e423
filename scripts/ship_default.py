"""Turn a training run into a shipped model: ONNX (fp32 + int8), measured model card, README figures.

    python scripts/ship_default.py RUN --name default --split runs/compare/split \
        --description "genre-wide default: all 21 games of shared/data/gbc"

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
    a = ap.parse_args()

    onnx = a.out / f"{a.name}.onnx"
    export_onnx(a.run, onnx, calib=[a.split / "val"], int8=True, calib_frames=128)
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
    card = json.loads(card_path.read_text())
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
