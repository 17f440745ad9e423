"""The ``retrocolor`` command line: a thin layer over the stage packages' APIs.

Each sub-command parses its arguments, imports the one stage it needs (lazily, so the base
install never imports torch), calls that stage's API and prints the result.  Errors the user
can fix arrive as :class:`utils.errors.UserError` and are printed as one line; anything else is
reported as one line too, with ``--debug`` (or ``RETROCOLOR_DEBUG=1``) showing the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from utils.errors import UserError

__version__ = "0.1.0"


# --------------------------------------------------------------------------- parsing helpers
def _crop(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y,W,H (four integers), got {text!r}") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise argparse.ArgumentTypeError(f"crop must have x,y >= 0 and positive size, got {text!r}")
    return x, y, w, h


def _timestamp(text: str) -> float:
    """Seconds, or [HH:]MM:SS[.fff] as users copy them from a video player."""
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds or HH:MM:SS, got {text!r}") from None
    if len(parts) > 3 or any(p < 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected seconds or HH:MM:SS, got {text!r}")
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + p
    return seconds


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def _print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2))


# --------------------------------------------------------------------------- step 1: data
def cmd_download(a: argparse.Namespace) -> int:
    from capture.download import download

    paths = download(a.url, a.output, max_height=a.max_height)
    for p in paths:
        print(p)
    return 0


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
        _print_json(result)
    else:
        print(format_info(result))
    return 0


def cmd_dataset_preview(a: argparse.Namespace) -> int:
    from dataset.tools import preview

    out = preview(a.data, a.output, count=a.count, columns=a.columns, scale=a.scale)
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


# --------------------------------------------------------------------------- step 2: models
def cmd_train(a: argparse.Namespace) -> int:
    from models.train import TrainConfig, train

    cfg = TrainConfig.from_args(a)
    result = train(cfg)
    if str(result):  # empty on DDP ranks other than 0
        print(result)
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from models.evaluate import evaluate, format_report

    report = evaluate(
        a.model, a.data, input_mode=a.input, baseline_train=a.baseline_train, json_path=a.json,
        grid_path=a.grid, limit_per_game=a.limit_per_game,
    )
    print(format_report(report))
    return 0


# --------------------------------------------------------------------------- step 3: live, play, demo
def _region(text: str) -> tuple[int, int, int, int]:
    """X,Y,W,H in screen pixels; X and Y may be negative (monitors left of or above the primary)."""
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y,W,H (four integers), got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"region must have a positive size, got {text!r}")
    return x, y, w, h


def cmd_live(a: argparse.Namespace) -> int:
    from realtime.live import LiveOptions, run_live

    stats = run_live(LiveOptions(
        window=a.window, region=a.region, model=a.model, scale=a.scale, borderless=a.borderless, on_top=a.on_top,
        position=a.position, seconds=a.seconds, stats_json=a.stats_json, smoothing=a.smoothing,
        screenshot_dir=a.screenshot_dir,
    ))
    lat = stats["capture_to_display"]
    print(f"live: {stats['frames']} frames shown in {stats['seconds']:.1f} s ({stats['fps']} fps; captured "
          f"{stats['frames_captured']}, colorized {stats['frames_colorized']}); colorize p50 "
          f"{stats['stages']['colorize']['p50_ms']} ms; capture-to-display p50 {lat['p50_ms']} ms, "
          f"p99 {lat['p99_ms']} ms")
    if a.stats_json:
        print(f"stats: {a.stats_json}")
    return 0


def cmd_play(a: argparse.Namespace) -> int:
    from realtime.play import PlayOptions, play

    res = play(a.rom, PlayOptions(model=a.model, headless=a.headless, frames=a.frames, seconds=a.seconds,
                                  record=a.record, scale=a.scale, side_by_side=a.side_by_side,
                                  stats_json=a.stats_json, smoothing=a.smoothing))
    print(res.summary())
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from realtime.demo import run_demo

    res = run_demo(seconds=a.seconds, model=a.model, record=a.record, headless=a.headless, scale=a.scale)
    print(res.summary())
    return 0


# --------------------------------------------------------------------------- export, colorize, bench, models
def cmd_export(a: argparse.Namespace) -> int:
    from models.export import export_onnx

    if a.int8_output is not None and not a.int8:
        raise UserError("--int8-output needs --int8")
    export_onnx(a.checkpoint, a.output, calib=a.calib, int8=a.int8, int8_output=a.int8_output, card=not a.no_card,
                calib_frames=a.calib_frames, temperature=a.temperature, tile_snap=a.tile_snap)
    return 0


def cmd_colorize(a: argparse.Namespace) -> int:
    from realtime.offline import colorize_path

    colorize_path(a.input, a.output, model=a.model, side_by_side=a.side_by_side, smoothing=a.smoothing,
                  threads=a.threads, max_seconds=a.seconds)
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    from realtime.bench import run_bench

    if a.emulator is not None:
        from realtime.emulators import bench_emulator

        if a.model is not None and len(a.model) > 1:
            raise UserError("--emulator times one model at a time (the one the live filter runs)")
        bench_emulator(a.emulator, rom=a.rom, runs=a.runs, seconds=a.seconds or 10.0,
                       model=a.model[0] if a.model else None, scale=a.emulator_scale, json_path=a.json)
        return 0
    run_bench(a.model, seconds=a.seconds or 5.0, frames=a.frames, threads=a.threads, scale=a.scale, json_path=a.json)
    return 0


def cmd_models(a: argparse.Namespace) -> int:
    import weights

    rows = weights.list_models()
    if a.json:
        _print_json([{k: (str(v) if isinstance(v, Path) else v) for k, v in r.items() if k != "card"} for r in rows])
        return 0
    if not rows:
        print(f"no shipped models in {weights.WEIGHTS_DIR} (make one: retrocolor export CHECKPOINT -o MODEL.onnx)")
        return 0
    for r in rows:
        card = r["card"]
        flags = " [default]" if r["default"] else ""
        print(f"{r['name']}{flags}: {r['description'] or '(no model card)'}")
        facts = []
        if card.get("arch"):
            facts.append(f"arch {card['arch']}")
        if isinstance(card.get("params"), int):
            facts.append(f"{card['params'] / 1e3:.0f}k params")
        if isinstance(card.get("macs_160x144"), int):
            facts.append(f"{card['macs_160x144'] / 1e6:.0f}M MACs")
        m = card.get("metrics") or {}
        if isinstance(m.get("mse_ab"), (int, float)) and isinstance(m.get("acc10"), (int, float)):
            facts.append(f"held-out mse_ab {m['mse_ab']:.4f} acc10 {m['acc10']:.3f}")
        if isinstance(card.get("fp32_ms"), (int, float)):
            facts.append(f"{card['fp32_ms']:.1f} ms/frame (1 thread)")
        if facts:
            print("    " + ", ".join(facts))
        print(f"    {r['path']}")
        if r["int8_path"]:
            i8 = ((card.get("held_out") or {}).get("int8_L") or {}).get("overall") or {}
            q = f"held-out mse_ab {i8['mse_ab']:.4f}, " if isinstance(i8.get("mse_ab"), (int, float)) else ""
            i8ms = (card.get("int8") or {}).get("int8_ms")
            ms = f"{i8ms:.1f} ms/frame, " if isinstance(i8ms, (int, float)) else ""
            size = r["int8_path"].stat().st_size / max(1, r["path"].stat().st_size)
            print(f"    int8 (--model {r['name']}.int8; {q}{ms}{size:.2f}x the size): {r['int8_path']}")
    return 0


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="retrocolor",
        description="Colorize Game Boy frames with small neural networks: build datasets from longplays, "
        "train and evaluate models, and run them live over an emulator.",
    )
    p.add_argument("--version", action="version", version=f"retrocolor {__version__}")
    p.add_argument("--debug", action="store_true", help="show full tracebacks for unexpected errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(func=fn)
        return sp

    # download
    sp = add("download", cmd_download,
             "download a gameplay video (YouTube URL, any yt-dlp URL, file:// URL or local path)")
    sp.add_argument("url", help="video or playlist URL, file:// URL, or a local file path")
    sp.add_argument("-o", "--output", type=Path, default=Path("."), help="output folder (default: .)")
    sp.add_argument("--max-height", type=int, default=720,
                    help="best video-only stream up to this height (default 720)")

    # extract
    sp = add("extract", cmd_extract, "extract native 160x144 frames from a longplay video into a dataset")
    sp.add_argument("video", type=Path, help="video file")
    sp.add_argument("-o", "--output", type=Path, required=True, help="dataset folder (frames/ + manifest.jsonl)")
    sp.add_argument("--every-seconds", type=_positive_float, default=0.5,
                    help="sample one frame every S seconds (default 0.5)")
    sp.add_argument("--start", type=_timestamp, default=None, help="start time (seconds or HH:MM:SS)")
    sp.add_argument("--end", type=_timestamp, default=None, help="end time (seconds or HH:MM:SS)")
    sp.add_argument("--crop", type=_crop, default=None,
                    help="game screen rectangle X,Y,W,H in video pixels (default: detect)")
    sp.add_argument("--dedupe-distance", type=int, default=4,
                    help="drop a frame whose perceptual hash is within this Hamming distance of a recently kept one "
                    "with similar colours (default 4; negative: keep near-duplicates)")

    # dataset tools
    ds = sub.add_parser("dataset", help="inspect, preview, split and merge datasets", description="dataset tools")
    dsub = ds.add_subparsers(dest="dataset_command", metavar="ACTION")
    dsub.required = True
    sp = dsub.add_parser("info", help="frame count, games, resolution, colour statistics",
                         description="Frame and twin counts, resolution and colour statistics of datasets, per game.")
    sp.set_defaults(func=cmd_dataset_info)
    sp.add_argument("data", nargs="+", type=Path)
    sp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sp.add_argument("--sample", type=int, default=200,
                    help="frames per game decoded for colour statistics, evenly spaced (0 = all; default 200)")
    sp = dsub.add_parser("preview", help="write a contact-sheet PNG",
                         description="Write a contact sheet of frames spread evenly over the datasets.")
    sp.set_defaults(func=cmd_dataset_preview)
    sp.add_argument("data", nargs="+", type=Path)
    sp.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    sp.add_argument("--count", type=int, default=48, help="frames to show (spread evenly over the set)")
    sp.add_argument("--columns", type=int, default=8)
    sp.add_argument("--scale", type=int, default=1, help="integer upscale of each frame")
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
    sp.add_argument("--time-limit", type=_positive_float, default=180.0,
                    help="wall seconds per game before it stops with what it has; a hung emulator is killed "
                    "30 s later (default 180)")
    sp.add_argument("--max-emulated", type=int, default=40_000,
                    help="emulated frames per game at most (default 40000, about 11 minutes of play)")
    sp.add_argument("--mono", action="store_true",
                    help="also render monochrome-only ROMs (their grey frames alone, under GAME/dmg/; no colour truth)")
    sp = dsub.add_parser("merge", help="merge several games' datasets into one genre set",
                         description="Merge several games' datasets into one folder (hard links), e.g. a genre set.")
    sp.set_defaults(func=cmd_dataset_merge)
    sp.add_argument("data", nargs="+", type=Path)
    sp.add_argument("-o", "--output", type=Path, required=True)
    sp.add_argument("--force", action="store_true", help="replace OUT if it holds an earlier merged set")

    # train
    sp = add("train", cmd_train, "train a colorizer (needs retrocolor[train])")
    from_train_args = _train_args_adder()
    from_train_args(sp)

    # evaluate
    sp = add("evaluate", cmd_evaluate, "evaluate a model and the gray / lookup-table baselines on held-out frames")
    sp.add_argument("model", help="checkpoint folder or file, ONNX file, or shipped model name")
    sp.add_argument("--data", nargs="+", type=Path, required=True,
                    help="held-out frames: game folders, or folders of game folders (GAME/*.png, GAME/dmg/*.png)")
    sp.add_argument("--input", choices=["L", "dmg4", "dmg"], default="L",
                    help="L: the frame's own lightness; dmg4: posterised to 4 shades; dmg: the real monochrome twin")
    sp.add_argument("--baseline-train", nargs="+", type=Path, default=None,
                    help="frames the lookup-table baseline is fitted on (default: the model's training data)")
    sp.add_argument("--json", type=Path, default=None, help="write the metrics as JSON")
    sp.add_argument("--grid", type=Path, default=None, help="write an input / prediction / truth PNG grid")
    sp.add_argument("--limit-per-game", type=int, default=None, help="evaluate at most N frames per game")
    # live
    sp = add("live", cmd_live, "colorize a running emulator's window in real time (X11)")
    sp.epilog = (
        "keys in the retrocolor window: F or Space toggle the filter, S side-by-side grey | colour, P screenshot "
        "(PNG in --screenshot-dir), M next model (--model, then every shipped one), O fps/latency overlay, "
        "Esc or Q quit. The emulator window is followed when it moves, re-detected when resized, waited for when "
        "minimised; closing it ends the run with exit code 0.")
    src = sp.add_mutually_exclusive_group()
    src.add_argument("--window", metavar="TITLE", help="capture the window whose title contains TITLE "
                     "(default: look for mGBA, SameBoy, BGB, VisualBoyAdvance, RetroArch, PyBoy, ...)")
    src.add_argument("--region", metavar="X,Y,W,H", type=_region, help="capture this screen rectangle instead")
    sp.add_argument("--model", default=None, help="shipped model name or .onnx path (default: the shipped default)")
    sp.add_argument("--scale", type=int, default=3, help="integer scale of the 160x144 output (default 3)")
    sp.add_argument("--borderless", action="store_true", help="window without decorations")
    sp.add_argument("--on-top", action="store_true", help="keep the window above others (best effort, via the WM)")
    sp.add_argument("--position", choices=["beside", "over"], default="beside",
                    help="beside the emulator (default), or over it (reads the covered window via XComposite)")
    sp.add_argument("--seconds", type=_positive_float, default=None, help="stop after S seconds (scripted runs)")
    sp.add_argument("--stats-json", type=Path, default=None,
                    help="write fps, frame counts, per-stage p50/p99 and capture-to-display latency as JSON")
    sp.add_argument("--smoothing", type=float, default=0.0,
                    help="temporal smoothing of the colours, 0 <= S < 1 (default 0)")
    sp.add_argument("--screenshot-dir", type=Path, default=Path("."), help="where P writes screenshots (default .)")

    # play
    sp = add("play", cmd_play, "play a Game Boy ROM in PyBoy, colorized live")
    sp.epilog = ("game keys: arrows = d-pad, Z = A, X = B, Enter = Start, Backspace or right Shift = Select; "
                 "F or Space toggle the filter, S side-by-side, P screenshot, M next model, O overlay, Esc quit.")
    sp.add_argument("rom", type=Path, help="Game Boy ROM (.gb; dual-mode .gbc games run in monochrome mode)")
    sp.add_argument("--model", default=None, help="shipped model name or .onnx path (default: the shipped default)")
    sp.add_argument("--scale", type=int, default=3, help="integer window/video scale (default 3)")
    sp.add_argument("--headless", action="store_true", help="no window, no pacing: run --frames as fast as possible")
    sp.add_argument("--frames", type=int, default=None, help="stop after N frames")
    sp.add_argument("--seconds", type=_positive_float, default=None, help="stop after S seconds")
    sp.add_argument("--record", type=Path, default=None, help="write the colorized frames to an MP4 (mp4v)")
    sp.add_argument("--side-by-side", action="store_true", help="show/record grey | colour side by side")
    sp.add_argument("--stats-json", type=Path, default=None, help="write timings and frame counts as JSON")
    sp.add_argument("--smoothing", type=float, default=0.0,
                    help="temporal smoothing of the colours, 0 <= S < 1 (default 0)")

    # demo
    sp = add("demo", cmd_demo, "see the filter work now: a built-in homebrew cartridge in PyBoy, grey | colour")
    sp.add_argument("--seconds", type=_positive_float, default=20.0, help="how long to run (default 20)")
    sp.add_argument("--record", type=Path, default=None,
                    help="also write an MP4 (default without a display: a file in the temp folder)")
    sp.add_argument("--headless", action="store_true", help="no window: write an MP4 and a PNG and print their paths")
    sp.add_argument("--model", default=None, help="shipped model name or .onnx path (default: the shipped default)")
    sp.add_argument("--scale", type=int, default=3, help="integer scale (default 3)")

    # export
    sp = add("export", cmd_export, "export a checkpoint to ONNX for the player (parity-checked; optional int8)")
    sp.add_argument("checkpoint", type=Path, help="checkpoint: run folder, .safetensors/.json file or stem")
    sp.add_argument("-o", "--output", type=Path, required=True,
                    help="MODEL.onnx to write (also MODEL.json, the model card)")
    sp.add_argument("--calib", nargs="+", type=Path, default=None,
                    help="real frames (folders/files) for the parity check and int8 calibration "
                    "(default: the checkpoint's recorded data, else synthetic frames)")
    sp.add_argument("--calib-frames", type=int, default=64, help="how many frames to use (default 64)")
    sp.add_argument("--int8", action="store_true",
                    help="also write a static int8 (QDQ) model and report its speed and quality")
    sp.add_argument("--int8-output", type=Path, default=None, help="int8 file (default: MODEL.int8.onnx)")
    sp.add_argument("--no-card", action="store_true", help="do not write the MODEL.json model card")
    sp.add_argument("--temperature", type=_positive_float, default=None,
                    help="annealed-mean temperature of a unet-family net (lower: bolder colours; default: as trained)")
    sp.add_argument("--tile-snap", action="store_true",
                    help="one colour per (8x8 tile, shade), as Color hardware draws; for 4-shade (monochrome) input")

    # colorize
    sp = add("colorize", cmd_colorize, "colorize an image, a folder of images or a video (audio kept)")
    sp.add_argument("input", type=Path, help="image, folder of images, or video")
    sp.add_argument("-o", "--output", type=Path, required=True, help="image, folder, or video file to write")
    sp.add_argument("--model", default="default",
                    help="shipped model name or .onnx path (default: the shipped default)")
    sp.add_argument("--side-by-side", action="store_true", help="write input | colorized side by side")
    sp.add_argument("--smoothing", type=float, default=0.0,
                    help="video only: temporal smoothing of colours on unchanged pixels, 0 <= S < 1 (default 0)")
    sp.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default 1)")
    sp.add_argument("--seconds", type=_positive_float, default=None,
                    help="video only: colorize just the first S seconds (default: all)")

    # bench
    sp = add("bench", cmd_bench, "measure per-stage latency (capture ... display) and sustained fps of each model")
    sp.add_argument("--model", nargs="+", default=None,
                    help="models to time (names or .onnx paths; int8 twins are added); default: every shipped model")
    sp.add_argument("--seconds", type=_positive_float, default=None,
                    help="measured seconds per model (default 5; 10 per run with --emulator)")
    sp.add_argument("--frames", type=int, default=None, help="measure exactly N frames per model instead")
    sp.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default 1)")
    sp.add_argument("--scale", type=int, default=1, help="input upscale, as an emulator window at Nx (default 1)")
    sp.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    g = sp.add_argument_group("beside a real emulator", "start an emulator under a private Xvfb and time "
                              "`retrocolor live` beside it, as its own process (the real setting)")
    g.add_argument("--emulator", choices=["mgba"], default=None,
                   help="the emulator to start (mgba: apt install mgba-sdl; needs Xvfb too)")
    g.add_argument("--rom", type=Path, default=None, help="ROM it plays (default: the built-in demo cartridge)")
    g.add_argument("--runs", type=int, default=3, help="independent runs, each with a fresh emulator (default 3)")
    g.add_argument("--emulator-scale", type=int, default=3, help="the emulator's window scale, 1..6 (default 3)")

    # models
    sp = add("models", cmd_models, "list the shipped models")
    sp.add_argument("--json", action="store_true", help="print JSON")
    return p


def _train_args_adder() -> Callable[[argparse.ArgumentParser], None]:
    """Training flags live beside the training code (models.train) but must parse without torch."""

    def add(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--arch", default="unet", help="model name (see models.list_models)")
        sp.add_argument("--data", nargs="+", type=Path, required=True, help="training frames")
        sp.add_argument("--val", nargs="+", type=Path, default=None,
                        help="validation frames (default: hold out time blocks of --data)")
        sp.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, log.csv, plots)")
        sp.add_argument("--preset", choices=["ours", "reference"], default="ours",
                        help="reference: MSE, RMSprop lr 1e-3, batch 32, 30 epochs, as the articles")
        sp.add_argument("--epochs", type=int, default=None, help="passes over the data (default: the preset's, 30)")
        sp.add_argument("--batch-size", type=int, default=None,
                        help="samples per step (default: the preset's, 32 for both)")
        sp.add_argument("--lr", type=float, default=None,
                        help="peak learning rate (default: the preset's; ours 2e-3 AdamW cosine, reference 1e-3)")
        sp.add_argument("--loss", choices=["mse", "l1", "huber", "ce", "ce+l1"], default=None,
                        help="loss (default: the arch's own; mse for the reference preset)")
        sp.add_argument("--crop", type=int, default=None,
                        help="random square crop for training (multiple of 8; 0: whole frames)")
        sp.add_argument("--dmg-aug", type=float, default=None,
                        help="probability of the 4-shade 'DMG look' augmentation")
        sp.add_argument("--steps-per-epoch", type=int, default=None, help="cap the steps per epoch (quick runs)")
        sp.add_argument("--limit-per-game", type=int, default=None, help="use at most N frames per game")
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
        sp.add_argument("--amp", choices=["auto", "on", "off"], default="auto", help="mixed precision (auto: on CUDA)")
        sp.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
        sp.add_argument("--gan", action="store_true", help="NoGAN fine-tuning phase after the generator is trained")
        sp.add_argument("--twin-prob", type=float, default=None,
                        help="probability of feeding a frame's real monochrome twin as input, where it has one")
        sp.add_argument("--init", default=None,
                        help="start from this checkpoint's weights (fine-tuning; tensors whose name and shape match)")
        sp.add_argument("--l-remap", type=float, default=None,
                        help="probability of an 'unknown palette' sample: L through a random monotone curve, "
                             "true colours as target (an experiment for unseen games; see the README; 0 in both "
                             "presets)")
        sp.add_argument("--val-input", choices=["L", "twin"], default=None,
                        help="validation input: each frame's own L (default), or its real monochrome twin "
                             "(frames that have one): for a monochrome specialist")
        sp.add_argument("--val-fraction", type=float, default=None,
                        help="share of each game (its last frames in play order) held out without --val (0.1)")
        sp.add_argument("--cache-dir", default=None,
                        help="decoded-frame cache ($RETROCOLOR_CACHE, else ~/.cache/retrocolor/frames; 'none': off)")

    return add


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``retrocolor`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("RETROCOLOR_DEBUG") == "1"
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"retrocolor: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("retrocolor: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - the last line of defence against bare tracebacks
        if debug:
            raise
        detail = " ".join(str(e).split())
        print(f"retrocolor: internal error: {type(e).__name__}: {detail} (run with --debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
