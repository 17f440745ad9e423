"""Write the README gallery: held-out frames as grey input | a shipped model's colours | truth.

    python scripts/gallery.py --data runs/compare/split/test --games aevilia big2small ... -o docs/gallery.png

Uses the player's engine (``realtime.Colorizer``, onnxruntime only), so the picture is exactly what
``retrocolor colorize`` would produce.  One frame per game: the middle frame of its test blocks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset.color import lab_to_rgb, rgb_to_lab  # noqa: E402
from realtime.engine import Colorizer  # noqa: E402
from utils.images import label, list_images, read_gray, read_rgb, write_png  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder of game folders (held-out frames)")
    ap.add_argument("--games", nargs="+", required=True)
    ap.add_argument("--model", default="default")
    ap.add_argument("--input", choices=["L", "dmg"], default="L", help="dmg: feed the real monochrome twin")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("-o", "--output", type=Path, required=True)
    a = ap.parse_args()

    col = Colorizer(a.model)
    rows = []
    for g in a.games:
        files = list_images(a.data / g)
        if a.input == "dmg":
            files = [f for f in files if (a.data / g / "dmg" / f.name).is_file()]
        if not files:
            continue
        f = files[len(files) // 2]
        truth = read_rgb(f)
        if a.input == "dmg":
            grey = read_gray(a.data / g / "dmg" / f.name)
        else:  # the frame's own lightness, shown as grey
            L = rgb_to_lab(truth)[..., 0]
            grey = lab_to_rgb(np.stack([L, np.zeros_like(L), np.zeros_like(L)], -1))[..., 0]
        ours = col.colorize(grey)
        cells = [np.repeat(grey[..., None], 3, 2), ours, truth]
        cells = [np.repeat(np.repeat(c, a.scale, 0), a.scale, 1) for c in cells]
        sep = np.full((cells[0].shape[0], 4, 3), 24, np.uint8)
        row = np.concatenate([cells[0], sep, cells[1], sep, cells[2]], 1)
        rows.append(label(row, f"{g}: input | {col.name} | truth"))
    sheet = np.concatenate(rows, 0)
    write_png(a.output, sheet)
    print(a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
