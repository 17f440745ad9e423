"""The default router's known-game gate for monochrome input: build its table, measure it, ship it.

Every 4-shade frame used to go to the monochrome specialist, which learned the twins of 11 games
and is worse than grey on games it never saw (issue #13: 1.18 x grey on the 30 held-out games).
The gate (``models.router.add_known_gate``) sends a 4-shade frame to the specialist only when
most of its 8x8 windows occur in the specialist's training twins, and every other one to
``unseen``, the net trained for games nobody has shown it.

    python scripts/known_gate.py measure --known runs/compare/split/train \\
        --seen runs/compare/split/val --unseen runs/unseen/val --json runs/gate/val.json
    python scripts/known_gate.py ship --known runs/compare/split/train --threshold 0.8 \
        --seen runs/compare/split/val --unseen runs/unseen/val \
        --test-seen runs/compare/split/test --test-unseen runs/unseen/test

``measure`` prints, per game, the share of windows found in the table (min / median / max over
frames) and the share of frames that would go to the specialist; pick the threshold on
validation folders.  ``ship`` rewrites ``weights/default.onnx`` (and its int8 twin) with the
gate, refusing a router that has one already, and records the gate in ``default.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.errors import UserError  # noqa: E402
from utils.fsio import atomic_write_bytes, atomic_write_json  # noqa: E402


def twin_shades(folders: list[str], limit: int | None = None) -> tuple[list[str], list[np.ndarray]]:
    """Per game, the (N, H, W) shade indices (0 = darkest) of its monochrome twins."""
    from dataset.color import gray_to_l
    from dataset.loader import load_frames
    from models.router import shade_index

    fs = load_frames(folders, show_progress=False, limit_per_game=limit)
    if fs.dmg is None or fs.has_dmg is None or not fs.has_dmg.any():
        raise UserError(f"no monochrome twins under {', '.join(folders)}")
    names, out = [], []
    for gi, g in enumerate(fs.games):
        m = fs.has_dmg & (fs.game == gi)
        if m.any():
            names.append(g)
            # the shades exactly as the graph takes them: from the Lab L the model is fed
            out.append(shade_index(gray_to_l(fs.dmg[m])))
    return names, out


def build_table(known: list[str]) -> tuple[np.ndarray, dict]:
    from models.router import GATE_BITS, known_windows

    names, shades = twin_shades(known)
    table = known_windows(np.concatenate(shades))
    bits = np.unpackbits(table, bitorder="little")
    info = {"games": names, "twins": int(sum(len(s) for s in shades)), "bits": GATE_BITS,
            "windows_known": int(bits.sum()), "fill": round(float(bits.mean()), 4)}
    return table, info


def measure(table: np.ndarray, folders: dict[str, list[str]], threshold: float, limit: int | None) -> dict:
    from models.router import window_shares

    report: dict = {}
    for kind, paths in folders.items():
        if not paths:
            continue
        names, shades = twin_shades(paths, limit)
        rows = {}
        for g, s in zip(names, shades, strict=True):
            v = np.array([window_shares(fr, table) for fr in s])
            rows[g] = {"frames": len(v), "min": round(float(v.min()), 3), "median": round(float(np.median(v)), 3),
                       "max": round(float(v.max()), 3), "to_specialist": round(float((v >= threshold).mean()), 3)}
        report[kind] = rows
    return report


def print_report(report: dict, threshold: float) -> None:
    for kind, rows in report.items():
        print(f"{kind}: {len(rows)} games; share of frames sent to the specialist at threshold {threshold}")
        for g, r in rows.items():
            print(f"  {g:32s} {r['frames']:4d} frames  windows known min/median/max "
                  f"{r['min']:.2f}/{r['median']:.2f}/{r['max']:.2f}  -> specialist {r['to_specialist']:.0%}")
        allmin = min(r["min"] for r in rows.values())
        allmax = max(r["max"] for r in rows.values())
        sent = np.mean([r["to_specialist"] for r in rows.values()])
        print(f"  all: min {allmin:.3f}, max {allmax:.3f}, mean share of frames to the specialist {sent:.1%}")


def ship(table: np.ndarray, info: dict, threshold: float, weights_dir: Path, unknown: Path,
         report: dict | None) -> None:
    import onnx

    from models.router import add_known_gate

    card_path = weights_dir / "default.json"
    card = json.loads(card_path.read_text())
    for name in ("default.onnx", "default.int8.onnx"):
        path = weights_dir / name
        if not path.is_file():
            continue
        model = add_known_gate(path, unknown, table, threshold,
                               meta={"gate_games": info["games"]})
        atomic_write_bytes(path, model.SerializeToString())
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
        onnx.checker.check_model(str(path))
    card["gate"] = {
        "what": "4-shade (monochrome) frames go to the monochrome specialist only when at least "
                f"{threshold:.0%} of their non-uniform 8x8 windows occur in its training twins (a hashed "
                f"bit table of {info['windows_known']} windows, 2**{info['bits']} bits, fill {info['fill']}); "
                f"every other 4-shade frame goes to {unknown.stem} (the net for games it has never seen)",
        "threshold": threshold, "unknown": unknown.name, **info,
        "chosen": "threshold = the lowest share among the known games' validation twins (0.869) less a "
                  "0.05 margin, rounded to 0.05: an unknown game must not reach the specialist",
        "recipe": "python scripts/known_gate.py ship --known runs/compare/split/train "
                  f"--threshold {threshold} --seen runs/compare/split/val --unseen runs/unseen/val "
                  "--test-seen runs/compare/split/test --test-unseen runs/unseen/test",
    }
    if report is not None:
        card["gate"]["measured"] = report
    card["arch"] = "router(unet_lut_fast | unet | gate(unet_small | unseen))"
    unknown_card = unknown.with_suffix(".json")
    if unknown_card.is_file() and "params" in card:
        card["params"] = int(card["params"]) + int(json.loads(unknown_card.read_text()).get("params", 0))
    card["description"] = ("genre-wide default: one routing graph of four nets: unet_lut_fast for the 21 games of "
                           "shared/data/gbc it was trained on, the shape-only unet (generic) for colour frames of "
                           "games it has never seen, and for 4-shade (DMG) input a known-game gate between the "
                           "monochrome specialist (unet_small, 11 games' twins) and unseen (monochrome games it "
                           "has never seen)")
    atomic_write_json(card_path, card)
    print(f"wrote {card_path}")


def main() -> int:
    from models.router import DEFAULT_GATE_THRESHOLD

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("measure", "ship"):
        p = sub.add_parser(name)
        p.add_argument("--known", nargs="+", required=True, help="the specialist's training folders (with dmg/ twins)")
        p.add_argument("--seen", nargs="*", default=[], help="held-out frames of the known games")
        p.add_argument("--unseen", nargs="*", default=[], help="games the specialist never saw")
        p.add_argument("--test-seen", nargs="*", default=[], help="reported only, after the threshold is fixed")
        p.add_argument("--test-unseen", nargs="*", default=[], help="reported only, after the threshold is fixed")
        p.add_argument("--threshold", type=float, default=DEFAULT_GATE_THRESHOLD)
        p.add_argument("--limit-per-game", type=int, default=60)
        p.add_argument("--json", type=Path)
    sub.choices["ship"].add_argument("--weights", type=Path, default=Path("weights"))
    sub.choices["ship"].add_argument("--unknown", type=Path, default=Path("weights/unseen.onnx"))
    a = ap.parse_args()
    try:
        table, info = build_table(a.known)
        print(f"table: {info['twins']} twins of {len(info['games'])} games, {info['windows_known']} windows, "
              f"fill {info['fill']:.1%}")
        report = measure(table, {"seen": a.seen, "unseen": a.unseen, "test_seen": a.test_seen,
                                 "test_unseen": a.test_unseen}, a.threshold, a.limit_per_game)
        print_report(report, a.threshold)
        if a.json:
            atomic_write_json(a.json, {"threshold": a.threshold, "table": info, "report": report})
        if a.cmd == "ship":
            ship(table, info, a.threshold, a.weights, a.unknown, report or None)
    except UserError as e:
        print(f"known_gate: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
