"""Genre models for games never seen, routed by clusters learned from the frames (step 7).

    retrocolor dataset genres runs/unseen/train -o runs/genres/k3.json --clusters 3
    retrocolor train ... --genre c0 --genres runs/genres/k3.json --init ...  # one model per cluster
    python scripts/unseen.py eval runs/unseen --games val --models BASE C0.onnx C1.onnx ... --json E.json
    python scripts/genre_router.py runs/unseen --games val --genres runs/genres/k3.json --eval E.json \\
        --base BASE --experts c0=C0.onnx c1=C1.onnx c2=C2.onnx

Each held-out game is placed in a cluster from its own monochrome frames (``dataset.genres.assign``
on the real twins, no colour seen), and scored by that cluster's model.  The report gives the
routed figures beside the base model's, over all games and per cluster: whether a genre model
beats the one model for every game on the games that fall in its genre.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.errors import UserError  # noqa: E402
from utils.fsio import atomic_write_json  # noqa: E402


def game_clusters(games_dir: Path, doc: dict, limit: int = 60) -> dict[str, int]:
    """Each game folder's cluster, from its real monochrome twins (frames without one are skipped)."""
    from dataset.genres import assign, frame_shades
    from dataset.loader import find_game_folders
    from utils.images import list_images, read_gray, read_rgb

    out = {}
    for g in find_game_folders([games_dir]):
        shades = []
        for f in list_images(g.frames):
            if g.dmg is None or not (g.dmg / f.name).is_file():
                continue
            shades.append(frame_shades(read_rgb(f), read_gray(g.dmg / f.name)))
            if len(shades) >= limit:
                break
        if shades:
            out[g.name] = assign(np.stack(shades), doc)
    return out


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _medians(rows: list[dict]) -> dict:
    rows = [x for x in rows if x["ratio_to_gray"] is not None]  # grey exact (no colour in the truth): no ratio
    if not rows:
        return {"games": 0, "median_ratio_to_gray": None, "share_below_gray": None,
                "median_colourfulness_ratio": None, "median_hist_js_ratio": None}
    r = [x["ratio_to_gray"] for x in rows]
    return {"games": len(rows), "median_ratio_to_gray": float(np.median(r)),
            "share_below_gray": float(np.mean([v < 1 for v in r])),
            "median_colourfulness_ratio": float(np.median([x["look"]["colourfulness_ratio"] for x in rows])),
            "median_hist_js_ratio": float(np.median([x["look"]["hist_js_ratio"] for x in rows]))}


def route(split: Path, which: str, genres: Path, eval_json: Path, base: str, experts: dict[str, str]) -> dict:
    """Routed against base figures, overall and per cluster."""
    from dataset.genres import load_genres

    doc = load_genres(genres)
    names = list(doc["groups"])
    clusters = game_clusters(split / which, doc)
    reports = json.loads(eval_json.read_text(encoding="utf-8"))
    for m in [base, *experts.values()]:
        if m not in reports:
            raise UserError(f"{eval_json}: no report for {m!r} (run scripts/unseen.py eval with it)")
    routed, based, per = [], [], {}
    lines = [f"{'game':26} {'cluster':>7} {'base':>6} {'routed':>6}"]
    for game, c in sorted(clusters.items()):
        name = names[c]
        model = experts.get(name, base)
        b = reports[base]["per_game"][game]
        r = reports[model]["per_game"][game]
        based.append(b)
        routed.append(r)
        per.setdefault(name, {"base": [], "routed": []})
        per[name]["base"].append(b)
        per[name]["routed"].append(r)
        lines.append(f"{game[:26]:26} {name:>7} {_f(b['ratio_to_gray']):>6} {_f(r['ratio_to_gray']):>6}")
    out = {"games": which, "clusters": {g: names[c] for g, c in clusters.items()},
           "base": _medians(based), "routed": _medians(routed),
           "per_cluster": {k: {"base": _medians(v["base"]), "routed": _medians(v["routed"])} for k, v in per.items()}}
    print("\n".join(lines))
    for label in ("base", "routed"):
        m = out[label]
        if m["games"]:
            print(f"{label:6} over {m['games']} {which} games: mse/gray {_f(m['median_ratio_to_gray'])}, below grey "
                  f"{100 * m['share_below_gray']:.0f}%, colourfulness {_f(m['median_colourfulness_ratio'])}, "
                  f"hist JS {_f(m['median_hist_js_ratio'])}")
    for k, v in sorted(out["per_cluster"].items()):
        print(f"cluster {k} ({v['base']['games']} games): base {_f(v['base']['median_ratio_to_gray'])}, "
              f"routed {_f(v['routed']['median_ratio_to_gray'])}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("split", type=Path, help="scripts/unseen.py split folder")
    ap.add_argument("--games", choices=["val", "test"], default="val")
    ap.add_argument("--genres", type=Path, required=True, help="clusters JSON (retrocolor dataset genres --clusters)")
    ap.add_argument("--eval", type=Path, required=True, help="scripts/unseen.py eval JSON with every model below")
    ap.add_argument("--base", required=True, help="the one model for every game (as named in --eval)")
    ap.add_argument("--experts", nargs="+", required=True, help="CLUSTER=MODEL (as named in --eval)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    try:
        experts = dict(e.split("=", 1) for e in a.experts)
        out = route(a.split, a.games, a.genres, a.eval, a.base, experts)
        if a.json:
            atomic_write_json(a.json, out)
    except (UserError, ValueError) as e:
        print(f"genre_router: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
