"""The colour scheme a player picked for a game, remembered for the next time they play it.

Why: on a game the model never saw, a scheme the player picks by eye is the closest the filter
gets to the game's own colours (README, "Colour schemes").  Picking is a search through 16
palettes with C; doing it again every session is a chore, so the pick a game ends on is kept in
one small JSON file: ``$RETROCOLOR_PICKS`` if set, else ``$XDG_CONFIG_HOME/retrocolor/picks.json``
(``~/.config``).

* ``play`` knows the cartridge: the pick is kept by the ROM's SHA-1 (a renamed file keeps it).
* ``live --recognise`` (opt-in, experimental) sees only a window, and an emulator's title need not
  name the game (mGBA's SDL build says "mGBA"), so a game is told by its screens: the 8x8 windows
  its monochrome frames show (:mod:`utils.tiles`), a fingerprint kept with the pick.  A new session
  whose screens are mostly (:data:`MATCH_SHARE`) windows of one remembered game gets that game's
  scheme (:class:`LiveRecall`).  ``scripts/recall_check.py`` measures it at 60 fps in PyBoy (seed 1:
  131 of 145 remembered games recognised, 3 taken for another, and 13 of 146 sessions of games never
  remembered taken for one; README).

A pick names its scheme by the game whose palette it is (``game`` in ``weights/schemes.json``),
not only by number, so a rebuilt schemes file never paints a remembered game with another palette:
a pick whose scheme is gone is said in one line and the model paints the game.

The file is read once per session (:class:`PicksFile`) and written once at its end, re-read just
before (so two sessions one after the other keep both picks; two at once: the last to end wins).
A damaged file is never an error and never lost: one line says so, the player gets the model, and
the next pick moves it aside (``picks.json.bad-DATE``) before writing a fresh one.  A file that cannot
be read or written (permissions) is left as it is.  Writes are atomic.
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
from utils.fsio import atomic_write_json, user_path
from utils.tiles import window_hashes, window_weights

VERSION = 1


def picks_path() -> Path:
    """Where picks are kept (see the module docstring)."""
    return user_path("RETROCOLOR_PICKS", "XDG_CONFIG_HOME", ".config", "picks.json")


def rom_key(rom: str | os.PathLike[str]) -> str:
    """A cartridge's key: the SHA-1 of its bytes (the same game under another file name keeps its pick)."""
    return "sha1:" + hashlib.sha1(Path(rom).read_bytes()).hexdigest()


def scheme_games(schemes: dict[str, Any] | None) -> list[str]:
    """The game each scheme (by number - 1) is the palette of: what a pick keeps to name it."""
    return [str(sc.get("game", "")) for sc in (schemes or {}).get("schemes", [])]


class PicksFile:
    """The picks of one session: read once (:meth:`scheme_for`, :meth:`entries`), written once (:meth:`keep`).

    ``games``: the game each scheme number paints with (:func:`scheme_games`).
    """

    def __init__(self, command: str, games: list[str]) -> None:
        self.command, self.scheme_games = command, games
        self.path = picks_path()
        self.state, self.entries = self._read(say=True)

    def _read(self, say: bool) -> tuple[str, dict[str, Any]]:
        """("ok" | "damaged" | "unreadable", the games' entries); ``say``: one line on stderr if not ok."""
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return "ok", {}
        except OSError as e:
            if say:
                print(f"{self.command}: remembered schemes unreadable ({self.path}: {e.strerror or e}); "
                      "none used, none kept", file=sys.stderr)
            return "unreadable", {}
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            why = str(e)
        else:
            if isinstance(doc, dict) and isinstance(doc.get("games"), dict):
                return "ok", doc["games"]
            why = "not a picks file"
        if say:
            print(f"{self.command}: remembered schemes damaged ({self.path}: {why}); none used "
                  f"(a new pick keeps the old file beside it, as {self.path.name}.bad-DATE)", file=sys.stderr)
        return "damaged", {}

    def scheme_for(self, key: str) -> int | None:
        """The scheme number remembered for ``key``: found by the game it names, else None (saying
        why when the pick names a scheme this schemes file lacks)."""
        entry = self.entries.get(key)
        if not isinstance(entry, dict):
            return None
        game, n = entry.get("game"), entry.get("scheme")
        if isinstance(game, str) and game in self.scheme_games:
            return self.scheme_games.index(game) + 1
        if game is None and isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= len(self.scheme_games):
            return n  # a hand-written pick: by number
        print(f"{self.command}: the scheme remembered for this game ({game or n}) is not among the "
              f"{len(self.scheme_games)} schemes now; the model paints it", file=sys.stderr)
        return None

    def entry(self, scheme: int, title: str, **more: Any) -> dict[str, Any]:
        """The record a pick keeps: the scheme's number and the game it names, the title, ``more``."""
        return {"scheme": int(scheme), "game": self.scheme_games[scheme - 1], "title": title, **more}

    def keep(self, key: str, entry: dict[str, Any] | None, live_cap: int | None = None) -> bool:
        """Keep ``entry`` for ``key`` (None forgets it); True if the file changed.  Never raises:
        a file that cannot be written costs one line on stderr, never the session's result.
        ``live_cap``: keep at most this many live games (entries with screens), the latest played."""
        state, games = self._read(say=False)   # another session may have written since we read
        if state == "unreadable":
            print(f"{self.command}: could not remember the scheme ({self.path} is unreadable)", file=sys.stderr)
            return False
        if entry is None:
            if key not in games:
                return False
            del games[key]
        elif games.get(key) == entry:
            return False
        else:
            games[key] = entry
        if live_cap is not None:
            live = sorted((str(e.get("when", "")), k) for k, e in games.items()
                          if isinstance(e, dict) and "windows" in e)
            for _, k in live[:max(0, len(live) - live_cap)]:
                del games[k]
        try:
            if state == "damaged":
                bad = self.path.with_name(f"{self.path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}")
                os.replace(self.path, bad)
                print(f"{self.command}: the damaged picks file is kept as {bad.name}", file=sys.stderr)
            atomic_write_json(self.path, {"version": VERSION, "games": games})
        except (OSError, UserError) as e:
            print(f"{self.command}: could not remember the scheme ({self.path}: {e})", file=sys.stderr)
            return False
        return True


# --------------------------------------------------------------------------- live: a game told by its screens
#: Windows kept of a screen: those whose (mixed) hash is a multiple of this, the same ones in a
#: fingerprint and in a query, so a share over the kept ones estimates the share over all of them.
SAMPLE = 8
#: A session is a remembered game when at least this share of the windows it showed (twice) are in
#: the game's fingerprint ...  (0.9 and 4 s below were chosen on ``scripts/recall_check.py --seed 0``
#: over 0.8 and 2 s: fewer sessions of other games taken for a remembered one, at some cost in
#: recognition.  Homebrew games share fonts, menus and splash screens, so it still happens: about one
#: session in ten of a game never remembered, README.  That is why ``live --recognise`` is opt-in.)
MATCH_SHARE = 0.9
#: ... once it showed at least this many kept windows (a title's few letters are no evidence) ...
MIN_WINDOWS = 100
#: ... in new windows shown over at least this many seconds: a splash screen several games open
#: with (a sponsor's logo, fading in) is one screen, so it decides nothing until the game's own
#: screens follow it.
MIN_SPAN_S = 4.0
#: A matched session whose share of that game's windows ends below this went on to screens the game
#: never showed: it was another game that opened alike, kept apart when the session ends.
STAY_SHARE = 0.5
#: New frames are looked at at most this often (2.7 ms each, after the frame is shown): what a
#: screen shows changes far slower than 60 times a second.
RATE_HZ = 10.0
#: Seconds of new frames looked up before a session gives up on being a remembered game (they
#: still add to its own fingerprint).
TRY_S = 60.0
#: A fingerprint keeps at most this many windows: the lowest mixed hashes (a bottom-k sketch, so a
#: query compares only its windows in the same hash range).
MAX_WINDOWS = 40000
#: Live games kept in the picks file at most (the least recently played go first).
MAX_GAMES = 64
#: What window hashes a fingerprint was made with: entries made with other hash weights are
#: skipped (the weights come from a seeded generator whose stream numpy could change).
HASH_ID = hashlib.sha1(window_weights(0).tobytes()).hexdigest()[:8]


def _kept(shades: np.ndarray) -> np.ndarray:
    """The kept windows of one screen: hashes mixed (an odd multiplier mod 2**32, one to one) so
    that which are kept, and a capped fingerprint's lowest, are not the darkest windows."""
    h, valid = window_hashes(shades)
    h = (h[valid].astype(np.uint64) * np.uint64(0x9E3779B1)) & np.uint64(0xFFFFFFFF)
    return h[h % SAMPLE == 0].astype(np.uint32)


def fingerprint(shade_frames: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """Sorted kept window hashes (uint32) of every window of (H, W) shade pictures (0 = black), capped."""
    parts = [_kept(s) for s in shade_frames]
    return _capped(np.concatenate(parts) if parts else np.zeros(0, np.uint32))


def _capped(hashes: np.ndarray) -> np.ndarray:
    return np.unique(np.asarray(hashes, np.uint32))[:MAX_WINDOWS]


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

    The capture thread calls :meth:`add` with each new monochrome frame's shade picture (after it
    handed the frame on: the lookup never delays one).  Once the session matches a remembered
    game, :attr:`matched` holds ``(key, scheme)`` (one attribute store: the window thread reads
    it).  :meth:`save` keeps the scheme the session ended on with every window the session showed
    (capped), under the game it matched or as a new one.
    """

    def __init__(self, games: dict[str, tuple[int, np.ndarray, bool]]) -> None:
        self.games = games              # key -> (scheme, fingerprint, capped)
        self.matched: tuple[str, int] | None = None
        self._seen: set[int] = set()    # every kept window two of the session's looked-at frames showed
        self._once: set[int] = set()    # kept windows one looked-at frame showed so far
        self._t0: float | None = None   # when the session's first new window showed
        self._span = 0.0                # seconds from then to the latest frame with new windows
        self._last: float | None = None  # when a frame was last looked at (RATE_HZ)
        # Every game's windows in one sorted array (with the game they belong to), so a frame's
        # new windows are looked up once whatever the number of games; per game, how many of the
        # session's windows it holds (``_hits``) out of those in its hash range (``_asked``).
        self._keys = [k for k, g in games.items() if len(g[1])]
        parts = [np.asarray(games[k][1], np.uint32) for k in self._keys]
        ids = np.concatenate([np.full(len(w), i) for i, w in enumerate(parts)]) if parts else np.zeros(0, int)
        allw = np.concatenate(parts) if parts else np.zeros(0, np.uint32)
        order = np.argsort(allw, kind="stable")
        self._all, self._ids = allw[order], ids[order]
        # a capped fingerprint (bottom-k) speaks only for hashes up to its largest
        top = np.iinfo(np.uint32).max
        self._limit = np.array([w[-1] if games[k][2] else top for k, w in zip(self._keys, parts, strict=True)],
                               np.uint32)
        self._hits = np.zeros(len(parts), np.int64)
        self._asked = np.zeros(len(parts), np.int64)

    @classmethod
    def load(cls, picks: PicksFile) -> LiveRecall:
        """The remembered live games (those kept with screens) whose scheme this schemes file has."""
        games, stale = {}, 0
        for key, entry in picks.entries.items():
            if not (isinstance(entry, dict) and "windows" in entry):
                continue
            w, game = _decode(entry.get("windows")), entry.get("game")
            if w is None or entry.get("hash") != HASH_ID:
                continue  # damaged, or made with other window hashes: it could never match
            if isinstance(game, str) and game in picks.scheme_games:
                games[key] = (picks.scheme_games.index(game) + 1, w, bool(entry.get("capped")))
            else:
                stale += 1
        if stale:
            print(f"{picks.command}: {stale} remembered game(s) name a scheme that is not among the "
                  f"{len(picks.scheme_games)} schemes now; the model paints them", file=sys.stderr)
        return cls(games)

    def due(self, t: float | None = None) -> bool:
        """Whether a frame shown at ``t`` (default now) would be looked at (:data:`RATE_HZ`): live
        asks first, so it makes a frame's shade picture only for the frames :meth:`add` takes."""
        t = time.monotonic() if t is None else t
        return self._last is None or t - self._last >= 1.0 / RATE_HZ

    def add(self, shades: np.ndarray, t: float | None = None) -> None:
        """One new monochrome frame ((H, W) shade indices, 0 = black), shown at ``t`` (seconds,
        monotonic; default now)."""
        t = time.monotonic() if t is None else t
        if not self.due(t):
            return
        self._last = t
        # A window counts once a second looked-at frame shows it too: a screen grab that caught
        # the emulator mid-draw (a torn frame) shows windows no real screen has, once.
        shown = set(_kept(shades).tolist()) - self._seen
        new = np.array(sorted(shown & self._once), np.uint32)     # seen once before: now it counts
        self._once ^= shown  # those seen before leave, first sightings join
        if not len(new):
            return
        self._seen.update(new.tolist())
        if len(self._seen) > 4 * MAX_WINDOWS and self._span > TRY_S:
            # a long session: keep what a capped fingerprint keeps (the lowest), not every window
            self._seen = set(self.fingerprint().tolist())
            self._once = set()
        if self._t0 is None:
            self._t0 = t
        self._span = t - self._t0
        if not self._keys or self._span > TRY_S:
            return  # (after a match it still counts: save checks the session stayed that game)
        self._count(new, self._hits, self._asked)
        if self.matched is None and self._span >= MIN_SPAN_S:
            self.matched = self._best()

    def _count(self, hashes: np.ndarray, hits: np.ndarray, asked: np.ndarray) -> None:
        """Add the games that hold each of ``hashes`` to ``hits``, those whose range holds it to ``asked``."""
        if not len(hashes):
            return
        lo = np.searchsorted(self._all, hashes, "left")
        hi = np.searchsorted(self._all, hashes, "right")
        n = hi - lo
        if n.any():
            at = np.repeat(lo, n) + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
            np.add.at(hits, self._ids[at], 1)
        asked += (hashes[:, None] <= self._limit[None]).sum(0)

    def _share_of(self, key: str) -> float:
        """The share of the session's windows (in its hash range) that game ``key`` holds."""
        i = self._keys.index(key)
        return float(self._hits[i] / max(self._asked[i], 1))

    def _best(self) -> tuple[str, int] | None:
        """The game most of the session's windows belong to, if one holds :data:`MATCH_SHARE` of
        at least :data:`MIN_WINDOWS` of them."""
        share = np.where(self._asked >= MIN_WINDOWS, self._hits / np.maximum(self._asked, 1), 0.0)
        i = int(np.argmax(share))
        if share[i] < MATCH_SHARE:
            return None
        key = self._keys[i]
        return key, self.games[key][0]

    def summary(self) -> dict[str, Any]:
        """What the session showed and how close it came to a remembered game (for stats files)."""
        share = self._hits / np.maximum(self._asked, 1)
        i = int(np.argmax(share)) if len(share) else None
        return {"games": len(self._keys), "windows": len(self._seen), "span_s": round(self._span, 2),
                "best_share": None if i is None else round(float(share[i]), 3),
                "best_asked": None if i is None else int(self._asked[i])}

    def fingerprint(self) -> np.ndarray:
        """The session's own windows (capped), as :meth:`save` keeps them."""
        return _capped(np.fromiter(self._seen, np.uint32, len(self._seen)))

    def save(self, picks: PicksFile, scheme: int | None, title: str) -> str | None:
        """Keep ``scheme`` for this session's game (None forgets a matched game); what happened, or None.

        Returns "remembered" (a new game or a changed pick), "forgot", or None (nothing to keep:
        no monochrome frame, or nothing changed).  Past :data:`MAX_GAMES` live games, the least
        recently played are forgotten.
        """
        key = self.matched[0] if self.matched else None
        if key is not None and self._share_of(key) < STAY_SHARE:
            # the session went on to screens that game never showed: it was another game after all
            # (two games can open alike), so it is kept apart and that game's pick is left alone
            key = None
        if not scheme:
            return "forgot" if key is not None and picks.keep(key, None) else None
        if not self._seen:
            return None
        own = np.fromiter(self._seen, np.uint32, len(self._seen))
        windows = np.unique(np.concatenate([own, self.games[key][1]]) if key is not None else own)
        capped, windows = len(windows) > MAX_WINDOWS, windows[:MAX_WINDOWS]
        if key is None:
            key = "screens:" + hashlib.sha1(windows.tobytes()).hexdigest()[:16]
        entry = picks.entry(scheme, title, when=time.strftime("%Y-%m-%d %H:%M:%S"), hash=HASH_ID,
                            capped=capped, windows=_encode(windows))
        return "remembered" if picks.keep(key, entry, live_cap=MAX_GAMES) else None
