"""Reproduce the README's architecture comparison: same data, same step budget, same held-out frames.

    python scripts/compare.py --shared ../shared --out runs/compare

1. Splits ``shared/data/gbc`` by contiguous time blocks (``retrocolor dataset split`` defaults).
2. Holds 5 games out entirely (never seen in training) and trains every arch on the train blocks
   of the other 16 games, validating on their val blocks, with one shared budget (steps x batch).
3. Evaluates each model and the gray / lookup-table baselines (fitted on the same training
   frames) on: the test blocks of the 16 seen games (input L and, where twins exist, the real
   monochrome twins) and on the 5 unseen games (input L).
4. Writes ``OUT/results.json`` and ``OUT/table.md``.

Training time is wall time on whatever machine runs this (the README says which).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import models  # noqa: E402
from dataset.tools import split  # noqa: E402
from models.evaluate import evaluate  # noqa: E402
from models.flops import count_macs  # noqa: E402
from models.train import TrainConfig, train  # noqa: E402

HELD_OUT = ["catmario-gb", "dawn-will-come", "gb-wordyl", "labirinth", "snake"]
ROWS = [  # (row name, arch, preset)
    ("v0", "v0", "ours"),
    ("v1 (reference recipe)", "v1", "reference"),
    ("v1", "v1", "ours"),
    ("v2", "v2", "ours"),
    ("fusion", "fusion", "ours"),
    ("unet (ours)", "unet", "ours"),
    ("unet_lut (ours)", "unet_lut", "ours"),
]


def _metrics(rep: dict) -> dict:
    keep = ("mse_ab", "delta_e", "acc10", "psnr", "n_frames")
    return {
        "model": {k: rep["overall"][k] for k in keep},
        "gray": {k: rep["baselines"]["gray"][k] for k in keep},
        "lut": {k: rep["baselines"]["lut"][k] for k in keep},
        "per_game": {
            g: {"model": v["mse_ab"], "gray": v["baselines"]["gray"]["mse_ab"], "lut": v["baselines"]["lut"]["mse_ab"]}
            for g, v in rep["per_game"].items()
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--out", type=Path, default=Path("runs/compare"))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--steps-per-epoch", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--rows", nargs="*", default=None, help="subset of row names to run")
    ap.add_argument("--limit-unseen", type=int, default=200, help="frames per unseen game to evaluate")
    a = ap.parse_args()

    gbc = a.shared / "data" / "gbc"
    a.out.mkdir(parents=True, exist_ok=True)
    print(split([gbc], a.out / "split", by="time"))
    seen = sorted(p.name for p in (a.out / "split" / "train").iterdir() if p.is_dir() and p.name not in HELD_OUT)
    train_dirs = [a.out / "split" / "train" / g for g in seen]
    val_dirs = [a.out / "split" / "val" / g for g in seen]
    test_dirs = [a.out / "split" / "test" / g for g in seen]
    unseen_dirs = [gbc / g for g in HELD_OUT]

    results_path = a.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for row, arch, preset in ROWS:
        if a.rows and row not in a.rows:
            continue
        if row in results:
            print(f"[{row}] done already")
            continue
        run = a.out / "runs" / row.split(" ")[0] / preset
        cfg = TrainConfig(
            arch=arch, data=train_dirs, val=val_dirs, out=run, preset=preset, epochs=a.epochs,
            steps_per_epoch=a.steps_per_epoch, batch_size=a.batch_size, crop=a.crop, seed=0,
            resume=(run / "state.json").exists(),
        )
        t0 = time.time()
        res = train(cfg)
        train_s = time.time() - t0
        print(res)
        net = models.create(arch, **json.loads((res.best_path.with_suffix(".json")).read_text()).get("arch_kwargs", {}))
        entry = {
            "arch": arch, "preset": preset, "params": models.count_params(net), "macs": count_macs(net, 144, 160),
            "train_seconds": round(train_s, 1),
            "steps": a.epochs * a.steps_per_epoch, "batch_size": a.batch_size, "crop": a.crop,
        }
        grid = a.out / f"grid_{row.split(' ')[0]}_{preset}.png"
        entry["seen_L"] = _metrics(evaluate(run, test_dirs, input_mode="L", grid_path=grid, show_progress=False))
        entry["seen_dmg"] = _metrics(evaluate(run, test_dirs, input_mode="dmg", show_progress=False))
        entry["unseen_L"] = _metrics(
            evaluate(run, unseen_dirs, input_mode="L", limit_per_game=a.limit_unseen, show_progress=False)
        )
        results[row] = entry
        results_path.write_text(json.dumps(results, indent=2))
        m = entry["seen_L"]["model"]
        print(f"[{row}] seen L mse_ab {m['mse_ab']:.4f} acc10 {m['acc10']:.3f}")

    (a.out / "table.md").write_text(table(results, a))
    print(table(results, a))
    return 0


def table(results: dict, a: argparse.Namespace) -> str:
    """Markdown table: one row per model plus the baselines (from the first model's evaluation)."""
    lines = [
        "| model | params | MACs @160x144 | train time | seen games, L: mse_ab / acc10 "
        "| seen games, DMG twin: mse_ab / acc10 | unseen games, L: mse_ab / acc10 |",
        "|---|---|---|---|---|---|---|",
    ]

    def cell(m: dict) -> str:
        return f"{m['mse_ab']:.4f} / {m['acc10']:.3f}"

    first = next(iter(results.values()), None)
    if first is not None:
        for base in ("gray", "lut"):
            lines.append(
                f"| baseline: {'gray (ab = 0)' if base == 'gray' else 'lookup table (mean ab per L)'} | 0 | 0 | - "
                f"| {cell(first['seen_L'][base])} | {cell(first['seen_dmg'][base])} | {cell(first['unseen_L'][base])} |"
            )
    for row, e in results.items():
        lines.append(
            f"| {row} | {e['params']:,} | {e['macs'] / 1e6:.0f} M | {e['train_seconds'] / 60:.1f} min "
            f"| {cell(e['seen_L']['model'])} | {cell(e['seen_dmg']['model'])} | {cell(e['unseen_L']['model'])} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
