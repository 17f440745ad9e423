"""Stage 4: colorize frames with an exported ONNX model -- live, offline and in benchmarks.

Everything here runs on onnxruntime, numpy and OpenCV; nothing imports torch or :mod:`models`,
so a player's ``pip install retrocolor`` (no PyTorch) runs every command of this stage.

    >>> from realtime import Colorizer
    >>> col = Colorizer("default")             # a shipped model name, or a path to an .onnx
    >>> rgb = col.colorize(frame)              # grey, RGB or BGRA uint8 at 160x144 or an upscale
    >>> col.timings                            # {"preprocess": ms, "inference": ms, "postprocess": ms, ...}

Modules: :mod:`realtime.engine` (the :class:`~realtime.engine.Colorizer`), :mod:`realtime.offline`
(images, folders and videos), :mod:`realtime.bench` (latency and fps), and the live/play/demo
windows.  Attributes are imported lazily so ``import realtime`` stays cheap.
"""

from __future__ import annotations

import os
from typing import Any

# pygame prints a "Hello from the pygame community" banner on import: noise in a command's output
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

__all__ = ["Colorizer", "flicker", "colorize_path"]


def __getattr__(name: str) -> Any:
    if name in ("Colorizer", "flicker"):
        from realtime import engine

        return getattr(engine, name)
    if name == "colorize_path":
        from realtime.offline import colorize_path

        return colorize_path
    raise AttributeError(f"module 'realtime' has no attribute {name!r}")
