"""Build a routing ONNX model (``models.router``) from three colorizer ONNX files.

    python scripts/build_router.py --primary P.onnx --fallback F.onnx --monochrome M.onnx \
        --levels-from runs/compare/split/train -o weights/default.onnx

``--levels-from`` names the primary's training frames (a dataset root or game folders): each
game's lightness-level histogram decides which frames count as "a known game" (see the module
docstring of ``models.router``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from dataset.color import rgb_to_lab  # noqa: E402
from dataset.loader import load_frames  # noqa: E402
from models.router import (  # noqa: E402
    DEFAULT_MIN_SHARE,
    DEFAULT_THRESHOLD,
    build_router,
    dmg_row,
    game_rows,
    level_counts,
)
from utils.errors import UserError  # noqa: E402
from utils.fsio import atomic_write_bytes  # noqa: E402


def router_table(levels_from: list[Path], min_share: float = DEFAULT_MIN_SHARE,
                 limit_per_game: int | None = None) -> tuple[list[str], np.ndarray]:
    """(games, table) from training frames: row 0 the DMG shades, then one row per game."""
    fs = load_frames(levels_from, size=None, limit_per_game=limit_per_game)
    counts = {}
    for gi, g in enumerate(fs.games):
        sel = np.flatnonzero(fs.game == gi)
        c = np.zeros(256, np.int64)
        for s in range(0, len(sel), 256):
            c += level_counts(rgb_to_lab(fs.rgb[sel[s:s + 256]])[..., 0])
        counts[g] = c
    names, rows = game_rows(counts, min_share)
    return names, np.concatenate([dmg_row()[None], rows])


def make(primary: Path, fallback: Path, monochrome: Path, levels_from: list[Path], out: Path,
         threshold: float = DEFAULT_THRESHOLD, min_share: float = DEFAULT_MIN_SHARE,
         table: tuple[list[str], np.ndarray] | None = None) -> dict:
    """Write the router to ``out``; returns what it holds (for a model card), the table included.

    ``table``: a ``router_table`` result to reuse (it decodes every training frame), else it is
    built from ``levels_from``.
    """
    import onnx

    names, table = table if table is not None else router_table(levels_from, min_share)
    model = build_router(primary, fallback, monochrome, names, table, threshold,
                         meta={"components": {"primary": primary.name, "fallback": fallback.name,
                                              "monochrome": monochrome.name}})
    atomic_write_bytes(out, model.SerializeToString())
    onnx.checker.check_model(str(out))
    return {"games": names, "threshold": threshold, "min_share": min_share, "table": table,
            "levels_per_game": {g: int(r.sum()) for g, r in zip(names, table[1:], strict=True)}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--primary", type=Path, required=True, help="best on the known games (e.g. unet_lut_fast)")
    ap.add_argument("--fallback", type=Path, required=True, help="for unknown games (e.g. unet)")
    ap.add_argument("--monochrome", type=Path, required=True, help="for 4-shade monochrome input")
    ap.add_argument("--levels-from", type=Path, nargs="+", required=True, help="the primary's training frames")
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    ap.add_argument("--min-share", type=float, default=DEFAULT_MIN_SHARE)
    ap.add_argument("-o", "--output", type=Path, required=True)
    a = ap.parse_args()
    try:
        info = make(a.primary, a.fallback, a.monochrome, a.levels_from, a.output, a.threshold, a.min_share)
    except UserError as e:
        print(f"build_router: {e}", file=sys.stderr)
        return 1
    print(f"router -> {a.output} ({len(info['games'])} games, threshold {a.threshold})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
