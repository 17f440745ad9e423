"""Command-line helpers shared by the stages' flags: value types and sub-command wiring.

Torch-free and import-light (``retrocolor --help`` builds every stage's flags).  Each value type
raises ``argparse.ArgumentTypeError``, which argparse turns into a usage error naming the
flag, so a bad value is one clear line before any work starts.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable


def rect(text: str, allow_negative: bool = False) -> tuple[int, int, int, int]:
    """``X,Y,W,H`` as four integers with a positive size.

    ``allow_negative``: X and Y may be below zero (screen regions: monitors left of or above the
    primary); otherwise they must be >= 0 (a rectangle inside a video frame).
    """
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y,W,H (four integers), got {text!r}") from None
    if w <= 0 or h <= 0 or (not allow_negative and (x < 0 or y < 0)):
        need = "a positive size" if allow_negative else "x,y >= 0 and positive size"
        raise argparse.ArgumentTypeError(f"rectangle must have {need}, got {text!r}")
    return x, y, w, h


def crop_rect(text: str) -> tuple[int, int, int, int]:
    """A crop inside a video frame: ``X,Y,W,H`` with X, Y >= 0."""
    return rect(text, allow_negative=False)


def screen_region(text: str) -> tuple[int, int, int, int]:
    """A screen rectangle: ``X,Y,W,H``; X and Y may be negative (multi-monitor layouts)."""
    return rect(text, allow_negative=True)


def timestamp(text: str) -> float:
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


def positive_float(text: str) -> float:
    """A number > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def scale(text: str) -> int:
    """An integer pixel scale (:func:`utils.geometry.check_scale`): the type of every ``--*scale`` flag."""
    from utils.errors import UserError
    from utils.geometry import check_scale

    try:
        return check_scale(text, "the scale")
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def print_json(obj: object) -> None:
    """A command's ``--json`` output: indented JSON on stdout."""
    print(json.dumps(obj, indent=2))


Handler = Callable[[argparse.Namespace], int]


def add_command(sub: argparse._SubParsersAction, name: str, fn: Handler,  # type: ignore[type-arg]
                help_: str) -> argparse.ArgumentParser:
    """A sub-command whose help and description are ``help_`` and whose handler is ``fn``."""
    sp = sub.add_parser(name, help=help_, description=help_)
    sp.set_defaults(func=fn)
    return sp
