"""Command-line flags and handlers of the dataset stage: ``retrocolor extract`` and ``retrocolor dataset ...``.

Flags live beside the stage they configure; ``retrocolor.py`` only wires the commands up.
Torch-free and import-light: each handler imports its tool when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from utils.cli import add_command, crop_rect, positive_float, print_json, scale, timestamp
from utils.errors import UserError


def cmd_extract(a: argparse.Namespace) -> int:
    from dataset.extract import extract

    report = extract(
        a.video, a.output, every_seconds=a.every_seconds, start=a.start, end=a.end, crop=a.crop,
        dedupe_distance=a.dedupe_distance,
    )
    print(report.summary())
    return 0


def cmd_dataset_info(a: argparse.Namespace) -> int:
    from dataset.tools import format_info, info

    result = info(a.data, sample_per_game=a.sample)
    if a.json:
        print_json(result)
    else:
        print(format_info(result))
    return 0


def cmd_dataset_preview(a: argparse.Namespace) -> int:
    from dataset.tools import preview

    out = preview(a.data, a.output, count=a.count, columns=a.columns, scale=a.tile_scale)
    print(out)
    return 0


def cmd_dataset_split(a: argparse.Namespace) -> int:
    from dataset.tools import split

    summary = split(a.data, a.output, by=a.by, val=a.val, test=a.test, blocks=a.blocks, gap=a.gap,
                    seed=a.seed, test_games=a.test_games, force=a.force)
    print(summary)
    return 0


def cmd_dataset_render(a: argparse.Namespace) -> int:
    from dataset.render import RenderConfig, render

    cfg = RenderConfig(frames=a.frames, seed=a.seed, max_emulated=a.max_emulated, time_limit=a.time_limit,
                       mono=a.mono)
    report = render(a.roms, a.output, cfg, jobs=a.jobs)
    print(report.table())
    return 0


def cmd_dataset_merge(a: argparse.Namespace) -> int:
    from dataset.tools import merge

    summary = merge(a.data, a.output, force=a.force)
    print(summary)
    return 0


def cmd_dataset_genres(a: argparse.Namespace) -> int:
    from dataset.genres import cluster_games, from_index
    from utils.fsio import atomic_write_json

    if (a.index is None) == (a.clusters is None):
        raise UserError("give either --index TSV (genre tags) or --clusters K (groups learned from the frames)")
    if a.clusters is not None:
        doc = cluster_games(a.data, a.clusters, seed=a.seed, limit_per_game=a.limit_per_game)
    else:
        doc = from_index(a.data, a.index)
    atomic_write_json(a.output, doc)
    for name, games in doc["groups"].items():
        print(f"{name}: {len(games)} games")
    if doc.get("untagged"):
        print(f"untagged: {len(doc['untagged'])} games")
    print(a.output)
    return 0


def cmd_dataset_schemes(a: argparse.Namespace) -> int:
    from dataset.schemes import build
    from utils.fsio import atomic_write_json

    if a.k < 1:
        raise UserError(f"-k must be at least 1, got {a.k}")
    if a.limit_per_game is not None and a.limit_per_game < 1:
        raise UserError(f"--limit-per-game must be at least 1, got {a.limit_per_game}")
    doc = build(a.data, k=a.k, limit_per_game=a.limit_per_game, index=a.index)
    atomic_write_json(a.output, doc)
    for s in doc["schemes"]:
        n = s["games"]
        print(f"scheme {s['id']:2}: {' '.join(s['preview'])}  the palette of {s.get('title') or s['game']} "
              f"(the closest scheme for {n} game{'' if n == 1 else 's'})")
    print(f"{len(doc['schemes'])} schemes from {doc['training_games']} games -> {a.output}; each game's closest "
          f"scheme: median {doc['median_best_ratio_to_grey']:.2f} x grey's error")
    return 0


def add_extract_command(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """``retrocolor extract VIDEO -o DATASET``."""
    sp = add_command(sub, "extract", cmd_extract,
                     "extract native 160x144 frames from a longplay video into a dataset")
    sp.add_argument("video", type=Path, help="video file")
    sp.add_argument("-o", "--output", type=Path, required=True, help="dataset folder (frames/ + manifest.jsonl)")
    sp.add_argument("--every-seconds", type=positive_float, default=0.5,
                    help="sample one frame every S seconds (default 0.5)")
    sp.add_argument("--start", type=timestamp, default=None, help="start time (seconds or HH:MM:SS)")
    sp.add_argument("--end", type=timestamp, default=None, help="end time (seconds or HH:MM:SS)")
    sp.add_argument("--crop", type=crop_rect, default=None,
                    help="game screen rectangle X,Y,W,H in video pixels (default: detect)")
    sp.add_argument("--dedupe-distance", type=int, default=4,
                    help="drop a frame whose perceptual hash is within this Hamming distance of a recently kept one "
                    "with similar colours (default 4; negative: keep near-duplicates)")
    return sp


def _add_info(dsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sp = dsub.add_parser("info", help="frame count, games, resolution, colour statistics",
                         description="Frame and twin counts, resolution and colour statistics of datasets, per game.")
    sp.set_defaults(func=cmd_dataset_info)
    sp.add_argument("data", nargs="+", type=Path)
    sp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sp.add_argument("--sample", type=int, default=200,
                    help="frames per game decoded for colour statistics, evenly spaced (0 = all; default 200)")


def _add_preview(dsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sp = dsub.add_parser("preview", help="write a contact-sheet PNG",
                         description="Write a contact sheet of frames spread evenly over the datasets.")
    sp.set_defaults(func=cmd_dataset_preview)
    sp.add_argument("data", nargs="+", type=Path)
    sp.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    sp.add_argument("--count", type=int, default=48, help="frames to show (spread evenly over the set)")
    sp.add_argument("--columns", type=int, default=8)
    sp.add_argument("--tile-scale", type=scale, default=1, help="upscale of each frame in the sheet, 1..8 (default 1)")


def _add_split(dsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sp = dsub.add_parser("split",
                         help="train/val/test split by contiguous time blocks or by game (never random frames)",
                         description="Split datasets into train/, val/ and test/ (hard links) by contiguous time "
                         "blocks of each game, or by whole games; never by random frames, whose neighbours are "
                         "near copies.")
    sp.set_defaults(func=cmd_dataset_split)
    sp.add_argument("data", nargs="+", type=Path)
    sp.add_argument("-o", "--output", type=Path, required=True,
                    help="new folder that gets train/, val/, test/ and split.json")
    sp.add_argument("--by", choices=["time", "game"], default="time")
    sp.add_argument("--val", type=float, default=0.1,
                    help="share of each game's time blocks for validation (by=game: of each train game's)")
    sp.add_argument("--test", type=float, default=0.1,
                    help="share of each game's time blocks for test (by=game: share of games, unless --test-games)")
    sp.add_argument("--blocks", type=int, default=20, help="contiguous time blocks per game (default 20)")
    sp.add_argument("--gap", type=int, default=2,
                    help="frames dropped at each boundary between splits, against near-duplicate leakage (default 2)")
    sp.add_argument("--test-games", nargs="*", default=None, help="games held out for test (by=game; default: by seed)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--force", action="store_true", help="replace OUT if it holds an earlier, different split")


def _add_render(dsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sp = dsub.add_parser(
        "render", help="play ROMs in PyBoy and write colour frames plus real monochrome twins (dual-mode ROMs)",
        description="Play each ROM headless in PyBoy, exploring deep into the game, and write GAME/*.png colour "
        "frames, GAME/dmg/*.png monochrome twins of the same moments (dual-mode ROMs), GAME/render.json, and "
        "summary.json + manifest.json. Reruns skip finished games and replay partial ones from their seed.")
    sp.set_defaults(func=cmd_dataset_render)
    sp.add_argument("roms", nargs="+", type=Path, help="ROM files (.gb, .gbc) or folders searched recursively")
    sp.add_argument("-o", "--output", type=Path, required=True, help="corpus folder (one sub-folder per game)")
    sp.add_argument("--frames", type=int, default=150, help="colour frames to keep per game (default 150)")
    sp.add_argument("--seed", type=int, default=0, help="exploration seed; a seed gives the same frames (default 0)")
    sp.add_argument("--jobs", type=int, default=1, help="games rendered at once, one process each (default 1)")
    sp.add_argument("--time-limit", type=positive_float, default=180.0,
                    help="wall seconds per game before it stops with what it has; a hung emulator is killed "
                    "30 s later (default 180)")
    sp.add_argument("--max-emulated", type=int, default=40_000,
                    help="emulated frames per game at most (default 40000, about 11 minutes of play)")
    sp.add_argument("--mono", action="store_true",
                    help="also render monochrome-only ROMs (their grey frames alone, under GAME/dmg/; no colour truth)")


def _add_merge(dsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sp = dsub.add_parser("merge", help="merge several games' datasets into one genre set",
                         description="Merge several games' datasets into one folder (hard links), e.g. a genre set.")
    sp.set_defaults(func=cmd_dataset_merge)
    sp.add_argument("data", nargs="+", type=Path)
    sp.add_argument("-o", "--output", type=Path, required=True)
    sp.add_argument("--force", action="store_true", help="replace OUT if it holds an earlier merged set")


def _add_genres(dsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sp = dsub.add_parser(
        "genres", help="group games by the genre tags of an index, or by clusters learned from their frames",
        description="Write a genres JSON for 'retrocolor train --genre NAME --genres FILE': the games under DATA "
        "grouped by an index's genre tags (--index), or into K clusters of how their monochrome frames look "
        "(--clusters; a new frame can be placed in one, so a router can pick a genre model at play time).")
    sp.set_defaults(func=cmd_dataset_genres)
    sp.add_argument("data", nargs="+", type=Path, help="dataset folders (one sub-folder per game)")
    sp.add_argument("-o", "--output", type=Path, required=True, help="genres JSON to write")
    sp.add_argument("--index", type=Path, default=None, help="ROM index TSV with slug and genre columns")
    sp.add_argument("--clusters", type=int, default=None, help="learn K clusters from the frames")
    sp.add_argument("--seed", type=int, default=0, help="k-means seed (default 0)")
    sp.add_argument("--limit-per-game", type=int, default=60, help="frames per game described (default 60)")


def _add_schemes(dsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sp = dsub.add_parser(
        "schemes", help="learn 4-colour schemes from Color games, for players to pick on games the model never saw",
        description="Write a schemes JSON (the shipped one is weights/schemes.json): each game's palette (mean "
        "colour per monochrome shade); K of those picked greedily so that every game has one close to its own, "
        "the best single guess first. live/play/colorize use them with --scheme N or the C key.")
    sp.set_defaults(func=cmd_dataset_schemes)
    sp.add_argument("data", nargs="+", type=Path, help="dataset folders (one sub-folder per game, colour frames "
                    "and, for dual-mode games, dmg/ twins)")
    sp.add_argument("-o", "--output", type=Path, required=True, help="schemes JSON to write")
    sp.add_argument("-k", type=int, default=16, help="number of schemes (default 16)")
    sp.add_argument("--limit-per-game", type=int, default=40,
                    help="frames per game, spread over its play (default 40)")
    sp.add_argument("--index", type=Path, default=None,
                    help="ROM index TSV (slug, title, developer, licence): credits each scheme's game in the file")


def add_dataset_command(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """``retrocolor dataset info|preview|split|render|merge|genres|schemes``."""
    ds = sub.add_parser("dataset", help="inspect, preview, split and merge datasets", description="dataset tools")
    dsub = ds.add_subparsers(dest="dataset_command", metavar="ACTION")
    dsub.required = True
    for add in (_add_info, _add_preview, _add_split, _add_render, _add_merge, _add_genres, _add_schemes):
        add(dsub)
    return ds
