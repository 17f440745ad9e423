"""Progress bars (tqdm) that stay quiet where nobody is watching.

Bars go to stderr; they are disabled when stderr is not a terminal unless forced with
``RETROCOLOR_PROGRESS=1``, so logs and CI output stay readable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def bars_enabled() -> bool:
    """Whether bars show: stderr is a terminal, or ``RETROCOLOR_PROGRESS`` forces them on or off.

    Code that reports progress another way where bars are hidden (one log line per epoch)
    asks this."""
    flag = os.environ.get("RETROCOLOR_PROGRESS")
    if flag is not None:
        return flag not in ("0", "", "false", "no")
    return sys.stderr.isatty()


def progress(iterable: Iterable[T] | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar with retrocolor's defaults (stderr, ETA, hidden when not interactive)."""
    kwargs.setdefault("disable", not bars_enabled())
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("leave", True)
    return tqdm(iterable, **kwargs)
