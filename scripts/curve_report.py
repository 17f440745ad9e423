"""Score the runs of ``scripts/learning_curve.sh`` on the held-out games and print the curve.

    python scripts/curve_report.py runs/unseen runs/curve [--ref f1-s0=runs/uinit/best.safetensors]

Each run ``OUT/fF-sS/best.safetensors`` is exported at full chroma (``retrocolor export``) and
scored by ``scripts/unseen.py eval`` on the val and the test games (40 frames a game, real
monochrome input).  Nothing is chosen from these figures: the curve asks whether more training
games help, so both sets are reported, and their 40 games pooled.  Writes ``OUT/curve.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _score(split: Path, onnx: Path, games: str, out: Path) -> dict:
    if not out.is_file():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "unseen.py"), "eval", str(split), "--games", games,
                        "--limit-per-game", "40", "--models", str(onnx), "--json", str(out)],
                       check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text(encoding="utf-8"))[str(onnx)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("split", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--ref", action="append", default=[], help="NAME=CHECKPOINT: a run trained elsewhere")
    a = ap.parse_args()
    runs = {p.parent.name: p for p in sorted(a.out.glob("f*-s*/best.safetensors"))}
    for r in a.ref:
        name, sep, ckpt = r.partition("=")
        if not sep or not Path(ckpt).is_file():
            ap.error(f"--ref {r}: want NAME=CHECKPOINT, an existing .safetensors")
        runs[name] = Path(ckpt)
    rows = {}
    for name, ckpt in sorted(runs.items()):
        onnx = a.out / "onnx" / f"{name}.onnx"
        log = a.out / f"{name}.log"
        if log.is_file() and "best:" not in log.read_text(errors="replace"):
            print(f"{name}: still training (or stopped early), skipped", file=sys.stderr)
            continue
        if not onnx.is_file() or onnx.stat().st_mtime < ckpt.stat().st_mtime:
            for old in a.out.glob(f"eval_*_{name}.json"):
                old.unlink()
            onnx.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, str(ROOT / "retrocolor.py"), "export", str(ckpt), "-o", str(onnx)],
                           check=True, stdout=subprocess.DEVNULL)
        per = {}
        for games in ("val", "test"):
            rep = _score(a.split, onnx, games, a.out / f"eval_{games}_{name}.json")
            per.update({f"{games}:{g}": m for g, m in rep["per_game"].items()})
        info = a.out / "data" / f"{name}.json"
        n_games = len(json.loads(info.read_text())["games"]) if info.is_file() else None
        best = None
        if log.is_file():
            m = re.search(r"best epoch (\d+)/", log.read_text(errors="replace"))
            best = int(m.group(1)) if m else None
        row = {"games": n_games, "best_epoch": best}
        for sel in ("val", "test", "all"):
            ms = [m for k, m in per.items() if (sel == "all" or k.startswith(sel + ":"))
                  and m.get("ratio_to_gray") is not None]
            r = np.array([m["ratio_to_gray"] for m in ms])
            c = [m["look"].get("colourfulness_ratio") for m in ms]
            h = [m["look"].get("hist_js_ratio") for m in ms]
            row[sel] = {"median": float(np.median(r)), "below": int((r < 1).sum()), "n": len(r),
                        "colour": float(np.median([x for x in c if x is not None])),
                        "hist_js": float(np.median([x for x in h if x is not None]))}
        rows[name] = row
    (a.out / "curve.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print("run          games  best ep  val mse/grey (below)  test mse/grey (below)  "
          "all 40: mse/grey (below)  colour  histJS")
    for name, r in rows.items():
        print(f"{name:12s} {r['games'] or '-':>5}  {r['best_epoch'] or '-':>7}  "
              f"{r['val']['median']:.2f} ({r['val']['below']}/{r['val']['n']})"
              f"{'':9s}{r['test']['median']:.2f} ({r['test']['below']}/{r['test']['n']})"
              f"{'':10s}{r['all']['median']:.2f} ({r['all']['below']}/{r['all']['n']}){'':12s}"
              f"{r['all']['colour']:.2f}    {r['all']['hist_js']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
