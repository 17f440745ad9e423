"""Torch-free frame loading: folders of PNGs -> uint8 arrays, plus their monochrome twins.

A *data folder* may be given in three shapes, so every command accepts what users have:

* a folder of images (``shared/data/gbc/aevilia``): one game, named after the folder;
* a dataset written by ``retrocolor extract`` (``DIR/frames/*.png`` + ``DIR/manifest.jsonl``):
  one game named after ``DIR``;
* a folder of such folders (``shared/data/gbc``, or a ``split`` output such as ``out/train``):
  one game per sub-folder.

Where ``GAME/dmg/NAME.png`` exists it is the real monochrome frame of the same moment.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from utils.errors import UserError
from utils.geometry import NATIVE_H, NATIVE_W
from utils.images import list_images, read_gray, read_rgb
from utils.progress import progress


@dataclass(frozen=True)
class GameFolder:
    """One game's frames: ``frames`` holds colour PNGs, ``dmg`` their monochrome twins (or None)."""

    name: str
    frames: Path
    dmg: Path | None


def frame_pairs(game: GameFolder, files: Sequence[Path]) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """(colour frame, its monochrome twin or None) for each of ``files`` of ``game`` that reads.

    For per-game statistics (genre descriptors, palettes) where an unreadable frame is just one
    fewer sample; a twin of another size than its frame is no twin.
    """
    for f in files:
        try:
            rgb = read_rgb(f)
            twin = read_gray(game.dmg / f.name) if game.dmg is not None and (game.dmg / f.name).is_file() else None
        except UserError:
            continue
        yield rgb, (twin if twin is not None and twin.shape == rgb.shape[:2] else None)


def spread(files: Sequence[Path], limit: int | None) -> list[Path]:
    """At most ``limit`` of ``files`` spread evenly over them (frames sort in play order: not just the title)."""
    if not limit or len(files) <= limit:
        return list(files)
    return [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]


@dataclass
class FrameSet:
    """Frames in memory: ``rgb`` (N, H, W, 3) uint8, ``game`` (N,) index into ``games``.

    ``dmg`` (N, H, W) uint8 holds the monochrome twin where ``has_dmg`` is True (zeros elsewhere),
    or is None when twins were not requested.  ``skipped`` lists unreadable files with reasons.
    """

    rgb: np.ndarray
    game: np.ndarray
    names: list[str]
    games: list[str]
    dmg: np.ndarray | None = None
    has_dmg: np.ndarray | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.rgb.shape[0])

    def subset(self, idx: np.ndarray | Sequence[int]) -> FrameSet:
        """A FrameSet of the frames at ``idx`` (the game list is kept, so indices stay valid)."""
        idx = np.asarray(idx, dtype=np.int64)
        return FrameSet(
            rgb=self.rgb[idx],
            game=self.game[idx],
            names=[self.names[i] for i in idx],
            games=list(self.games),
            dmg=None if self.dmg is None else self.dmg[idx],
            has_dmg=None if self.has_dmg is None else self.has_dmg[idx],
            skipped=list(self.skipped),
        )


def _has_images(d: Path) -> bool:
    try:
        return any(True for _ in list_images(d))
    except OSError:
        return False


def _game_folder(d: Path) -> GameFolder:
    if (d / "frames").is_dir():
        frames, name = d / "frames", d.name
    else:
        frames, name = d, (d.parent.name if d.name == "frames" else d.name)
    dmg = frames / "dmg" if (frames / "dmg").is_dir() else (d / "dmg" if (d / "dmg").is_dir() else None)
    return GameFolder(name=name, frames=frames, dmg=dmg)


def find_game_folders(paths: Sequence[str | os.PathLike[str]],
                      games: Collection[str] | None = None) -> list[GameFolder]:
    """Resolve data arguments into per-game folders (see module docstring), or raise UserError.

    ``games``: keep only the folders of these game names (a genre's games); UserError if none is here.
    """
    if not paths:
        raise UserError("no data folder given")
    out: list[GameFolder] = []
    for raw in paths:
        d = Path(raw)
        if not d.exists():
            raise UserError(f"data folder not found: {d}")
        if not d.is_dir():
            raise UserError(f"data path is not a folder: {d}")
        if _has_images(d) or (d / "frames").is_dir():
            out.append(_game_folder(d))
            continue
        subs = sorted(s for s in d.iterdir() if s.is_dir() and s.name != "dmg" and not s.name.startswith("."))
        found = [_game_folder(s) for s in subs if _has_images(s) or (s / "frames").is_dir()]
        if not found:
            raise UserError(f"no frames found in {d} (expected PNG frames, DIR/frames/, or one sub-folder per game)")
        out.extend(found)
    names = [g.name for g in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"two data folders share the game name {dup[0]!r}; merge them first (retrocolor dataset merge)")
    if games is not None:
        keep = set(games)
        out = [g for g in out if g.name in keep]
        if not out:
            raise UserError("none of the selected games is in " + ", ".join(str(p) for p in paths))
    return out


def _cache_key(files: list[Path], twins: list[Path | None], with_dmg: bool, size: tuple[int, int] | None) -> str:
    """Key of a decoded set: every input file's identity, and the options that change the result.

    Twins and ``size`` are part of it: a twin added later, or a different size check, must not be
    answered from a cache built without them.
    """
    h = hashlib.sha1(b"v2" + bytes([with_dmg]) + repr(size).encode())
    for f, t in zip(files, twins, strict=True):
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
        if with_dmg and t is not None and t.is_file():
            tst = t.stat()
            h.update(f"|dmg|{tst.st_size}|{tst.st_mtime_ns}".encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def count_frames(paths: Sequence[str | os.PathLike[str]], limit_per_game: int | None = None,
                 games: Collection[str] | None = None) -> int:
    """How many frames :func:`load_frames` would load (a directory scan, no decoding)."""
    n = 0
    for g in find_game_folders(paths, games):
        k = len(list_images(g.frames))
        n += min(k, limit_per_game) if limit_per_game is not None else k
    return n


def load_frames(
    paths: Sequence[str | os.PathLike[str]],
    *,
    with_dmg: bool = True,
    size: tuple[int, int] | None = (NATIVE_W, NATIVE_H),
    cache_dir: str | os.PathLike[str] | None = None,
    limit_per_game: int | None = None,
    show_progress: bool = True,
    games: Collection[str] | None = None,
) -> FrameSet:
    """Load every frame under ``paths`` into memory as uint8.

    Corrupt files are skipped and listed in ``FrameSet.skipped``; a frame whose size differs
    from ``size`` (the first frame's size when ``size`` is None) is a UserError, since a mixed
    set means the user pointed at the wrong folder.  With ``cache_dir`` the decoded arrays are
    kept in one ``.npz`` so the next run skips PNG decoding.  ``games``: only these game folders.
    """
    folders = find_game_folders(paths, games)
    items: list[tuple[int, Path]] = []
    for gi, g in enumerate(folders):
        files = list_images(g.frames)
        if limit_per_game is not None:
            files = files[:limit_per_game]
        items.extend((gi, f) for f in files)
    if not items:
        raise UserError("no frames found in " + ", ".join(str(p) for p in paths))
    games = [g.name for g in folders]

    cache_file = None
    if cache_dir is not None:
        twin_paths = [None if folders[gi].dmg is None else folders[gi].dmg / f.name for gi, f in items]
        key = _cache_key([f for _, f in items], twin_paths, with_dmg, size)
        cache_file = Path(cache_dir) / f"frames-{key}.npz"
        if cache_file.is_file():
            try:
                with np.load(cache_file, allow_pickle=False) as z:
                    return FrameSet(
                        rgb=z["rgb"], game=z["game"], names=[str(n) for n in z["names"]],
                        games=[str(g) for g in z["games"]],
                        dmg=z["dmg"] if with_dmg else None, has_dmg=z["has_dmg"] if with_dmg else None,
                        skipped=[(str(p), str(r)) for p, r in z["skipped"].reshape(-1, 2)],
                    )
            except (OSError, KeyError, ValueError):
                pass  # a broken cache is rebuilt below

    rgbs: list[np.ndarray] = []
    dmgs: list[np.ndarray] = []
    has: list[bool] = []
    gidx: list[int] = []
    names: list[str] = []
    skipped: list[tuple[str, str]] = []
    want = size
    for gi, f in progress(items, desc="loading frames", unit="frame", disable=None if show_progress else True):
        try:
            img = read_rgb(f)
        except UserError as e:
            skipped.append((str(f), str(e)))
            continue
        hw = (img.shape[1], img.shape[0])
        if want is None:
            want = hw
        if hw != want:
            raise UserError(f"{f}: frame is {hw[0]}x{hw[1]} but the others are {want[0]}x{want[1]}; "
                            "frames of mixed sizes cannot be batched")
        twin = None
        dmg_dir = folders[gi].dmg
        if with_dmg and dmg_dir is not None and (dmg_dir / f.name).is_file():
            try:
                twin = read_gray(dmg_dir / f.name)
                if (twin.shape[1], twin.shape[0]) != hw:
                    twin = None
            except UserError as e:
                skipped.append((str(dmg_dir / f.name), str(e)))
        rgbs.append(img)
        if with_dmg:
            dmgs.append(twin if twin is not None else np.zeros(img.shape[:2], np.uint8))
            has.append(twin is not None)
        gidx.append(gi)
        names.append(f"{games[gi]}/{f.name}")
    if not rgbs:
        raise UserError("no readable frames in " + ", ".join(str(p) for p in paths))
    fs = FrameSet(
        rgb=np.stack(rgbs),
        game=np.asarray(gidx, dtype=np.int64),
        names=names,
        games=games,
        dmg=np.stack(dmgs) if with_dmg else None,
        has_dmg=np.asarray(has, dtype=bool) if with_dmg else None,
        skipped=skipped,
    )
    if cache_file is not None:
        from utils.fsio import atomic_path

        with atomic_path(cache_file) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh, rgb=fs.rgb, game=fs.game, names=np.asarray(fs.names), games=np.asarray(fs.games),
                dmg=fs.dmg if fs.dmg is not None else np.zeros((0,), np.uint8),
                has_dmg=fs.has_dmg if fs.has_dmg is not None else np.zeros((0,), bool),
                skipped=np.asarray(fs.skipped, dtype=str).reshape(-1, 2),
            )
    return fs
