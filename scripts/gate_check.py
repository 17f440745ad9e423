"""Leave-one-game-out check of the router's known-game gate (``models.router``), no training needed.

    python scripts/gate_check.py runs/compare/split

For each game: the gate's table is built from the *other* games' train blocks, and we count how
many of this game's test frames it would still call "a known game" (primary) rather than send to
the fallback.  A good gate sends a game it does not know to the fallback; a game whose palette's
lightness levels all coincide with another game's cannot be told apart by this gate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset.color import rgb_to_lab  # noqa: E402
from dataset.loader import load_frames  # noqa: E402
from models.router import (  # noqa: E402
    DEFAULT_MIN_SHARE,
    DEFAULT_THRESHOLD,
    dmg_row,
    game_rows,
    level_counts,
    route_numpy,
)


def per_game_levels(root: Path) -> dict[str, list[np.ndarray]]:
    """Lab L of every frame under ``root``, per game."""
    fs = load_frames([root], size=None, show_progress=False)
    out: dict[str, list[np.ndarray]] = {}
    for i in range(len(fs)):
        out.setdefault(fs.games[fs.game[i]], []).append(rgb_to_lab(fs.rgb[i])[..., 0])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("split", type=Path, help="a split folder with train/ and test/")
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    ap.add_argument("--min-share", type=float, default=DEFAULT_MIN_SHARE)
    a = ap.parse_args()
    train = {g: level_counts(np.stack(ls)) for g, ls in per_game_levels(a.split / "train").items()}
    test = per_game_levels(a.split / "test")
    told = 0
    for g in sorted(test):
        names, rows = game_rows({o: c for o, c in train.items() if o != g}, a.min_share)
        table = np.concatenate([dmg_row()[None], rows])
        routes = [route_numpy(L, table, a.threshold) for L in test[g]]
        fb = routes.count("fallback") / len(routes)
        told += fb > 0.5
        print(f"{g:24s} without it in the table: {fb:5.0%} of {len(routes)} test frames to the fallback")
    print(f"unknown games sent mostly to the fallback: {told} of {len(test)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
