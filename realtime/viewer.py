"""What the keys of every retrocolor window do, written once for ``live``, ``play`` and ``demo``.

:class:`realtime.display.Display` turns key presses into actions ("filter", "side", "overlay",
"model", "screenshot", "quit"); :class:`Viewer` holds the state those actions change and turns
a (grey, colour) pair into what the window shows.  The commands differ only in where frames come
from (a screen capture, PyBoy's screen buffer) and what they report.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from realtime.display import side_by_side
from utils.errors import UserError


def model_names(first: str | None) -> list[str]:
    """The models ``M`` cycles through: the one asked for (default: the shipped default), then every
    other shipped one (the same file is listed once)."""
    import weights

    names = [first or weights.DEFAULT]
    seen: set[Path] = set()
    try:
        seen.add(weights.resolve(names[0]).resolve())
    except UserError:
        pass  # reported when it is loaded
    for row in weights.list_models():
        name = row["name"]
        path = Path(row["path"]).resolve()
        if name in names or path in seen:
            continue
        names.append(name)
        seen.add(path)
    return names


def make_colorizer(model: str, *, threads: int = 1, smoothing: float = 0.0, scheme: int | None = None) -> Any:
    """A :class:`realtime.engine.Colorizer` for a model name or ONNX path (``scheme``: see its docs)."""
    from realtime.engine import Colorizer

    return Colorizer(model, threads=threads, smoothing=smoothing, scheme=scheme)


def scheme_count(colorizer: Any, command: str) -> int:
    """How many colour schemes ``C`` cycles through.

    0 where the schemes file is missing or broken: the window still plays, C does nothing, and
    one line on stderr says why (a broken optional file must not end a session).
    """
    try:
        return int(colorizer.scheme_count)
    except UserError as e:
        print(f"{command}: colour schemes unavailable ({e}); C does nothing", file=sys.stderr)
        return 0


def check_scheme(scheme: int | None) -> None:
    """A one-line UserError now, before any window opens, if ``--scheme`` names no shipped scheme."""
    if scheme is None:
        return
    import weights
    from dataset.schemes import check_number, load

    check_number(load(weights.WEIGHTS_DIR / "schemes.json"), scheme)


def scheme_label(colorizer: Any, scheme: int | None = None) -> str:
    """What paints monochrome frames, for messages: "the model", or e.g. "scheme 3 of 16 (#FFFFFD
    #C6A38D #63514A #000000, the palette of Alpha Wing)".  ``scheme``: that number instead of the
    colorizer's own (live's window thread names the scheme before the worker applies it)."""
    n = colorizer.scheme if scheme is None else (scheme or None)
    if not n:
        return "the model"
    info = colorizer.schemes["schemes"][n - 1]
    return (f"scheme {n} of {colorizer.scheme_count} ({' '.join(info['preview'])}, "
            f"the palette of {info.get('title') or info['game']})")


def engine_timings(colorizer: Any) -> dict[str, float] | None:
    """The engine's per-stage timings of its last frame (ms), None before the first one."""
    t = getattr(colorizer, "timings", None)
    return dict(t) if isinstance(t, dict) else None


@dataclass
class Viewer:
    """Filter on/off, side-by-side, overlay, the model and colour-scheme cycles and screenshots of one window."""

    command: str  # "live", "play": names screenshots and prefixes messages
    models: list[str]
    screenshot_dir: Path = field(default_factory=Path.cwd)
    filter_on: bool = True
    side: bool = False
    overlay: bool = False
    model_idx: int = 0
    shots: int = 0
    scheme: int = 0  # 0: the model paints monochrome frames; 1..scheme_count: that colour scheme
    scheme_count: int = 0

    @property
    def model(self) -> str:
        return self.models[self.model_idx]

    def handle(self, actions: Sequence[str]) -> set[str]:
        """Apply the window's actions; returns what changed: "redraw", "layout", "model", "scheme", "quit".

        "model" means :attr:`model_idx` moved on and the caller must load :attr:`model`; "scheme"
        means :attr:`scheme` moved on (the model, then each scheme in turn) and the caller must set it
        ("screenshot" is not handled here: it needs the frame on screen, see :meth:`screenshot`).
        """
        changed: set[str] = set()
        for a in actions:
            if a == "quit":
                changed.add("quit")
            elif a == "filter":
                self.filter_on = not self.filter_on
                changed.add("redraw")
            elif a == "side":
                self.side = not self.side
                changed |= {"redraw", "layout"}
            elif a == "overlay":
                self.overlay = not self.overlay
                changed.add("redraw")
            elif a == "model" and len(self.models) > 1:
                self.model_idx = (self.model_idx + 1) % len(self.models)
                changed.add("model")
            elif a == "scheme" and self.scheme_count > 0:
                self.scheme = (self.scheme + 1) % (self.scheme_count + 1)
                changed.add("scheme")
        return changed

    def compose(self, grey: np.ndarray, colour: np.ndarray) -> np.ndarray:
        """What the window shows for one frame: grey | colour, colour, or the grey input."""
        if self.side:
            return side_by_side(grey, colour)
        return colour if self.filter_on else grey

    def needs_colour(self) -> bool:
        """Whether the colour side is on screen (a caller may skip colorizing when it is not)."""
        return self.side or self.filter_on

    def screenshot(self, shown: np.ndarray, scale: int) -> Path:
        """Write what is on screen (at the window's scale) as a PNG; prints and returns its path."""
        from utils.images import write_png

        self.shots += 1
        path = self.screenshot_dir / f"retrocolor-{self.command}-{time.strftime('%Y%m%d-%H%M%S')}-{self.shots}.png"
        write_png(path, np.repeat(np.repeat(shown, scale, 0), scale, 1))
        print(f"{self.command}: screenshot {path}", file=sys.stderr)
        return path

    def overlay_lines(self, fps: float, latency_ms: float | None, colorize_ms: float | None,
                      extra: str = "") -> list[str]:
        """The O overlay: fps, model, filter state, timings."""
        colours = f"scheme {self.scheme}/{self.scheme_count}" if self.scheme else "model"
        lines = [f"{fps:5.1f} fps  model {self.model}  colours {colours}  filter {'on' if self.filter_on else 'off'}"]
        parts = []
        if latency_ms is not None:
            parts.append(f"latency {latency_ms:.1f} ms")
        if colorize_ms is not None:
            parts.append(f"colorize {colorize_ms:.1f} ms")
        if parts:
            lines.append("  ".join(parts))
        if extra:
            lines.append(extra)
        return lines
