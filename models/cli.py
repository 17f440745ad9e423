"""Command-line flags and handlers of the models stage: ``retrocolor train``, ``evaluate``, ``export``.

Flags live beside the stage they configure (the training flags are generated from
:class:`models.config.TrainConfig`); ``retrocolor.py`` only wires the commands up.  Torch-free:
the handlers import the torch code when they run, so the parser builds on the base install.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from models import config
from utils.cli import add_command, positive_float
from utils.errors import UserError


def cmd_train(a: argparse.Namespace) -> int:
    from models.train import TrainConfig, train

    cfg = TrainConfig.from_args(a)
    result = train(cfg)
    if str(result):  # empty on DDP ranks other than 0
        print(result)
    return 0


def add_train_command(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """``retrocolor train --data DIR --out RUN``: one flag per TrainConfig option."""
    sp = add_command(sub, "train", cmd_train, "train a colorizer (needs retrocolor[train])")
    config.add_arguments(sp)
    return sp


def cmd_evaluate(a: argparse.Namespace) -> int:
    from models.evaluate import evaluate, format_report

    report = evaluate(
        a.model, a.data, input_mode=a.input, baseline_train=a.baseline_train, json_path=a.json,
        grid_path=a.grid, limit_per_game=a.limit_per_game, schemes=a.schemes,
    )
    print(format_report(report))
    return 0


def add_evaluate_command(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """``retrocolor evaluate MODEL --data DIR``."""
    sp = add_command(sub, "evaluate", cmd_evaluate,
                     "evaluate a model and the gray / lookup-table baselines on held-out frames")
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
    sp.add_argument("--schemes", type=Path, default=None,
                    help="with --input dmg/dmg4: also score the best of these colour schemes per game, with hindsight "
                    "(e.g. weights/schemes.json; make one with retrocolor dataset schemes)")
    return sp


def cmd_export(a: argparse.Namespace) -> int:
    from models.export import export_onnx

    if a.int8_output is not None and not a.int8:
        raise UserError("--int8-output needs --int8")
    export_onnx(a.checkpoint, a.output, calib=a.calib, int8=a.int8, int8_output=a.int8_output, card=not a.no_card,
                calib_frames=a.calib_frames, temperature=a.temperature, tile_snap=a.tile_snap,
                chroma=a.chroma)
    return 0


def add_export_command(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """``retrocolor export CHECKPOINT -o MODEL.onnx``."""
    sp = add_command(sub, "export", cmd_export,
                     "export a checkpoint to ONNX for the player (parity-checked; optional int8)")
    sp.add_argument("checkpoint", type=Path, nargs="+",
                    help="checkpoint: run folder, .safetensors/.json file or stem; two or more: one model that "
                    "averages their colours (an ensemble for offline colorize: one pass per member)")
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
    sp.add_argument("--temperature", type=positive_float, default=None,
                    help="annealed-mean temperature of a unet-family net (lower: bolder colours; default: as trained)")
    sp.add_argument("--tile-snap", action="store_true",
                    help="one colour per (8x8 tile, shade), as Color hardware draws; for 4-shade (monochrome) input")
    sp.add_argument("--chroma", type=positive_float, default=None,
                    help="scale the output a/b by this factor in (0, 1]: safer, duller colours for games the "
                    "net never saw (choose it on validation games)")
    return sp
