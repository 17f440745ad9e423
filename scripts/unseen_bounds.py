"""What each kind of knowledge buys on games the model never saw: the bounds behind step 7's targets.

    python scripts/unseen_bounds.py runs/unseen --games val --roms ../shared/roms --json runs/bounds_val.json

For each held-out game (real monochrome twins against the game's own Color frames) it prices, as
mse_ab / grey's (the issue's measure; medians over games):

* what a player gets with no knowledge of the game: the shipped ``unseen`` net; the mean of the
  training games' palettes (one colour per shade); the first colour scheme alone; the mean palette
  of the 20 training games whose monochrome frames look most alike (``dataset.genres`` descriptor);
* what a pick among palettes gets, with hindsight (a player choosing by eye at best): the best of
  the first 1, 4 and all shipped schemes, the best boot ROM palette, the best of every training
  game's palette;
* what two signals from outside the frames buy, each a guess a tool could make without a person:
  the mean palette of the (up to 5) training games whose ROMs share the most code with the game's
  (its engine: GB Studio, GBDK and the like; ``--roms``; Jaccard >= 0.2, else the mean of all
  training palettes), and one colour screenshot of the game with its
  colours sorted into shades by lightness (the 4-shade look; scored on the game's other frames);
* what knowing the game's colours would give: its own palette (one colour per shade), and one
  colour per (8x8 tile pattern, shade) -- the ceiling of any net that paints by tile;
* and how the best scheme looks, judged as ``evaluate`` judges a model: colourfulness against the
  truth's, the a/b histogram's distance against grey's, tile uniformity.

A flat palette's error comes from each game's per-shade statistics (``dataset.schemes``), exact
over the same frames; the net and the tile ceiling are measured on the pixels.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.errors import UserError  # noqa: E402
from utils.fsio import atomic_write_json  # noqa: E402


def _held_out(folder: Path, limit: int | None) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """A held-out game's twins: shades (N, H, W) 0 = black, true a/b (N, H, W, 2), and the frames."""
    from dataset.color import rgb_to_lab
    from dataset.loader import spread
    from utils.images import list_images, read_gray, read_rgb

    twins = spread(list_images(folder / "dmg"), limit) if (folder / "dmg").is_dir() else []
    shades, abs_, rgbs, greys = [], [], [], []
    for t in twins:
        rgb_path = folder / t.name
        if not rgb_path.is_file():
            continue
        rgb, grey = read_rgb(rgb_path), read_gray(t)
        if grey.shape != rgb.shape[:2]:
            continue
        rgbs.append(rgb)
        greys.append(grey)
        shades.append(np.abs(grey[..., None].astype(np.int16) - np.array([0, 85, 170, 255])).argmin(-1))
        abs_.append(rgb_to_lab(rgb)[..., 1:])
    if not shades:
        return np.zeros((0, 144, 160), np.int64), np.zeros((0, 144, 160, 2), np.float32), [], []
    return np.stack(shades), np.stack(abs_).astype(np.float32), rgbs, greys


def _tile_ceiling(shades: np.ndarray, ab: np.ndarray) -> float:
    """mse_ab / grey's when each (8x8 tile pattern, shade) group gets its true mean colour."""
    n, h, w = shades.shape
    th, tw = h // 8, w // 8
    s = shades[:, :th * 8, :tw * 8]
    tiles = np.ascontiguousarray(s.reshape(n, th, 8, tw, 8).transpose(0, 1, 3, 2, 4).reshape(n, th, tw, 64))
    _, tile_id = np.unique(tiles.astype(np.uint8).reshape(-1, 64), axis=0, return_inverse=True)
    tile_id = tile_id.reshape(n, th, tw).repeat(8, 1).repeat(8, 2)
    key = (tile_id * 4 + s).ravel()
    t = ab[:, :th * 8, :tw * 8].reshape(-1, 2).astype(np.float64)
    _, inv = np.unique(key, return_inverse=True)
    sums = np.zeros((inv.max() + 1, 2))
    np.add.at(sums, inv, t)
    mean = sums / np.bincount(inv)[:, None]
    grey = (t ** 2).mean()
    return float(((mean[inv] - t) ** 2).mean() / grey) if grey > 0 else float("nan")


@functools.cache
def _rom_code(path: Path, width: int = 16, size: int = 0x8000) -> np.ndarray:
    """The distinct ``width``-byte strings of a ROM's first two banks (where engines keep their code),
    hashed; strings mostly 0x00 or 0xFF (padding) are left out.  Sorted uint64."""
    from numpy.lib.stride_tricks import sliding_window_view

    b = np.frombuffer(path.read_bytes()[:size], np.uint8)
    if len(b) < width:
        return np.zeros(0, np.uint64)
    w = sliding_window_view(b, width)
    keep = ((w == 0).sum(1) <= width // 2) & ((w == 255).sum(1) <= width // 2)
    powers = np.uint64(1099511628211) ** np.arange(width, dtype=np.uint64)  # FNV prime: wraps mod 2**64
    return np.unique((w[keep].astype(np.uint64) * powers).sum(1, dtype=np.uint64))


def _rom_neighbours(roms: Path, names: list[str], game: str, k: int = 5, min_jaccard: float = 0.2) -> list[int]:
    """Indices of up to ``k`` training games (``names``) whose ROMs share the most code with ``game``'s.

    Shared means strings found in at least two ROMs (a game's own data does not count), compared by
    Jaccard; neighbours below ``min_jaccard`` (no common engine) are left out.
    """
    found = {}
    for n in set(names) | {game}:
        hits = [p for p in (roms / "dual" / f"{n}.gbc", roms / "cgb" / f"{n}.gbc") if p.is_file()]
        if hits:
            found[n] = _rom_code(hits[0])
    if game not in found:
        return []
    allh, counts = np.unique(np.concatenate(list(found.values())), return_counts=True)
    common = allh[counts >= 2]
    code = {n: np.intersect1d(h, common, assume_unique=True) for n, h in found.items()}
    g = code[game]
    sims = np.array([len(np.intersect1d(g, code[n], assume_unique=True))
                     / max(1, len(np.union1d(g, code[n]))) if n in code else 0.0 for n in names])
    near = np.argsort(-sims)[:k]
    return [int(i) for i in near if sims[i] >= min_jaccard]


def _screenshot_ratio(rgbs: list[np.ndarray], greys: list[np.ndarray], tries: int = 5) -> float:
    """mse_ab / grey's of the palette read off one colour frame of the game by lightness (its 4-shade
    look), scored on the game's other frames; the median over ``tries`` frames spread over its play."""
    from dataset.schemes import game_palette, ratio_to_grey

    out = []
    for i in np.linspace(0, len(rgbs) - 1, min(tries, len(rgbs))).round().astype(int):
        rest = [j for j in range(len(rgbs)) if j != i]
        if not rest:
            break
        shot = game_palette([rgbs[i]], [None])
        ab = shot["ab"].copy()
        seen = shot["share"] > 0
        for k in np.nonzero(~seen)[0]:  # a shade the screenshot lacks takes its nearest shade's colour
            ab[k] = ab[np.nonzero(seen)[0][np.abs(np.nonzero(seen)[0] - k).argmin()]]
        truth = game_palette([rgbs[j] for j in rest], [greys[j] for j in rest])
        r = float(ratio_to_grey(truth, ab[None])[0])
        if np.isfinite(r):  # the other frames all grey: no ratio
            out.append(r)
    return float(np.median(out)) if out else float("nan")


def _net_ratio(session: Any, shades: np.ndarray, ab: np.ndarray) -> float:
    """mse_ab / grey's of an ONNX net (onnxruntime session) fed the shades' DMG lightness."""
    from dataset.color import DMG_LEVELS_L

    x = (np.asarray(DMG_LEVELS_L)[shades] / 100.0)[:, None].astype(np.float32)
    name = session.get_inputs()[0].name
    pred = np.concatenate([session.run(None, {name: x[i:i + 16]})[0] for i in range(0, len(x), 16)])
    pred = pred.transpose(0, 2, 3, 1) * 128.0
    grey = float((ab.astype(np.float64) ** 2).mean())
    return float(((pred - ab) ** 2).mean() / grey) if grey > 0 else float("nan")


def bounds(split: Path, which: str, schemes: Path, model: Path, limit: int | None,
           roms: Path | None = None) -> dict[str, Any]:
    """Every held-out game of ``split/which`` priced each way (module docstring); the report."""
    import onnxruntime as ort

    from dataset.color import DMG_LEVELS_L, l_ab_to_rgb
    from dataset.genres import _game_descriptors, descriptor  # the genre clusters' own per-game descriptor
    from dataset.schemes import game_palette, load, ratio_to_grey, read_game_palettes, scheme_ab
    from models.metrics import BOOT_PALETTES, LookAccumulator, rgb_to_lab_fast

    train = split / "train"
    names, games = read_game_palettes([train], 40, show_progress=True)
    train_pals = np.stack([g["ab"] for g in games])
    dnames, desc = _game_descriptors([train], 40, show_progress=True)
    order = [dnames.index(n) for n in names]
    desc = desc[order]
    mu, sd = desc.mean(0), desc.std(0) + 1e-3
    sch = scheme_ab(load(schemes))
    # boot palettes are lightest first; ours are black first
    boot = np.stack([rgb_to_lab_fast(p[None])[0, :, 1:][::-1] for p in BOOT_PALETTES.values()])
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    rows = {}
    for folder in sorted(p for p in (split / which).iterdir() if p.is_dir()):
        shades, ab, rgbs, greys = _held_out(folder, limit)
        if not len(shades):
            continue
        g = game_palette(rgbs, greys)
        if not np.isfinite(ratio_to_grey(g, np.zeros((1, 4, 2)))).all():
            continue  # the game's Color version is grey: no ratio
        d = (descriptor(shades.astype(np.uint8)).mean(0) - mu) / sd
        near = np.argsort(((((desc - mu) / sd) - d) ** 2).sum(1))[:20]
        r = {
            "frames": len(shades),
            "net (shipped unseen)": _net_ratio(session, shades, ab),
            "mean training palette": float(ratio_to_grey(g, train_pals.mean(0)[None])[0]),
            "scheme 1 alone": float(ratio_to_grey(g, sch[:1])[0]),
            "20 look-alike games' mean palette": float(ratio_to_grey(g, train_pals[near].mean(0)[None])[0]),
        }
        if roms is not None:
            kin = _rom_neighbours(roms, names, folder.name)
            pal = train_pals[kin].mean(0) if kin else train_pals.mean(0)
            r["up to 5 games sharing ROM code (else the mean): mean palette"] = float(ratio_to_grey(g, pal[None])[0])
            r["ROM neighbours found"] = len(kin)
        r |= {
            "a colour screenshot, shades by lightness": _screenshot_ratio(rgbs, greys),
            "best of schemes 1-4 (hindsight)": float(ratio_to_grey(g, sch[:4]).min()),
            f"best of the {len(sch)} schemes (hindsight)": float(ratio_to_grey(g, sch).min()),
            "best boot ROM palette (hindsight)": float(ratio_to_grey(g, boot).min()),
            f"best of the {len(train_pals)} training palettes (hindsight)": float(ratio_to_grey(g, train_pals).min()),
            "the game's own palette (oracle)": float(ratio_to_grey(g, g["ab"][None])[0]),
            "one colour per (tile pattern, shade) (oracle)": _tile_ceiling(shades, ab),
        }
        # the look of the best scheme, as evaluate judges a model's: what a player who picked it sees
        pick = sch[int(np.argmin(ratio_to_grey(g, sch)))]
        look = LookAccumulator()
        L_in = np.asarray(DMG_LEVELS_L, np.float32)[shades]
        ab_out = pick[shades].astype(np.float32)
        rgb_out = np.stack([l_ab_to_rgb(L_in[i], ab_out[i]) for i in range(len(L_in))])
        look.add(np.zeros(len(shades), np.int64), rgb_out, ab_out, np.stack(rgbs), ab, shades)
        lk = look.summary(0)
        r["best scheme: colourfulness / truth's"] = lk["colourfulness_ratio"]
        r["best scheme: histogram JS / grey's"] = lk["hist_js_ratio"]
        r["best scheme: tile uniformity"] = lk["tile_uniformity"]
        rows[folder.name] = r
        print(folder.name, " ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r.values()), flush=True)
    if not rows:
        raise UserError(f"no held-out game with monochrome twins under {split / which}")
    keys = [k for k in next(iter(rows.values())) if k not in ("frames", "ROM neighbours found")]
    summary = {k: {"median": float(np.nanmedian([np.nan if r[k] is None else r[k] for r in rows.values()])),
                   "below_grey": int(sum(r[k] is not None and r[k] < 1 for r in rows.values()))} for k in keys}
    return {"games": which, "n": len(rows), "limit_per_game": limit, "summary": summary, "per_game": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("split", type=Path, help="scripts/unseen.py split's folder (train/, val/, test/)")
    ap.add_argument("--games", choices=["val", "test"], default="val")
    ap.add_argument("--schemes", type=Path, default=ROOT / "weights" / "schemes.json")
    ap.add_argument("--model", type=Path, default=ROOT / "weights" / "unseen.onnx")
    ap.add_argument("--limit-per-game", type=int, default=None, help="twins per game, spread over its play")
    ap.add_argument("--roms", type=Path, default=None,
                    help="ROM folder (dual/, cgb/: ../shared/roms) for the ROM-code neighbours' row")
    ap.add_argument("--json", type=Path, required=True)
    a = ap.parse_args()
    try:
        doc = bounds(a.split, a.games, a.schemes, a.model, a.limit_per_game, a.roms)
    except UserError as e:
        print(f"unseen_bounds: error: {e}", file=sys.stderr)
        return 2
    atomic_write_json(a.json, doc)
    print(f"\n{doc['n']} {a.games} games, mse_ab / grey's (median; games below grey):")
    for k, v in doc["summary"].items():
        below = "" if k.startswith("best scheme:") else f"  ({v['below_grey']} of {doc['n']})"
        print(f"  {k:52} {v['median']:.2f}{below}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
