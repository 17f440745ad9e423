"""The colour scheme a player picked for a game, remembered for the next time they play it.

Why: on a game the model never saw, a scheme the player picks by eye is the closest the filter
gets to the game's own colours (README, "Colour schemes").  Picking is a search through 16
palettes with C; doing it again every session is a chore, so the pick a game ends on is kept in
one small JSON file: ``$RETROCOLOR_PICKS`` if set, else ``$XDG_CONFIG_HOME/retrocolor/picks.json``
(``~/.config``).

* ``play`` knows the cartridge: the pick is kept by the ROM's SHA-1 (a renamed file keeps it).
* ``live`` sees only a window, and an emulator's title need not name the game (mGBA's SDL build
  says "mGBA"), so a game is told by its screens: the 8x8 windows its monochrome frames show
  (:mod:`utils.tiles`), a fingerprint kept with the pick.  A new session whose screens are mostly
  (:data:`MATCH_SHARE`) windows of one remembered game gets that game's scheme
  (:class:`LiveRecall`; measured on 109 rendered games by ``scripts/recall_check.py``, README).

A missing or unreadable file is never an error: the player gets the model, one line says why,
and the next pick writes a fresh file.  Writes are atomic, so a crash never leaves half a file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from utils.errors import UserError
from utils.fsio import atomic_write_json
from utils.tiles import window_hashes

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


def remember(key: str, scheme: int | None, title: str, command: str = "play",
             entry: dict[str, Any] | None = None) -> bool:
    """Keep ``scheme`` for ``key`` (None forgets it: the model paints the game).  True if the file changed.

    ``entry``: the whole record to keep (live adds the game's screen fingerprint); default the
    scheme and title.

    A file that cannot be written costs one line on stderr, never the session's result.
    """
    path = picks_path()
    doc = _read(path, command)
    games = doc["games"]
    old = games.get(key)
    if scheme:
        new = entry if entry is not None else {"scheme": int(scheme), "title": title}
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


# --------------------------------------------------------------------------- live: a game told by its screens
#: Windows kept of a screen: those whose hash is a multiple of this, the same ones in a fingerprint
#: and in a query, so a share over the kept ones estimates the share over all of them.
SAMPLE = 8
#: A session is a remembered game when at least this share of the windows it showed so far are in
#: the game's fingerprint (the known-game gate's threshold, ``models.router``) ...
MATCH_SHARE = 0.8
#: ... once it showed at least this many kept windows (a title's few letters, or a boot logo every
#: game shares, are no evidence).
MIN_WINDOWS = 100
#: Queries hash every 4th window of a frame (0.2 ms); fingerprints every window of kept frames.
QUERY_STRIDE = 4
#: New monochrome frames looked at before a session gives up on being a remembered game.
TRY_FRAMES = 1800
#: Frames kept over a session for its fingerprint (evenly: every k-th, k doubling when full).
KEEP_FRAMES = 128
#: A fingerprint keeps at most this many windows: the lowest hashes (a bottom-k sketch, so a query
#: compares only its windows in the same hash range).
MAX_WINDOWS = 40000


def _kept(shades: np.ndarray, stride: int) -> np.ndarray:
    h, valid = window_hashes(shades, stride=stride)
    h = h[valid]
    return h[h % SAMPLE == 0].astype(np.uint32)


def fingerprint(shade_frames: list[np.ndarray] | np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """Sorted kept window hashes (uint32) of (H, W) shade pictures (0 = black), merged with ``previous``."""
    parts = [_kept(s, 1) for s in shade_frames]
    if previous is not None:
        parts.append(np.asarray(previous, np.uint32))
    if not parts:
        return np.zeros(0, np.uint32)
    return np.unique(np.concatenate(parts))[:MAX_WINDOWS]


def _encode(windows: np.ndarray) -> str:
    return base64.b64encode(np.asarray(windows, "<u4").tobytes()).decode("ascii")


def _decode(text: Any) -> np.ndarray | None:
    try:
        raw = base64.b64decode(str(text), validate=True)
    except ValueError:
        return None
    return np.frombuffer(raw, "<u4").astype(np.uint32) if raw and len(raw) % 4 == 0 else None


class LiveRecall:
    """Which remembered game a live session shows, and what to remember of it at the end.

    The capture thread calls :meth:`add` with each new monochrome frame's shade picture; once the
    session matches a remembered game, :attr:`matched` holds ``(key, scheme)`` (one attribute store:
    the window thread reads it).  :meth:`save` keeps the scheme the session ended on, with the
    session's windows, under the game it matched or as a new one.
    """

    def __init__(self, games: dict[str, tuple[int, np.ndarray]]) -> None:
        self.games = games              # key -> (scheme, fingerprint)
        self.matched: tuple[str, int] | None = None
        self._seen: set[int] = set()
        self._tried = 0
        self._frames: list[np.ndarray] = []
        self._every = 1
        self._count = 0

    @classmethod
    def load(cls, count: int, command: str = "live") -> LiveRecall:
        """The remembered live games whose scheme is one of the ``count`` schemes."""
        games = {}
        for key, entry in _read(picks_path(), command)["games"].items():
            if not (isinstance(entry, dict) and "windows" in entry):
                continue
            n, w = entry.get("scheme"), _decode(entry.get("windows"))
            if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= count and w is not None:
                games[key] = (n, w)
        return cls(games)

    def add(self, shades: np.ndarray) -> None:
        """One new monochrome frame ((H, W) shade indices, 0 = black)."""
        self._count += 1
        if self._count % self._every == 0:
            self._frames.append(np.asarray(shades, np.uint8))
            if len(self._frames) >= KEEP_FRAMES:
                self._frames, self._every = self._frames[::2], self._every * 2
        if self.matched is not None or not self.games or self._tried >= TRY_FRAMES:
            return
        self._tried += 1
        self._seen.update(_kept(shades, QUERY_STRIDE).tolist())
        if len(self._seen) >= MIN_WINDOWS:
            self.matched = self.match(np.fromiter(self._seen, np.uint32, len(self._seen)), self.games)

    @staticmethod
    def match(seen: np.ndarray, games: dict[str, tuple[int, np.ndarray]]) -> tuple[str, int] | None:
        """The game most of ``seen`` (kept window hashes) belongs to, if any reaches :data:`MATCH_SHARE`."""
        best, share = None, 0.0
        for key, (n, w) in games.items():
            if not len(w):
                continue
            q = seen if len(w) < MAX_WINDOWS else seen[seen <= w[-1]]  # a capped print: its hash range
            if len(q) < MIN_WINDOWS:
                continue
            sh = float(np.isin(q, w).mean())
            if sh > share:
                best, share = (key, n), sh
        return best if share >= MATCH_SHARE else None

    def save(self, scheme: int | None, title: str, command: str = "live") -> str | None:
        """Keep ``scheme`` for this session's game (None forgets a matched game); what happened, or None.

        Returns "remembered" (a new game or a changed pick), "forgot", or None (nothing to keep:
        no monochrome frame, or nothing changed).
        """
        key = self.matched[0] if self.matched else None
        if not scheme:
            return "forgot" if key is not None and remember(key, None, title, command) else None
        if not self._frames:
            return None
        old = self.games.get(key)[1] if key is not None else None
        windows = fingerprint(self._frames, old)
        if key is None:
            key = "screens:" + hashlib.sha1(windows.tobytes()).hexdigest()[:16]
        entry = {"scheme": int(scheme), "title": title, "when": time.strftime("%Y-%m-%d"),
                 "windows": _encode(windows)}
        return "remembered" if remember(key, scheme, title, command, entry) else None
