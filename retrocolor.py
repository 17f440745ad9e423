"""The ``retrocolor`` command line: a thin layer over the stage packages' APIs.

Each sub-command parses its arguments, imports the one stage it needs (lazily, so the base
install never imports torch), calls that stage's API and prints the result.  Errors the user
can fix arrive as :class:`utils.errors.UserError` and are printed as one line; anything else is
reported as one line too, with ``--debug`` (or ``RETROCOLOR_DEBUG=1``) showing the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from dataset import cli as dataset_cli
from models import cli as models_cli
from utils.cli import add_command, positive_float, print_json, scale, screen_region
from utils.errors import UserError

__version__ = "0.1.0"


# --------------------------------------------------------------------------- parsing helpers
# The live/play/demo/bench flags below use these names; the types themselves live in utils.cli
# (one X,Y,W,H parser for --crop and --region).
_region = screen_region
_positive_float = positive_float
_scheme = int  # its range (1..the number shipped) is checked by the engine, in one place; 0 is the model
SCHEME_HELP = ("paint monochrome games with colour scheme N (4-colour palettes of homebrew Color games; "
               "'retrocolor models' lists them) instead of the model, 0 for the model; C cycles them in the window")


def _scheme_or_all(text: str) -> int | str:
    """``colorize --scheme``: a scheme number (checked by the engine) or "all" (a contact sheet)."""
    if text == "all":
        return "all"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'all', got {text!r}") from None


# --------------------------------------------------------------------------- step 1: data
def cmd_download(a: argparse.Namespace) -> int:
    from capture.download import download

    paths = download(a.url, a.output, max_height=a.max_height)
    for p in paths:
        print(p)
    return 0


# --------------------------------------------------------------------------- step 3: live, play, demo
def cmd_live(a: argparse.Namespace) -> int:
    from realtime.live import LiveOptions, run_live

    stats = run_live(LiveOptions(
        window=a.window, region=a.region, model=a.model, scale=a.scale, borderless=a.borderless, on_top=a.on_top,
        position=a.position, seconds=a.seconds, stats_json=a.stats_json, smoothing=a.smoothing,
        screenshot_dir=a.screenshot_dir, scheme=a.scheme, recognise=a.recognise,
    ))
    lat, new = stats["capture_to_display"], stats["stages"]["colorize_new_frames"]
    # repeated frames reuse their colour in microseconds: the model's own time is on the new ones
    reused = (f"; {stats['frames_reused']} repeated frames reused their colour"
              if stats["frames_reused"] else "")
    print(f"live: {stats['frames']} frames shown in {stats['seconds']:.1f} s ({stats['fps']} fps; captured "
          f"{stats['frames_captured']}{reused}); colorize p50 {new['p50_ms']} ms on the {new['n']} new frames; "
          f"capture-to-display p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms")
    _remembered("live", stats, a.scheme, "retrocolor live",
                "live knows the game by its screens next time and starts with it")
    if a.stats_json:
        print(f"stats: {a.stats_json}")
    return 0


def _remembered(command: str, stats: dict, asked: int | None, rerun: str, next_time: str) -> None:
    """What the session kept of the player's pick; where it kept nothing, after C picked a scheme the
    command was not started with, the flag that starts with it."""
    kept, ended = stats.get("scheme_remembered"), stats.get("scheme")
    if kept == "remembered":
        print(f"{command}: colour scheme {ended} remembered: {next_time} (--scheme 0 starts with the model; "
              "ending on the model forgets the pick)")
    elif kept == "forgot":
        print(f"{command}: ended on the model, so the scheme remembered for this game is forgotten")
    elif "scheme_remembered" in stats:
        pass  # remembering is on and the pick stood as it was (or a line already said why not)
    elif ended and ended != asked:
        print(f"{command}: you ended on colour scheme {ended}; to start with it next time: {rerun} --scheme {ended}")


def cmd_play(a: argparse.Namespace) -> int:
    from realtime.play import PlayOptions, play

    res = play(a.rom, PlayOptions(model=a.model, headless=a.headless, frames=a.frames, seconds=a.seconds,
                                  record=a.record, scale=a.scale, side_by_side=a.side_by_side,
                                  stats_json=a.stats_json, smoothing=a.smoothing, scheme=a.scheme,
                                  remember=not (a.no_remember or a.headless)))
    print(res.summary())
    _remembered("play", res.stats, a.scheme, f"retrocolor play {a.rom}", "this cartridge starts with it next time")
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from realtime.demo import run_demo

    res = run_demo(seconds=a.seconds, model=a.model, record=a.record, headless=a.headless, scale=a.scale)
    print(res.summary())
    return 0


# --------------------------------------------------------------------------- export, colorize, bench, models
def cmd_colorize(a: argparse.Namespace) -> int:
    from realtime.offline import colorize_path

    colorize_path(a.input, a.output, model=a.model, side_by_side=a.side_by_side, smoothing=a.smoothing,
                  threads=a.threads, max_seconds=a.seconds, scheme=a.scheme or None)
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
    run_bench(a.model, seconds=a.seconds or 5.0, frames=a.frames, threads=a.threads, scale=a.input_scale,
              json_path=a.json)
    return 0


def cmd_models(a: argparse.Namespace) -> int:
    import weights

    rows = weights.list_models()
    if a.json:
        print_json([{k: (str(v) if isinstance(v, Path) else v) for k, v in r.items() if k != "card"} for r in rows])
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
    _print_schemes(weights.WEIGHTS_DIR / "schemes.json")
    return 0


def _print_schemes(path: Path) -> None:
    """The shipped colour schemes, one line each (with colour swatches on a terminal)."""
    if not path.is_file():
        return
    from dataset.schemes import load

    try:
        doc = load(path)
    except UserError as e:
        print(f"colour schemes: unavailable ({e})")
        return
    swatch = sys.stdout.isatty()
    learned = f", learned from {doc['training_games']} games" if isinstance(doc.get("training_games"), int) else ""
    print(f"colour schemes for monochrome games (--scheme N, or C in live/play): {len(doc['schemes'])} palettes "
          f"of homebrew Color games{learned} ({path})")
    for sc in doc["schemes"]:
        cols = " ".join(sc["preview"])
        if swatch:
            cols = "".join(f"\x1b[48;2;{int(c[1:3], 16)};{int(c[3:5], 16)};{int(c[5:7], 16)}m   \x1b[0m"
                           for c in sc["preview"]) + " " + cols
        credit = f"{sc['title']}, by {sc['developer']}" if sc.get("title") and sc.get("developer") else sc["game"]
        print(f"    {sc['id']:2}: {cols}  (the palette of {credit})")


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
        return add_command(sub, name, fn, help_)

    # download
    sp = add("download", cmd_download,
             "download a gameplay video (YouTube URL, any yt-dlp URL, file:// URL or local path)")
    sp.add_argument("url", help="video or playlist URL, file:// URL, or a local file path")
    sp.add_argument("-o", "--output", type=Path, default=Path("."), help="output folder (default: .)")
    sp.add_argument("--max-height", type=int, default=720,
                    help="best video-only stream up to this height (default 720)")

    # the dataset and models stages declare their own flags (dataset/cli.py, models/cli.py)
    dataset_cli.add_extract_command(sub)
    dataset_cli.add_dataset_command(sub)
    models_cli.add_train_command(sub)
    models_cli.add_evaluate_command(sub)

    # live
    sp = add("live", cmd_live, "colorize a running emulator's window in real time (X11)")
    sp.epilog = (
        "keys in the retrocolor window: F or Space toggle the filter, S side-by-side grey | colour, P screenshot "
        "(PNG in --screenshot-dir), M next model (--model, then every shipped one), C next colour scheme (the model, "
        "then each scheme; monochrome games), O fps/latency overlay, "
        "Esc or Q quit. The emulator window is followed when it moves, re-detected when resized, waited for when "
        "minimised; closing it ends the run with exit code 0.")
    src = sp.add_mutually_exclusive_group()
    src.add_argument("--window", metavar="TITLE", help="capture the window whose title contains TITLE "
                     "(default: look for mGBA, SameBoy, BGB, VisualBoyAdvance, RetroArch, PyBoy, ...)")
    src.add_argument("--region", metavar="X,Y,W,H", type=_region, help="capture this screen rectangle instead")
    sp.add_argument("--model", default=None, help="shipped model name or .onnx path (default: the shipped default)")
    sp.add_argument("--scale", type=scale, default=3, help="window scale: 160x144 shown at Nx, 1..8 (default 3)")
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
    sp.add_argument("--scheme", type=_scheme, default=None, metavar="N",
                    help=SCHEME_HELP + "; with --recognise and without it, the scheme you left this game on")
    sp.add_argument("--recognise", action="store_true",
                    help="experimental: keep the scheme a game ends on with the game's screens, and start a game "
                         "live recognises with its scheme (about 1 session in 10 of another game is taken for a "
                         "remembered one; kept in $XDG_CONFIG_HOME/retrocolor/picks.json, or $RETROCOLOR_PICKS)")

    # play
    sp = add("play", cmd_play, "play a Game Boy ROM in PyBoy, colorized live")
    sp.epilog = ("game keys: arrows = d-pad, Z = A, X = B, Enter = Start, Backspace or right Shift = Select; "
                 "F or Space toggle the filter, S side-by-side, P screenshot, M next model, C next colour scheme, "
                 "O overlay, Esc quit.")
    sp.add_argument("rom", type=Path, help="Game Boy ROM (.gb; dual-mode .gbc games run in monochrome mode)")
    sp.add_argument("--model", default=None, help="shipped model name or .onnx path (default: the shipped default)")
    sp.add_argument("--scale", type=scale, default=3, help="window and video scale, 1..8 (default 3)")
    sp.add_argument("--headless", action="store_true", help="no window, no pacing: run --frames as fast as possible")
    sp.add_argument("--frames", type=int, default=None, help="stop after N frames")
    sp.add_argument("--seconds", type=_positive_float, default=None, help="stop after S seconds")
    sp.add_argument("--record", type=Path, default=None, help="write the colorized frames to an MP4 (mp4v)")
    sp.add_argument("--side-by-side", action="store_true", help="show/record grey | colour side by side")
    sp.add_argument("--stats-json", type=Path, default=None, help="write timings and frame counts as JSON")
    sp.add_argument("--smoothing", type=float, default=0.0,
                    help="temporal smoothing of the colours, 0 <= S < 1 (default 0)")
    sp.add_argument("--scheme", type=_scheme, default=None, metavar="N",
                    help=SCHEME_HELP + "; without it, the scheme this cartridge last ended on, if any")
    sp.add_argument("--no-remember", action="store_true",
                    help="neither start with this cartridge's remembered scheme nor keep the one it ends on "
                         "(picks are kept in $XDG_CONFIG_HOME/retrocolor/picks.json, or $RETROCOLOR_PICKS)")

    # demo
    sp = add("demo", cmd_demo, "see the filter work now: a built-in homebrew cartridge in PyBoy, grey | colour")
    sp.add_argument("--seconds", type=_positive_float, default=20.0, help="how long to run (default 20)")
    sp.add_argument("--record", type=Path, default=None,
                    help="also write an MP4 (default without a display: a file in the temp folder)")
    sp.add_argument("--headless", action="store_true", help="no window: write an MP4 and a PNG and print their paths")
    sp.add_argument("--model", default=None, help="shipped model name or .onnx path (default: the shipped default)")
    sp.add_argument("--scale", type=scale, default=3, help="window and video scale, 1..8 (default 3)")

    models_cli.add_export_command(sub)

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
    sp.add_argument("--scheme", type=_scheme_or_all, default=None, metavar="N|all",
                    help=SCHEME_HELP + "; 'all' (one image): a contact sheet of the screen in every scheme")

    # bench
    sp = add("bench", cmd_bench, "measure per-stage latency (capture ... display) and sustained fps of each model")
    sp.add_argument("--model", nargs="+", default=None,
                    help="models to time (names or .onnx paths; int8 twins are added); default: every shipped model")
    sp.add_argument("--seconds", type=_positive_float, default=None,
                    help="measured seconds per model (default 5; 10 per run with --emulator)")
    sp.add_argument("--frames", type=int, default=None, help="measure exactly N frames per model instead")
    sp.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default 1)")
    sp.add_argument("--input-scale", type=scale, default=1,
                    help="feed frames upscaled Nx, as an emulator window at Nx would give them, 1..8 (default 1)")
    sp.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    g = sp.add_argument_group("beside a real emulator", "start an emulator under a private Xvfb and time "
                              "`retrocolor live` beside it, as its own process (the real setting)")
    g.add_argument("--emulator", choices=["mgba"], default=None,
                   help="the emulator to start (mgba: apt install mgba-sdl; needs Xvfb too)")
    g.add_argument("--rom", type=Path, default=None, help="ROM it plays (default: the built-in demo cartridge)")
    g.add_argument("--runs", type=int, default=3, help="independent runs, each with a fresh emulator (default 3)")
    g.add_argument("--emulator-scale", type=scale, default=3, help="the emulator's window scale, 1..8 (default 3)")

    # models
    sp = add("models", cmd_models, "list the shipped models")
    sp.add_argument("--json", action="store_true", help="print JSON")
    return p


#: Packages of the [train] extra: a command that needs one says how to install it.
_TRAIN_EXTRA = ("torch", "onnx", "safetensors", "onnxscript")


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
    except ModuleNotFoundError as e:
        if e.name not in _TRAIN_EXTRA:
            raise
        print(f"retrocolor: error: this command needs {e.name}: pip install 'retrocolor[train]'", file=sys.stderr)
        return 2
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
