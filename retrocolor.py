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

    result = info(a.data)
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
                    seed=a.seed, test_games=a.test_games)
    print(summary)
    return 0


def cmd_dataset_merge(a: argparse.Namespace) -> int:
    from dataset.tools import merge

    summary = merge(a.data, a.output)
    print(summary)
    return 0


# --------------------------------------------------------------------------- step 2: models
def cmd_train(a: argparse.Namespace) -> int:
    from models.train import TrainConfig, train

    cfg = TrainConfig.from_args(a)
    result = train(cfg)
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
    sp = add("download", cmd_download, "download a gameplay video (YouTube URL, any yt-dlp URL, file:// URL or local path)")
    sp.add_argument("url", help="video or playlist URL, file:// URL, or a local file path")
    sp.add_argument("-o", "--output", type=Path, default=Path("."), help="output folder (default: .)")
    sp.add_argument("--max-height", type=int, default=720, help="best video-only stream up to this height (default 720)")

    # extract
    sp = add("extract", cmd_extract, "extract native 160x144 frames from a longplay video into a dataset")
    sp.add_argument("video", type=Path, help="video file")
    sp.add_argument("-o", "--output", type=Path, required=True, help="dataset folder (frames/ + manifest.jsonl)")
    sp.add_argument("--every-seconds", type=_positive_float, default=0.5, help="sample one frame every S seconds (default 0.5)")
    sp.add_argument("--start", type=_timestamp, default=None, help="start time (seconds or HH:MM:SS)")
    sp.add_argument("--end", type=_timestamp, default=None, help="end time (seconds or HH:MM:SS)")
    sp.add_argument("--crop", type=_crop, default=None, help="game screen rectangle X,Y,W,H in video pixels (default: detect)")
    sp.add_argument("--dedupe-distance", type=int, default=4,
                    help="drop a frame whose perceptual hash is within this Hamming distance of a kept one (default 4)")

    # dataset tools
    ds = sub.add_parser("dataset", help="inspect, preview, split and merge datasets", description="dataset tools")
    dsub = ds.add_subparsers(dest="dataset_command", metavar="ACTION")
    dsub.required = True
    sp = dsub.add_parser("info", help="frame count, games, resolution, colour statistics")
    sp.set_defaults(func=cmd_dataset_info)
    sp.add_argument("data", nargs="+", type=Path)
    sp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sp = dsub.add_parser("preview", help="write a contact-sheet PNG")
    sp.set_defaults(func=cmd_dataset_preview)
    sp.add_argument("data", nargs="+", type=Path)
    sp.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    sp.add_argument("--count", type=int, default=48, help="frames to show (spread evenly over the set)")
    sp.add_argument("--columns", type=int, default=8)
    sp.add_argument("--scale", type=int, default=1, help="integer upscale of each frame")
    sp = dsub.add_parser("split", help="train/val/test split by contiguous time blocks or by game (never random frames)")
    sp.set_defaults(func=cmd_dataset_split)
    sp.add_argument("data", nargs="+", type=Path)
    sp.add_argument("-o", "--output", type=Path, required=True, help="folder that gets train/, val/, test/ and split.json")
    sp.add_argument("--by", choices=["time", "game"], default="time")
    sp.add_argument("--val", type=float, default=0.1, help="share of each game's time blocks for validation (by=time)")
    sp.add_argument("--test", type=float, default=0.1, help="share of each game's time blocks for test (by=time)")
    sp.add_argument("--blocks", type=int, default=20, help="contiguous time blocks per game (by=time)")
    sp.add_argument("--gap", type=int, default=2, help="frames dropped at each block boundary, against leakage (by=time)")
    sp.add_argument("--test-games", nargs="*", default=None, help="games held out for test (by=game)")
    sp.add_argument("--seed", type=int, default=0)
    sp = dsub.add_parser("merge", help="merge several games' datasets into one genre set")
    sp.set_defaults(func=cmd_dataset_merge)
    sp.add_argument("data", nargs="+", type=Path)
    sp.add_argument("-o", "--output", type=Path, required=True)

    # train
    sp = add("train", cmd_train, "train a colorizer (needs retrocolor[train])")
    from_train_args = _train_args_adder()
    from_train_args(sp)

    # evaluate
    sp = add("evaluate", cmd_evaluate, "evaluate a model and the gray / lookup-table baselines on held-out frames")
    sp.add_argument("model", help="checkpoint folder or file, ONNX file, or shipped model name")
    sp.add_argument("--data", nargs="+", type=Path, required=True)
    sp.add_argument("--input", choices=["L", "dmg4", "dmg"], default="L",
                    help="L: the frame's own lightness; dmg4: posterised to 4 shades; dmg: the real monochrome twin")
    sp.add_argument("--baseline-train", nargs="+", type=Path, default=None,
                    help="frames the lookup-table baseline is fitted on (default: the model's training data)")
    sp.add_argument("--json", type=Path, default=None, help="write the metrics as JSON")
    sp.add_argument("--grid", type=Path, default=None, help="write an input / prediction / truth PNG grid")
    sp.add_argument("--limit-per-game", type=int, default=None, help="evaluate at most N frames per game")
    return p


def _train_args_adder() -> Callable[[argparse.ArgumentParser], None]:
    """Training flags live beside the training code (models.train) but must parse without torch."""

    def add(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--arch", default="unet", help="model name (see models.list_models)")
        sp.add_argument("--data", nargs="+", type=Path, required=True, help="training frames")
        sp.add_argument("--val", nargs="+", type=Path, default=None, help="validation frames (default: hold out time blocks of --data)")
        sp.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, log.csv, plots)")
        sp.add_argument("--preset", choices=["ours", "reference"], default="ours",
                        help="reference: MSE, RMSprop lr 1e-3, batch 32, 30 epochs, as the articles")
        sp.add_argument("--epochs", type=int, default=None)
        sp.add_argument("--batch-size", type=int, default=None)
        sp.add_argument("--lr", type=float, default=None)
        sp.add_argument("--loss", choices=["mse", "l1", "huber", "ce", "ce+l1"], default=None)
        sp.add_argument("--crop", type=int, default=None, help="random crop size for training (multiple of 8)")
        sp.add_argument("--dmg-aug", type=float, default=None, help="probability of the 4-shade 'DMG look' augmentation")
        sp.add_argument("--steps-per-epoch", type=int, default=None, help="cap the steps per epoch (quick runs)")
        sp.add_argument("--limit-per-game", type=int, default=None, help="use at most N frames per game")
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
        sp.add_argument("--amp", choices=["auto", "on", "off"], default="auto", help="mixed precision (auto: on CUDA)")
        sp.add_argument("--workers", type=int, default=0)
        sp.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
        sp.add_argument("--gan", action="store_true", help="NoGAN fine-tuning phase after the generator is trained")

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
        print(f"retrocolor: internal error: {type(e).__name__}: {' '.join(str(e).split())} (run with --debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
