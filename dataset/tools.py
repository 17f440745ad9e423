"""Dataset tools: ``retrocolor dataset info | preview | split | merge``.

Why these exist: a colorizer is only as honest as its data handling.  ``info`` shows what a set
holds (frames, DMG twins, resolutions, how colourful it is) before anyone trains on it;
``preview`` lets a human *see* it; ``split`` makes train/val/test sets that do not leak (Game Boy
frames a fraction of a second apart are near copies, so a random per-frame split would put the
same screen in train and test and flatter every model; we split by contiguous stretches of play
or by whole games instead, and never per frame); ``merge`` gathers several games into one
genre set.

Everything here is torch-free and works on the data-folder shapes that
:func:`dataset.loader.find_game_folders` accepts.  Outputs are written atomically: a split or
merge is built in a hidden temporary folder beside the target and renamed into place, so an
interrupted run never leaves a half-written output folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dataset.color import rgb_to_lab
from dataset.loader import GameFolder, find_game_folders
from utils.errors import UserError
from utils.fsio import atomic_write_json
from utils.geometry import check_scale
from utils.images import MAX_PIXELS, header_size, list_images, read_rgb, write_png
from utils.progress import progress

#: A pixel whose Lab chroma sqrt(a^2 + b^2) is below this counts as "near grey".  5 units is
#: about where a colour cast becomes visible next to a neutral grey.
GREY_CHROMA = 5.0
#: Frames per game decoded for colour statistics by default (evenly spaced over play order).
#: Counts, twins and resolutions always cover every file; decoding all 17k frames of the
#: shared set takes several times longer for statistics that move by well under one unit.
DEFAULT_SAMPLE = 200
SPLITS = ("train", "val", "test")
_CODE = {"train": 0, "val": 1, "test": 2}
SPLIT_FORMAT = 1
MERGE_FORMAT = 1


# --------------------------------------------------------------------------- scanning
@dataclass
class _Game:
    """One game's files on disk (no pixels decoded)."""

    folder: GameFolder
    files: list[Path]
    twins: set[str]

    @property
    def name(self) -> str:
        return self.folder.name


def _list(folder: Path) -> list[Path]:
    try:
        return list_images(folder)
    except OSError as e:
        raise UserError(f"cannot read folder {folder}: {e.strerror or e}", 3) from None


def _scan(paths: Sequence[str | os.PathLike[str]], *, need_frames: bool = True) -> list[_Game]:
    """Resolve data arguments into games with their sorted frame files and twin names."""
    games = []
    for g in find_game_folders(paths):
        files = _list(g.frames)
        twins: set[str] = set()
        if g.dmg is not None:
            names = {f.name for f in files}
            twins = {t.name for t in _list(g.dmg)} & names
        games.append(_Game(g, files, twins))
    if need_frames and not any(g.files for g in games):
        raise UserError("no frames found in " + ", ".join(str(p) for p in paths))
    return games


def _even(n: int, k: int) -> np.ndarray:
    """``k`` indices spread evenly over ``range(n)`` (first and last included), no repeats."""
    if n <= 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k >= n:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


# --------------------------------------------------------------------------- info
def _pack(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((r << 16) | (g << 8) | b).ravel()


def _unpack(codes: np.ndarray) -> np.ndarray:
    c = codes.astype(np.uint32)
    return np.stack([(c >> 16) & 255, (c >> 8) & 255, c & 255], axis=-1).astype(np.uint8)


def _colour_stats(codes: np.ndarray, counts: np.ndarray) -> dict[str, float]:
    """Pixel-weighted Lab statistics from a colour histogram (exact, and fast: Game Boy frames
    have a few hundred distinct colours, so we convert those instead of millions of pixels)."""
    total = float(counts.sum())
    if total == 0:
        return {"mean_L": float("nan"), "mean_a": float("nan"), "mean_b": float("nan"),
                "mean_chroma": float("nan"), "grey_share": float("nan")}
    lab = rgb_to_lab(_unpack(codes)).astype(np.float64)
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    w = counts / total
    return {
        "mean_L": float(w @ lab[:, 0]),
        "mean_a": float(w @ lab[:, 1]),
        "mean_b": float(w @ lab[:, 2]),
        "mean_chroma": float(w @ chroma),
        "grey_share": float(w @ (chroma < GREY_CHROMA)),
    }


def _merge_hist(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros(0, np.uint32), np.zeros(0, np.float64)
    codes = np.concatenate([p[0] for p in parts])
    counts = np.concatenate([p[1] for p in parts]).astype(np.float64)
    u, inv = np.unique(codes, return_inverse=True)
    return u, np.bincount(inv.ravel(), weights=counts, minlength=len(u))


def _r(x: float) -> float | None:
    return None if x != x else round(x, 3)  # NaN -> null keeps the JSON valid


def info(
    paths: Sequence[str | os.PathLike[str]],
    sample_per_game: int | None = DEFAULT_SAMPLE,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Describe a dataset: per game and overall frame counts, DMG twins, resolutions, colour stats.

    Counts, twins and resolutions (read from file headers) cover every file.  Colour statistics
    decode ``sample_per_game`` frames per game spread evenly over play order (``None`` or 0: all
    frames); the overall figures weight each game by its frame count, so they estimate the mean
    over all frames, not over the sample.  ``grey_share`` is the share of pixels with chroma
    below :data:`GREY_CHROMA`.  Unreadable files are listed, never fatal.
    """
    if sample_per_game is not None and sample_per_game < 0:
        raise UserError(f"sample size must be >= 0 (0 = all frames), got {sample_per_game}")
    games = _scan(paths)
    unreadable: list[list[str]] = []
    per_game: dict[str, dict[str, Any]] = {}
    hists: list[tuple[np.ndarray, np.ndarray]] = []
    weights: list[tuple[float, float]] = []  # (frames represented, pixels sampled) per game
    todo = []
    for g in games:
        k = len(g.files) if not sample_per_game else min(sample_per_game, len(g.files))
        todo.append((g, set(_even(len(g.files), k).tolist())))
    n_decode = sum(len(s) for _, s in todo)
    bar = progress(total=n_decode, desc="reading frames", unit="frame", disable=None if show_progress else True)
    with bar:
        for g, sample in todo:
            res: Counter[str] = Counter()
            parts: list[tuple[np.ndarray, np.ndarray]] = []
            bad = 0
            n_sampled = 0
            pixels = 0
            for i, f in enumerate(g.files):
                size = None if i in sample else header_size(f)
                if size is None:  # sampled, or a format whose header we do not parse: decode
                    try:
                        img = read_rgb(f)
                    except UserError as e:
                        unreadable.append([str(f), str(e)])
                        bad += 1
                        if i in sample:
                            bar.update(1)
                        continue
                    size = (img.shape[1], img.shape[0])
                    if i in sample:
                        u, c = np.unique(_pack(img), return_counts=True)
                        parts.append((u, c))
                        n_sampled += 1
                        pixels += img.shape[0] * img.shape[1]
                        bar.update(1)
                res[f"{size[0]}x{size[1]}"] += 1
            codes, counts = _merge_hist(parts)
            stats = _colour_stats(codes, counts)
            readable = len(g.files) - bad
            if pixels:
                hists.append((codes, counts))
                weights.append((readable / n_sampled, float(pixels)))
            per_game[g.name] = {
                "path": str(g.folder.frames),
                "frames": len(g.files),
                "dmg_twins": len(g.twins),
                "resolutions": dict(res.most_common()),
                "sampled_frames": n_sampled,
                "unreadable": bad,
                **{k: _r(v) for k, v in stats.items()},
                "distinct_colours": int(len(codes)),
            }
    # Overall: each game's histogram scaled by frames-represented-per-sampled-frame.
    scaled = [(c, n * w) for (c, n), (w, _) in zip(hists, weights, strict=True)]
    all_codes, all_counts = _merge_hist(scaled)
    total_res: Counter[str] = Counter()
    for v in per_game.values():
        total_res.update(v["resolutions"])
    total = {
        "games": len(games),
        "frames": sum(v["frames"] for v in per_game.values()),
        "dmg_twins": sum(v["dmg_twins"] for v in per_game.values()),
        "resolutions": dict(total_res.most_common()),
        "sampled_frames": sum(v["sampled_frames"] for v in per_game.values()),
        "unreadable": len(unreadable),
        **{k: _r(v) for k, v in _colour_stats(all_codes, all_counts).items()},
        "distinct_colours": int(len(all_codes)),
    }
    readable_total = total["frames"] - total["unreadable"]
    return {
        "games": per_game,
        "total": total,
        "sample_per_game": sample_per_game or None,
        "sampled": total["sampled_frames"] < readable_total,
        "grey_chroma_threshold": GREY_CHROMA,
        "unreadable": unreadable,
    }


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def format_info(result: dict[str, Any]) -> str:
    """The human table for :func:`info`'s result (``--json`` prints the dict itself)."""
    t = result["total"]
    res = ", ".join(f"{k} ({v:,})" if len(t["resolutions"]) > 1 else k for k, v in t["resolutions"].items())
    lines = [
        f"{t['games']} game{'s' if t['games'] != 1 else ''}, {t['frames']:,} frames, "
        f"{t['dmg_twins']:,} with DMG twins; resolution {res or '-'}",
        "",
    ]
    names = list(result["games"])
    w = max([len(n) for n in names] + [5])
    head = (f"{'game':<{w}} {'frames':>7} {'dmg':>6} {'size':>9} {'L':>6} {'chroma':>7} {'grey':>6} "
            f"{'colours':>8} {'a':>6} {'b':>6}")
    lines += [head, "-" * len(head)]

    def row(name: str, v: dict[str, Any]) -> str:
        rs = v["resolutions"]
        size = next(iter(rs)) if len(rs) == 1 else (f"mixed({len(rs)})" if rs else "-")
        grey = "-" if v["grey_share"] is None else f"{100 * v['grey_share']:.1f}%"
        return (f"{name:<{w}} {v['frames']:>7,} {v['dmg_twins']:>6,} {size:>9} {_fmt(v['mean_L'], '6.1f')} "
                f"{_fmt(v['mean_chroma'], '7.1f')} {grey:>6} {v['distinct_colours']:>8,} "
                f"{_fmt(v['mean_a'], '6.1f')} {_fmt(v['mean_b'], '6.1f')}")

    for n in names:
        lines.append(row(n, result["games"][n]))
    if len(names) > 1:
        lines += ["-" * len(head), row("total", t)]
    lines.append("")
    readable = t["frames"] - t["unreadable"]
    if result["sampled"]:
        lines.append(f"colour statistics from an evenly spaced sample of up to {result['sample_per_game']} "
                     f"frames per game "
                     f"({t['sampled_frames']:,} of {readable:,} frames; --sample 0 reads all);")
        lines.append("frame counts, twins and sizes cover every file")
    else:
        lines.append(f"colour statistics over all {t['sampled_frames']:,} readable frames")
    lines.append(f"L, a, b: mean CIE Lab; chroma: mean sqrt(a^2+b^2); grey: pixels with chroma < "
                 f"{result['grey_chroma_threshold']:g}; colours: distinct RGB colours in the decoded frames")
    if t["unreadable"]:
        first = result["unreadable"][0]
        lines.append(f"{t['unreadable']} unreadable file(s) skipped, e.g. {first[1]}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- preview
def _label(tile_w: int, h: int, text: str, scale: int) -> np.ndarray:
    strip = np.full((h, tile_w, 3), 16, np.uint8)
    font, fs, th = cv2.FONT_HERSHEY_SIMPLEX, 0.35 * scale, max(1, scale // 2)
    while text and cv2.getTextSize(text, font, fs, th)[0][0] > tile_w - 4 * scale:
        text = text[:-1]
    (_, th_px), _ = cv2.getTextSize(text, font, fs, th)
    cv2.putText(strip, text, (2 * scale, (h + th_px) // 2), font, fs, (235, 235, 235), th, cv2.LINE_AA)
    return strip


def preview(
    paths: Sequence[str | os.PathLike[str]],
    out_png: str | os.PathLike[str],
    count: int = 48,
    columns: int = 8,
    scale: int = 1,
) -> Path:
    """Write a contact sheet of ``count`` frames spread evenly over the whole set (all games in
    order, so each game gets tiles in proportion to its size), labelled by game when there are
    several.  ``scale`` upscales with nearest neighbour so pixels stay crisp.  Returns the path."""
    if count < 1:
        raise UserError(f"--count must be at least 1, got {count}")
    if columns < 1:
        raise UserError(f"--columns must be at least 1, got {columns}")
    scale = check_scale(scale, "--tile-scale")
    out = Path(out_png)
    if out.suffix.lower() != ".png":
        raise UserError(f"preview output must be a .png file, got {out}")
    games = _scan(paths)
    items = [(gi, f) for gi, g in enumerate(games) for f in g.files]
    pick = _even(len(items), count)
    tiles: list[tuple[int, np.ndarray | None]] = []
    for i in progress(pick.tolist(), desc="preview", unit="frame"):
        gi, f = items[i]
        try:
            tiles.append((gi, read_rgb(f)))
        except UserError:
            tiles.append((gi, None))  # drawn as a crossed-out tile: the sheet still shows the gap
    sizes = Counter((t.shape[1], t.shape[0]) for _, t in tiles if t is not None)
    if not sizes:
        raise UserError("no readable frames in " + ", ".join(str(p) for p in paths))
    cw, ch = sizes.most_common(1)[0][0]
    tw, th = cw * scale, ch * scale
    labelled = len(games) > 1
    lh = 12 * scale if labelled else 0
    pad = 2 * scale
    cols = min(columns, len(tiles))
    rows = -(-len(tiles) // cols)
    W, H = pad + cols * (tw + pad), pad + rows * (th + lh + pad)
    if W * H > MAX_PIXELS:
        raise UserError(f"preview would be {W}x{H} pixels; lower --count or --scale")
    sheet = np.full((H, W, 3), 40, np.uint8)
    for k, (gi, img) in enumerate(tiles):
        if img is None:
            img = np.full((ch, cw, 3), 90, np.uint8)
            cv2.line(img, (0, 0), (cw - 1, ch - 1), (200, 0, 200), 2)
            cv2.line(img, (0, ch - 1), (cw - 1, 0), (200, 0, 200), 2)
        elif (img.shape[1], img.shape[0]) != (cw, ch):
            img = cv2.resize(img, (cw, ch), interpolation=cv2.INTER_AREA)
        if scale > 1:
            img = cv2.resize(img, (tw, th), interpolation=cv2.INTER_NEAREST)
        x = pad + (k % cols) * (tw + pad)
        y = pad + (k // cols) * (th + lh + pad)
        if labelled:
            sheet[y:y + lh, x:x + tw] = _label(tw, lh, games[gi].name, scale)
        sheet[y + lh:y + lh + th, x:x + tw] = img
    write_png(out, sheet)
    return out


# --------------------------------------------------------------------------- split
def _n_blocks(frac: float, b: int) -> int:
    return 0 if frac <= 0 else max(1, int(np.floor(frac * b + 0.5)))


def time_blocks(
    n: int, blocks: int, val: float, test: float, gap: int, rng: np.random.Generator, game: str = "game"
) -> tuple[np.ndarray, list[list[Any]]]:
    """Assign ``n`` frames in play order to train/val/test by contiguous time blocks.

    Returns per-frame codes (0 train, 1 val, 2 test, -1 dropped) and the block layout
    ``[[start, end, split], ...]``.  The timeline is cut into ``blocks`` near-equal contiguous
    blocks; ``round(val*blocks)`` and ``round(test*blocks)`` (at least 1 each when asked for)
    are held out, one from each of that many equal stretches of the timeline, so held-out blocks
    are spread over the whole game (early menus and late levels alike) rather than being its
    last stretch.  Which block in each stretch, and which of them are val or test, comes from
    ``rng``.  At every boundary between blocks of different splits the ``gap`` frames nearest
    to it on the less precious side (train before val before test) are dropped, so any two kept
    frames of different splits have at least ``gap`` dropped frames between them.  Fewer
    blocks are used when a game is too short for every block to keep a frame after cutting.
    """
    n_test, n_val = _n_blocks(test, blocks), _n_blocks(val, blocks)
    held = n_test + n_val
    b = min(blocks, n // (2 * gap + 1))
    if held and b < held + 1:
        raise UserError(
            f"game {game!r} has only {n} frames: too few for {n_val} val + {n_test} test + 1 train blocks "
            f"with gap {gap}; lower --blocks/--gap or use --by game")
    if held:  # re-derive the held-out counts for the blocks actually used
        n_test, n_val = _n_blocks(test, b), _n_blocks(val, b)
        held = n_test + n_val
    b = max(b, 1)
    edges = np.linspace(0, n, b + 1).round().astype(np.int64)
    split_of = np.zeros(b, dtype=np.int64)
    if held:
        strata = np.linspace(0, b, held + 1).round().astype(np.int64)
        picks = [int(rng.integers(strata[i], strata[i + 1])) for i in range(held)]
        roles = np.array([2] * n_test + [1] * n_val, dtype=np.int64)
        rng.shuffle(roles)
        split_of[picks] = roles
    codes = np.repeat(split_of, np.diff(edges))
    for i in range(b - 1):
        left, right = split_of[i], split_of[i + 1]
        if left == right or gap == 0:
            continue
        e = int(edges[i + 1])
        if left < right:  # cut the left block's tail
            codes[max(int(edges[i]), e - gap):e] = -1
        else:  # cut the right block's head
            codes[e:min(int(edges[i + 2]), e + gap)] = -1
    layout = [[int(edges[i]), int(edges[i + 1]), SPLITS[split_of[i]]] for i in range(b)]
    return codes, layout


def _game_rng(seed: int, name: str) -> np.random.Generator:
    # crc32, not hash(): Python salts str hashes per process, and splits must be reproducible.
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode("utf-8"))])


def _check_outside(out: Path, paths: Sequence[str | os.PathLike[str]], games: list[_Game]) -> None:
    o = out.resolve()
    for p in [*map(Path, paths), *(g.folder.frames for g in games)]:
        r = p.resolve()
        if o == r or o.is_relative_to(r) or r.is_relative_to(o):
            raise UserError(f"output folder {out} overlaps the input data {p}; choose a folder outside it")


def _prepare_out(out: Path, marker: str, what: str) -> bool:
    """Check the target folder: False when absent or empty, True when it holds an earlier output
    (it has ``marker``); anything else is refused, so we never delete a user's unrelated files."""
    if not out.exists():
        return False
    if not out.is_dir():
        raise UserError(f"output {out} exists and is not a folder")
    try:
        empty = not any(out.iterdir())
    except OSError as e:
        raise UserError(f"cannot read {out}: {e.strerror or e}", 3) from None
    if empty:
        return False
    if (out / marker).is_file():
        return True
    raise UserError(f"output folder {out} exists and is not empty (and is not an earlier {what}); choose a new folder")


@contextlib.contextmanager
def _staging(out: Path, replace: bool) -> Iterator[Path]:
    """Yield a hidden temp folder beside ``out``; on success swap it into place, else delete it."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
    except OSError as e:
        raise UserError(f"cannot create {out}: {e.strerror or e}", 3) from None
    try:
        yield tmp
        if replace:
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(out, old)
            try:
                os.rename(tmp, out)
            except OSError:
                os.rename(old, out)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            if out.is_dir():
                out.rmdir()  # empty (checked before), and rename onto a folder is not portable
            os.rename(tmp, out)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise UserError(f"cannot write {out}: {e.strerror or e}", 3) from None
        raise


class _Linker:
    """Hard-link files (instant, no extra disk), falling back to copies across file systems or
    where links are not permitted; counts which happened for the summary."""

    def __init__(self) -> None:
        self.links = 0
        self.copies = 0

    def __call__(self, src: Path, dst: Path) -> None:
        try:
            os.link(src, dst)
            self.links += 1
        except OSError:
            shutil.copy2(src, dst)
            self.copies += 1

    def describe(self) -> str:
        if not self.copies:
            return "hard links"
        if not self.links:
            return "copies"
        return f"{self.links:,} hard links, {self.copies:,} copies"


def _canon(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def split(
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    by: str = "time",
    val: float = 0.1,
    test: float = 0.1,
    blocks: int = 20,
    gap: int = 2,
    seed: int = 0,
    test_games: Sequence[str] | None = None,
    force: bool = False,
) -> str:
    """Split into ``OUT/{train,val,test}/GAME/*.png`` (+ ``GAME/dmg/`` twins) and ``OUT/split.json``.

    ``by="time"``: within each game, contiguous time blocks (see :func:`time_blocks`).
    ``by="game"``: whole games are held out for test (``test_games``, or ``round(test * games)``
    chosen by ``seed``), which measures generalisation to unseen games; val is then a time-block
    slice (share ``val`` of ``blocks``, with ``gap``) of each *train* game, so model selection
    sees the training games' palettes but never the test games.  Never a random per-frame split.

    Files are hard links where possible (they share bytes with the source: replace such files,
    never edit them in place), else copies; extraction manifests are not carried over, since
    ``split.json`` lists every file.  The output is built in a temporary folder
    and renamed into place.  An existing OUT must be empty, or hold this very split (then nothing
    is written), or an earlier split that ``force`` replaces; anything else is refused.
    """
    if by not in ("time", "game"):
        raise UserError(f"--by must be 'time' or 'game', got {by!r}")
    for name, v in (("--val", val), ("--test", test)):
        if not 0.0 <= v < 1.0:
            raise UserError(f"{name} must be a share in [0, 1), got {v}")
    if val + test >= 1.0:
        raise UserError(f"--val + --test must leave frames for training (got {val} + {test})")
    if blocks < 1:
        raise UserError(f"--blocks must be at least 1, got {blocks}")
    if gap < 0:
        raise UserError(f"--gap must be >= 0, got {gap}")
    if test_games and by != "game":
        raise UserError("--test-games holds out whole games: use it with --by game")
    out = Path(out_dir)
    games = _scan(paths)
    skipped = [g.name for g in games if not g.files]
    games = [g for g in games if g.files]
    _check_outside(out, paths, games)

    files: dict[str, dict[str, list[str]]] = {s: {} for s in SPLITS}
    dropped: dict[str, list[str]] = {}
    layout: dict[str, Any] = {}
    notes: list[str] = []
    held_games: list[str] = []
    if by == "game":
        names = [g.name for g in games]
        if test_games:
            unknown = [t for t in test_games if t not in names]
            if unknown:
                raise UserError(f"--test-games: no game named {unknown[0]!r} (games: {', '.join(names)})")
            held_games = sorted(set(test_games))
        elif test > 0:
            if len(names) < 2:
                raise UserError("--by game needs at least two games (one to train on, one to test on)")
            k = min(len(names) - 1, max(1, int(np.floor(test * len(names) + 0.5))))
            rng = np.random.default_rng(int(seed) & 0xFFFFFFFF)
            held_games = sorted(rng.choice(sorted(names), k, replace=False).tolist())
        if len(held_games) >= len(names):
            raise UserError("--by game: every game is a test game; leave at least one for training")
    for g in games:
        names_g = [f.name for f in g.files]
        if g.name in held_games:
            codes = np.full(len(names_g), 2, dtype=np.int64)
            layout[g.name] = [[0, len(names_g), "test"]]
        else:
            codes, lay = time_blocks(len(names_g), blocks, val, test if by == "time" else 0.0, gap,
                                     _game_rng(seed, g.name), g.name)
            layout[g.name] = lay
            if len(lay) < blocks and (val > 0 or (by == "time" and test > 0)):
                notes.append(f"{g.name}: {len(lay)} blocks (too few frames for {blocks})")
        for s, c in _CODE.items():
            sel = [n for n, k in zip(names_g, codes, strict=True) if k == c]
            if sel:
                files[s][g.name] = sel
        dropped[g.name] = [n for n, k in zip(names_g, codes, strict=True) if k == -1]

    params = {"by": by, "val": val, "test": test, "blocks": blocks, "gap": gap, "seed": seed,
              "test_games": held_games if by == "game" else None}
    record = _canon({
        "format": SPLIT_FORMAT,
        "params": params,
        "sources": {g.name: str(g.folder.frames.resolve()) for g in games},
        "blocks": layout,
        "files": files,
        "dropped": dropped,
    })

    def summary(how: str) -> str:
        desc = (f"by time ({blocks} blocks per game, gap {gap}, seed {seed})" if by == "time" else
                f"by game (test games: {', '.join(held_games) or 'none'}; val: {blocks}-block time slices "
                f"of the train games, gap {gap}, seed {seed})")
        twins = {g.name: g.twins for g in games}
        lines = [f"split {desc} -> {out}"]
        total = sum(len(g.files) for g in games)
        for s in SPLITS:
            n = sum(len(v) for v in files[s].values())
            nt = sum(len(set(v) & twins[k]) for k, v in files[s].items())
            share = f"{100 * n / total:.1f}%" if total else "-"
            lines.append(f"  {s:<5} {n:>7,} frames ({share:>5}) in {len(files[s]):>2} games, {nt:,} with DMG twins")
        nd = sum(len(v) for v in dropped.values())
        lines.append(f"  dropped {nd:,} frames at block boundaries (gap {gap}) against near-duplicate leakage")
        lines += [f"  note: {x}" for x in notes]
        if skipped:
            lines.append(f"  note: skipped games without frames: {', '.join(skipped)}")
        lines.append(f"  {how}")
        return "\n".join(lines)

    replace = _prepare_out(out, "split.json", "split")
    if replace:
        try:
            old = json.loads((out / "split.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if old == record:
            return summary("unchanged: the folder already holds this exact split")
        if not force:
            raise UserError(f"{out} already holds a different split (other parameters or data); "
                            "pass --force to replace it, or choose a new folder")
    link = _Linker()
    twin_dirs = {g.name: g.folder.dmg for g in games}
    src_dirs = {g.name: g.folder.frames for g in games}
    with _staging(out, replace) as tmp:
        for s in SPLITS:
            (tmp / s).mkdir()
        jobs = [(s, gname, n) for s in SPLITS for gname, ns in files[s].items() for n in ns]
        made: set[Path] = set()
        twins = {g.name: g.twins for g in games}
        for s, gname, n in progress(jobs, desc="writing split", unit="frame"):
            d = tmp / s / gname
            if d not in made:
                d.mkdir()
                made.add(d)
            link(src_dirs[gname] / n, d / n)
            dmg = twin_dirs[gname]
            if dmg is not None and n in twins[gname]:
                if d / "dmg" not in made:
                    (d / "dmg").mkdir()
                    made.add(d / "dmg")
                link(dmg / n, d / "dmg" / n)
        atomic_write_json(tmp / "split.json", record)
    return summary(f"files: {link.describe()}; parameters and file lists in {out / 'split.json'}")


# --------------------------------------------------------------------------- merge
def merge(
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    force: bool = False,
) -> str:
    """Gather several games' datasets into one genre set ``OUT/GAME/`` (one sub-folder per game).

    Plain folders become ``OUT/GAME/*.png``; datasets from ``retrocolor extract`` keep their
    shape (``OUT/GAME/frames/`` + ``manifest.jsonl``) so their manifests stay valid; DMG twins
    go to ``<frames>/dmg/``.  Two inputs with the same game name are refused (a merged set must
    not silently lose or mix a game).  ``OUT/merge.json`` records the sources.  Built in a temp
    folder and renamed into place; an existing OUT must be empty, or an earlier merge with
    ``force``.
    """
    out = Path(out_dir)
    games: list[_Game] = []
    origin: dict[str, str] = {}
    for raw in paths:
        for g in _scan([raw], need_frames=False):
            if g.name in origin:
                raise UserError(f"game name {g.name!r} comes from both {origin[g.name]} and {g.folder.frames}; "
                                "rename one folder so every game has its own name")
            if not g.files:
                raise UserError(f"no frames in {g.folder.frames}")
            origin[g.name] = str(g.folder.frames)
            games.append(g)
    _check_outside(out, paths, games)
    replace = _prepare_out(out, "merge.json", "merged set")
    if replace and not force:
        raise UserError(f"{out} already holds a merged set; pass --force to replace it, or choose a new folder")
    link = _Linker()
    record: dict[str, Any] = {"format": MERGE_FORMAT, "games": {}}
    with _staging(out, replace) as tmp:
        jobs: list[tuple[Path, Path]] = []
        for g in games:
            manifest = g.folder.frames.parent / "manifest.jsonl"
            extracted = g.folder.frames.name == "frames" and manifest.is_file()
            dest = tmp / g.name / "frames" if extracted else tmp / g.name
            dest.mkdir(parents=True)
            if extracted:
                shutil.copy2(manifest, tmp / g.name / "manifest.jsonl")
            jobs += [(f, dest / f.name) for f in g.files]
            if g.twins and g.folder.dmg is not None:
                (dest / "dmg").mkdir()
                jobs += [(g.folder.dmg / n, dest / "dmg" / n) for n in sorted(g.twins)]
            record["games"][g.name] = {"source": str(g.folder.frames.resolve()), "frames": len(g.files),
                                       "dmg_twins": len(g.twins), "manifest": extracted}
        for src, dst in progress(jobs, desc="merging", unit="file"):
            link(src, dst)
        atomic_write_json(tmp / "merge.json", record)
    n = sum(len(g.files) for g in games)
    nt = sum(len(g.twins) for g in games)
    return (f"merged {len(games)} games, {n:,} frames ({nt:,} with DMG twins) -> {out}\n"
            f"  games: {', '.join(g.name for g in games)}\n  files: {link.describe()}")
