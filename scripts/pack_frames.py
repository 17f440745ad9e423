"""Pack game folders into a few small files and back, to move a training set to another machine.

    python scripts/pack_frames.py pack runs/unseen/train -o .pack/train --limit-per-game 100
    python scripts/pack_frames.py unpack .pack/train -o runs/unseen/train      # on the other machine

Why: a rendered corpus is ~250 MB of PNGs, and the GPU box takes 64 MiB a call.  Game Boy frames
are a few colours drawn from 8x8 tiles that repeat from frame to frame, so one game's frames,
palette-indexed and stacked, compress with LZMA far better than frame by frame (PNG).  Unpack
writes the same layout back (``GAME/NAME.png`` and ``GAME/dmg/NAME.png``) with the same pixels,
so ``retrocolor train`` reads it unchanged.  Linked folders (the oversampled shared games) are
packed once and linked again on unpack.
"""

from __future__ import annotations

import argparse
import json
import lzma
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dataset.loader import find_game_folders, list_images  # noqa: E402
from utils.errors import UserError  # noqa: E402
from utils.fsio import atomic_write_json  # noqa: E402
from utils.images import read_gray, read_rgb, write_png  # noqa: E402


def _index(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,H,W,C) uint8 -> (N,H,W) indices (uint8, or uint16 past 256 colours) and the palette."""
    flat = frames.reshape(-1, frames.shape[-1])
    pal, idx = np.unique(flat, axis=0, return_inverse=True)
    dtype = np.uint8 if len(pal) <= 256 else np.uint16
    return idx.astype(dtype).reshape(frames.shape[:-1]), pal.astype(np.uint8)


def _pack_game(folder: Path, dmg: Path | None, limit: int | None, out: Path) -> dict:
    files = list_images(folder)[:limit] if limit else list_images(folder)
    rgb = np.stack([read_rgb(f) for f in files])
    twins = [dmg / f.name if dmg is not None and (dmg / f.name).is_file() else None for f in files]
    has = np.array([t is not None for t in twins])
    grey = np.stack([read_gray(t) for t in twins if t is not None]) if has.any() else np.zeros((0,) + rgb.shape[1:3],
                                                                                                   np.uint8)
    ci, cpal = _index(rgb)
    gi, gpal = _index(grey[..., None]) if len(grey) else (grey, np.zeros((0, 1), np.uint8))
    parts = [ci.tobytes(), cpal.tobytes(), gi.tobytes(), gpal.tobytes()]
    blob = lzma.compress(b"".join(parts), preset=6)
    out.write_bytes(blob)
    return {"names": [f.name for f in files], "has_dmg": has.tolist(), "shape": list(rgb.shape[1:3]),
            "cidx": str(ci.dtype), "cpal": len(cpal), "gidx": str(gi.dtype), "gpal": len(gpal),
            "twins": int(has.sum()), "bytes": len(blob)}


def pack(paths: list[Path], out: Path, limit: int | None, jobs: int) -> dict:
    """Write ``out/GAME.xz`` per distinct game folder and ``out/index.json`` (names, links, sizes)."""
    folders = find_game_folders(paths)
    out.mkdir(parents=True, exist_ok=True)
    real: dict[str, str] = {}  # resolved folder -> packed name
    links: dict[str, str] = {}
    todo = []
    for g in folders:
        key = str(g.frames.resolve())
        if key in real:
            links[g.name] = real[key]
            continue
        real[key] = g.name
        todo.append(g)
    games: dict[str, dict] = {}
    with ProcessPoolExecutor(max_workers=jobs) as ex:
        futs = {g.name: ex.submit(_pack_game, g.frames, g.dmg, limit, out / f"{g.name}.xz") for g in todo}
        for name, fut in futs.items():
            games[name] = fut.result()
    doc = {"limit_per_game": limit, "games": games, "links": links,
           "bytes": sum(r["bytes"] for r in games.values())}
    atomic_write_json(out / "index.json", doc)
    return doc


def _unpack_game(src: Path, rec: dict, dest: Path) -> int:
    raw = lzma.decompress(src.read_bytes())
    h, w = rec["shape"]
    n, k = len(rec["names"]), int(sum(rec["has_dmg"]))
    cdt, gdt = np.dtype(rec["cidx"]), np.dtype(rec["gidx"])
    o = 0

    def take(count: int, dtype: np.dtype) -> np.ndarray:
        nonlocal o
        a = np.frombuffer(raw, dtype=dtype, count=count, offset=o)
        o += count * dtype.itemsize
        return a

    ci = take(n * h * w, cdt).reshape(n, h, w)
    cpal = take(rec["cpal"] * 3, np.dtype(np.uint8)).reshape(-1, 3)
    gi = take(k * h * w, gdt).reshape(k, h, w)
    gpal = take(rec["gpal"], np.dtype(np.uint8))
    dest.mkdir(parents=True, exist_ok=True)
    if k:
        (dest / "dmg").mkdir(exist_ok=True)
    t = 0
    for i, name in enumerate(rec["names"]):
        write_png(dest / name, cpal[ci[i]])
        if rec["has_dmg"][i]:
            write_png(dest / "dmg" / name, gpal[gi[t]])
            t += 1
    return n


def unpack(src: Path, out: Path, jobs: int) -> int:
    """Write the game folders of a pack under ``out``; returns the number of frames."""
    idx = src / "index.json"
    if not idx.is_file():
        raise UserError(f"{src}: not a pack (no index.json)")
    doc = json.loads(idx.read_text(encoding="utf-8"))
    out.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=jobs) as ex:
        n = sum(ex.map(_unpack_game, [src / f"{g}.xz" for g in doc["games"]], doc["games"].values(),
                       [out / g for g in doc["games"]]))
    for link, target in doc["links"].items():
        p = out / link
        if not p.exists():
            p.symlink_to(target, target_is_directory=True)
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("pack", help="game folders -> GAME.xz files + index.json")
    sp.add_argument("paths", nargs="+", type=Path)
    sp.add_argument("-o", "--out", type=Path, required=True)
    sp.add_argument("--limit-per-game", type=int, default=None)
    sp.add_argument("--jobs", type=int, default=2)
    sp = sub.add_parser("unpack", help="a pack -> game folders")
    sp.add_argument("pack", type=Path)
    sp.add_argument("-o", "--out", type=Path, required=True)
    sp.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    try:
        if a.cmd == "pack":
            doc = pack(a.paths, a.out, a.limit_per_game, a.jobs)
            n = sum(len(r["names"]) for r in doc["games"].values())
            print(f"pack: {len(doc['games'])} games (+{len(doc['links'])} links), {n} frames, "
                  f"{doc['bytes'] / 2**20:.1f} MiB -> {a.out}")
        else:
            print(f"unpack: {unpack(a.pack, a.out, a.jobs)} frames -> {a.out}")
    except UserError as e:
        print(f"pack_frames: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
