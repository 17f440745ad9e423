"""Groups of games for genre models: the genre tags of an index, or clusters learned from the frames.

A model for every game can only hedge between the palettes of all games; a model for a group of
games that look alike may commit more.  Two ways to make the groups:

* :func:`from_index`: the genre field of a ROM index (``../shared/roms/index.tsv``: Platform,
  Puzzle, RPG, ...).  Many homebrew games have none, so the tags leave many games out.
* :func:`cluster_games`: k-means over a per-game descriptor of the monochrome frames (where the 4
  shades sit on the screen, how busy its tiles are; :func:`descriptor`).  Every game gets a
  group, and a frame can be assigned to one at play time (:func:`assign`) with a few numpy ops,
  which is what a genre router needs: tags are not known for a game nobody has indexed.

Both write one JSON document (``retrocolor dataset genres``); ``retrocolor train --genre NAME
--genres FILE`` trains on one group's games.  Torch-free, like the rest of the stage.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dataset.color import DMG_LEVELS_L, posterize_l, rgb_to_l
from utils.errors import UserError

#: The screen is cut into this many rows x columns of cells; a cell's descriptor is the share of
#: each shade in it (a sky of white at the top, a dark status bar at the bottom, ...).
GRID = (3, 3)
TILE = 8
#: Descriptor length: 4 shades per cell, then the share of one-shade tiles and of 3+-shade tiles.
DIM = 4 * GRID[0] * GRID[1] + 2
VERSION = 1


def shades_from_l(L: np.ndarray) -> np.ndarray:
    """Nearest of the 4 DMG shades (0 = black .. 3 = white) for Lab L (0..100), as uint8."""
    levels = np.asarray(DMG_LEVELS_L, np.float32)
    return np.abs(np.asarray(L, np.float32)[..., None] - levels).argmin(-1).astype(np.uint8)


def frame_shades(rgb: np.ndarray, twin_gray: np.ndarray | None = None) -> np.ndarray:
    """A frame's 4-shade picture: its real monochrome twin where it has one, else its L posterised."""
    if twin_gray is not None:
        return shades_from_l(rgb_to_l(np.repeat(twin_gray[..., None], 3, axis=-1)))
    return shades_from_l(posterize_l(rgb_to_l(rgb)))


def descriptor(shades: np.ndarray) -> np.ndarray:
    """(N, DIM) float32 for (N, H, W) shade pictures (0..3): what :func:`assign` compares.

    Shade shares per cell of a :data:`GRID`, then tile texture: the share of 8x8 tiles drawn in
    one shade (flat sky, walls) and in three or more (detailed sprites and text).  Cheap and
    independent of the game's palette, which is unknown for a monochrome game.
    """
    s = np.asarray(shades)
    if s.ndim == 2:
        s = s[None]
    n, h, w = s.shape
    if h < GRID[0] * TILE or w < GRID[1] * TILE:
        raise UserError(f"frame of {w}x{h} is too small for a genre descriptor")
    onehot = (s[..., None] == np.arange(4, dtype=s.dtype)).astype(np.float32)  # (N,H,W,4)
    rows = np.array_split(np.arange(h), GRID[0])
    cols = np.array_split(np.arange(w), GRID[1])
    cells = [onehot[:, r[0]:r[-1] + 1, c[0]:c[-1] + 1].mean(axis=(1, 2)) for r in rows for c in cols]
    th, tw = h // TILE, w // TILE
    tiles = onehot[:, :th * TILE, :tw * TILE].reshape(n, th, TILE, tw, TILE, 4).max(axis=(2, 4)).sum(-1)
    texture = np.stack([(tiles == 1).mean(axis=(1, 2)), (tiles >= 3).mean(axis=(1, 2))], axis=1)
    return np.concatenate(cells + [texture], axis=1).astype(np.float32)


def kmeans(x: np.ndarray, k: int, seed: int = 0, restarts: int = 8, iters: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Centroids (k, D) and labels (N,) of plain k-means (k-means++ starts, best of ``restarts``)."""
    x = np.asarray(x, np.float64)
    if not 1 <= k <= len(x):
        raise UserError(f"cannot make {k} clusters of {len(x)} games")
    rng = np.random.default_rng(seed)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(restarts):
        cent = [x[rng.integers(len(x))]]
        for _ in range(1, k):
            d2 = np.min(((x[:, None] - np.asarray(cent)[None]) ** 2).sum(-1), axis=1)
            p = d2 / d2.sum() if d2.sum() > 0 else np.full(len(x), 1 / len(x))
            cent.append(x[rng.choice(len(x), p=p)])
        c = np.asarray(cent)
        for _ in range(iters):
            lab = ((x[:, None] - c[None]) ** 2).sum(-1).argmin(1)
            new = np.stack([x[lab == j].mean(0) if np.any(lab == j) else c[j] for j in range(k)])
            if np.allclose(new, c):
                break
            c = new
        lab = ((x[:, None] - c[None]) ** 2).sum(-1).argmin(1)
        inertia = float(((x - c[lab]) ** 2).sum())
        if best is None or inertia < best[0]:
            best = (inertia, c, lab)
    assert best is not None
    return best[1].astype(np.float32), best[2].astype(np.int64)


def _game_descriptors(paths: Sequence[str | os.PathLike[str]], limit_per_game: int | None,
                      show_progress: bool) -> tuple[list[str], np.ndarray]:
    """Every game folder's mean frame descriptor (a folder linked twice is read once)."""
    from dataset.loader import find_game_folders, frame_pairs
    from utils.images import list_images
    from utils.progress import progress

    folders = find_game_folders(paths)
    seen: dict[Path, np.ndarray] = {}
    names, rows = [], []
    for g in progress(folders, desc="describing games", unit="game", disable=None if show_progress else True):
        key = g.frames.resolve()
        if key not in seen:
            files = list_images(g.frames)[:limit_per_game] if limit_per_game else list_images(g.frames)
            descs = [descriptor(frame_shades(rgb, twin))[0] for rgb, twin in frame_pairs(g, files)]
            if not descs:
                continue
            seen[key] = np.mean(descs, axis=0)
        names.append(g.name)
        rows.append(seen[key])
    if not rows:
        raise UserError("no readable frames in " + ", ".join(str(p) for p in paths))
    return names, np.stack(rows).astype(np.float32)


def cluster_games(paths: Sequence[str | os.PathLike[str]], k: int, seed: int = 0,
                  limit_per_game: int | None = 60, show_progress: bool = True) -> dict[str, Any]:
    """Group the games under ``paths`` into ``k`` clusters by how their monochrome frames look.

    Descriptors are standardised over the games (each dimension to unit spread) before k-means,
    so the texture shares weigh as much as the shade shares; the mean and scale are kept in the
    document so :func:`assign` places a new frame the same way.
    """
    names, x = _game_descriptors(paths, limit_per_game, show_progress)
    mean = x.mean(0)
    scale = x.std(0) + 1e-3
    cent, lab = kmeans((x - mean) / scale, k, seed=seed)
    groups = {f"c{j}": sorted(n for n, li in zip(names, lab, strict=True) if li == j) for j in range(k)}
    return {"version": VERSION, "method": "clusters", "k": int(k), "seed": int(seed),
            "grid": list(GRID), "mean": mean.tolist(), "scale": scale.tolist(),
            "centroids": cent.tolist(), "groups": groups}


def read_index_rows(index: str | os.PathLike[str], columns: Sequence[str]) -> dict[str, dict[str, str]]:
    """slug -> ``columns`` of a ROM index (``../shared/roms/index.tsv``: tab-separated, a header row).

    A ``developer`` written as JSON objects (the database does that for some games:
    ``{"name": "A", "link": ...}, {"name": "B", ...}``) gives their names, "A, B".
    """
    import json

    p = Path(index)
    if not p.is_file():
        raise UserError(f"index not found: {p}")
    rows: dict[str, dict[str, str]] = {}
    with open(p, encoding="utf-8") as f:
        head = f.readline().rstrip("\n").split("\t")
        missing = [c for c in ("slug", *columns) if c not in head]
        if missing:
            raise UserError(f"{p}: needs the column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        for line in f:
            rec = dict(zip(head, line.rstrip("\n").split("\t"), strict=False))
            row = {c: rec.get(c, "") for c in columns}
            if row.get("developer", "").startswith("{"):
                try:
                    people = json.loads("[" + row["developer"] + "]")
                    row["developer"] = ", ".join(str(d.get("name", "?")) for d in people)
                except (ValueError, AttributeError):
                    pass  # not the JSON it looked like: keep the text as the database wrote it
            rows[rec["slug"]] = row
    return rows


def read_index(index: str | os.PathLike[str]) -> dict[str, list[str]]:
    """slug -> genre tags of a ROM index (tab-separated, with ``slug`` and ``genre`` columns)."""
    return {slug: [t.strip() for t in row["genre"].split(",") if t.strip()]
            for slug, row in read_index_rows(index, ["genre"]).items()}


def from_index(paths: Sequence[str | os.PathLike[str]], index: str | os.PathLike[str]) -> dict[str, Any]:
    """Group the games under ``paths`` by the genre tags of ``index`` (a game may be in several)."""
    from dataset.loader import find_game_folders

    tags = read_index(index)
    groups: dict[str, list[str]] = {}
    untagged = []
    for g in find_game_folders(paths):
        t = tags.get(g.name, [])
        for tag in t:
            groups.setdefault(tag, []).append(g.name)
        if not t:
            untagged.append(g.name)
    return {"version": VERSION, "method": "index", "index": str(index),
            "groups": {k: sorted(v) for k, v in sorted(groups.items())}, "untagged": sorted(untagged)}


def load_genres(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A genres document (UserError if missing or malformed)."""
    from utils.fsio import read_json_doc

    p = Path(path)
    doc = read_json_doc(p, "genres")
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), dict):
        raise UserError(f"{p}: not a genres file (no 'groups'); make one with retrocolor dataset genres")
    return doc


def games_of(doc: dict[str, Any], name: str) -> list[str]:
    """The games of group ``name`` (UserError naming the groups there are)."""
    groups = doc["groups"]
    if name not in groups:
        raise UserError(f"no genre {name!r} here; there are: {', '.join(sorted(groups))}")
    return list(groups[name])


def assign(shades: np.ndarray, doc: dict[str, Any]) -> int:
    """The cluster (index into ``doc['centroids']``) of a frame or a batch of frames of one game."""
    if doc.get("method") != "clusters":
        raise UserError("only learned clusters can place a new frame; index tags cannot")
    d = descriptor(shades).mean(0)
    z = (d - np.asarray(doc["mean"], np.float32)) / np.asarray(doc["scale"], np.float32)
    return int(((np.asarray(doc["centroids"], np.float32) - z) ** 2).sum(-1).argmin())
