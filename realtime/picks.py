"""The colour scheme a player picked for a game, remembered for the next time they play it.

Why: on a game the model never saw, a scheme the player picks by eye is the closest the filter
gets to the game's own colours (README, "Colour schemes").  Picking is a search through 16
palettes with C; doing it again every session is a chore, so ``play`` keeps the pick per
cartridge (the ROM's SHA-1, so a renamed file keeps it) in one small JSON file:
``$RETROCOLOR_PICKS`` if set, else ``$XDG_CONFIG_HOME/retrocolor/picks.json`` (``~/.config``).

A missing or unreadable file is never an error: the player gets the model, one line says why,
and the next pick writes a fresh file.  Writes are atomic, so a crash never leaves half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from utils.errors import UserError
from utils.fsio import atomic_write_json

VERSION = 1


def picks_path() -> Path:
    """Where picks are kept (see the module docstring)."""
    env = os.environ.get("RETROCOLOR_PICKS")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "retrocolor" / "picks.json"


def rom_key(rom: str | os.PathLike[str]) -> str:
    """A cartridge's key: the SHA-1 of its bytes (the same game under another file name keeps its pick)."""
    return "sha1:" + hashlib.sha1(Path(rom).read_bytes()).hexdigest()


def _read(path: Path, command: str) -> dict[str, Any]:
    """The picks document, or an empty one (saying why on stderr when a file is there but unreadable)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"version": VERSION, "games": {}}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        print(f"{command}: remembered schemes unreadable ({path}: {e}); starting with none", file=sys.stderr)
        return {"version": VERSION, "games": {}}
    if not isinstance(doc, dict) or not isinstance(doc.get("games"), dict):
        print(f"{command}: remembered schemes unreadable ({path}: not a picks file); starting with none",
              file=sys.stderr)
        return {"version": VERSION, "games": {}}
    return doc


def recall(key: str, count: int, command: str = "play") -> int | None:
    """The scheme remembered for ``key``, or None (none kept, or a number the ``count`` schemes lack)."""
    entry = _read(picks_path(), command)["games"].get(key)
    n = entry.get("scheme") if isinstance(entry, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= count else None


def remember(key: str, scheme: int | None, title: str, command: str = "play") -> bool:
    """Keep ``scheme`` for ``key`` (None forgets it: the model paints the game).  True if the file changed.

    A file that cannot be written costs one line on stderr, never the session's result.
    """
    path = picks_path()
    doc = _read(path, command)
    games = doc["games"]
    old = games.get(key)
    if scheme:
        new = {"scheme": int(scheme), "title": title}
        if old == new:
            return False
        games[key] = new
    elif key in games:
        del games[key]
    else:
        return False
    try:
        atomic_write_json(path, {"version": VERSION, "games": games})
    except (OSError, UserError) as e:
        print(f"{command}: could not remember the scheme ({path}: {e})", file=sys.stderr)
        return False
    return True
