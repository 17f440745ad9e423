"""README galleries for games the models never saw.

    python scripts/gallery_unseen.py held-out runs/unseen/test --games a b c -o docs/unseen_dual.png
    python scripts/gallery_unseen.py mono runs/dmg_only --games x y z -o docs/unseen_mono.png
    python scripts/gallery_unseen.py schemes runs/dmg_only --games x -o docs/schemes.png

``held-out``: dual-mode games held out by game; per game one real monochrome frame as the input
(the twin), then the boot ROM's default palette, the best boot palette for that game picked with
hindsight, the shipped ``default`` and ``unseen`` models, the best colour scheme for that game
picked with hindsight (with ``--eval-json`` from ``unseen.py eval``), and the game's own Color frame.
``mono``: monochrome-only games (no Color version exists, so no truth): the input, ``default`` and
``unseen``: what a player sees.  ``schemes``: one frame of a game painted with every shipped colour
scheme, in the order the C key cycles them.  Colours come from the player's engine (onnxruntime only).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from dataset.color import rgb_to_lab  # noqa: E402
from models.metrics import BOOT_DEFAULT, BOOT_PALETTES, dmg_shade  # noqa: E402
from realtime.engine import Colorizer  # noqa: E402
from utils.images import label, list_images, read_rgb, write_png  # noqa: E402


def _boot(grey: np.ndarray, palette: str) -> np.ndarray:
    L = rgb_to_lab(grey)[:, :, 0]
    return BOOT_PALETTES[palette][dmg_shade(L)]  # L in 0..100, nearest of the 4 DMG levels


def _pick(files: list[Path]) -> Path:
    """A frame from the middle of play, with detail (not a blank or a title screen)."""
    cands = files[len(files) // 3: 2 * len(files) // 3] or files
    return max(cands[:: max(1, len(cands) // 12)], key=lambda p: float(read_rgb(p).std()))


def held_out(data: Path, games: list[str], best: dict[str, str], best_scheme: dict[str, int]) -> list[np.ndarray]:
    models = {name: Colorizer(name) for name in ("default", "unseen")}
    rows = []
    for g in games:
        twins = list_images(data / g / "dmg")
        f = _pick(twins)
        grey = read_rgb(f)
        truth = read_rgb(data / g / f.name)
        pal = best.get(g, BOOT_DEFAULT)
        cells = [("input (real DMG)", grey), ("boot default", _boot(grey, BOOT_DEFAULT)),
                 (f"boot best: {pal[:14]}", _boot(grey, pal))]
        cells += [(name, m.colorize(grey)) for name, m in models.items()]
        if g in best_scheme:
            cells.append((f"scheme {best_scheme[g]} (best)", Colorizer("unseen", scheme=best_scheme[g]).colorize(grey)))
        cells.append(("truth (Color)", truth))
        rows.append(np.concatenate([label(img, f"{g[:16]}: {t}" if i == 0 else t) for i, (t, img) in enumerate(cells)],
                                   axis=1))
    return rows


def mono(data: Path, games: list[str]) -> list[np.ndarray]:
    models = {name: Colorizer(name) for name in ("default", "unseen")}
    rows = []
    for g in games:
        folder = data / g / "dmg" if (data / g / "dmg").is_dir() else data / g  # render --mono writes dmg/
        grey = read_rgb(_pick(list_images(folder)))
        cells = [(f"{g[:18]}", grey)] + [(name, m.colorize(grey)) for name, m in models.items()]
        rows.append(np.concatenate([label(img, t) for t, img in cells], axis=1))
    return rows


def schemes(data: Path, game: str, per_row: int = 6) -> list[np.ndarray]:
    """Rows of one frame of ``game``: input, ``unseen``, then every shipped scheme in C's order."""
    folder = data / game / "dmg" if (data / game / "dmg").is_dir() else data / game
    grey = read_rgb(_pick(list_images(folder)))
    col = Colorizer("unseen")
    cells = [label(grey, f"{game[:18]}"), label(col.colorize(grey), "unseen (model)")]
    for k in range(1, col.scheme_count + 1):
        col.scheme = k
        cells.append(label(col.colorize(grey), f"scheme {k}"))
    blank = np.zeros_like(cells[0])
    cells += [blank] * (-len(cells) % per_row)
    return [np.concatenate(cells[i:i + per_row], axis=1) for i in range(0, len(cells), per_row)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["held-out", "mono", "schemes"])
    ap.add_argument("data", type=Path)
    ap.add_argument("--games", nargs="+", required=True)
    ap.add_argument("--eval-json", type=Path, default=None, help="held-out: `unseen.py eval` output (best palettes)")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("-o", "--output", type=Path, required=True)
    a = ap.parse_args()
    best: dict[str, str] = {}
    best_scheme: dict[str, int] = {}
    if a.eval_json is not None:
        import json

        rep = next(iter(json.loads(a.eval_json.read_text()).values()))
        best = {g: m["baselines"]["boot_best"]["palette"] for g, m in rep["per_game"].items()}
        best_scheme = {g: m["baselines"]["scheme_best"]["scheme"] for g, m in rep["per_game"].items()
                       if "scheme_best" in m["baselines"]}
    if a.kind == "held-out":
        rows = held_out(a.data, a.games, best, best_scheme)
    elif a.kind == "mono":
        rows = mono(a.data, a.games)
    else:
        rows = schemes(a.data, a.games[0])
    img = np.concatenate(rows, axis=0)
    img = np.repeat(np.repeat(img, a.scale, 0), a.scale, 1)
    write_png(a.output, img)
    print(f"{a.output}: {len(rows)} rows, {img.shape[1]}x{img.shape[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
