"""Colour schemes: 4-colour palettes learned from Color games, for a player to pick from.

Why this exists: on a monochrome game the model never saw, no network we trained gets much
closer to the game's own colours than grey does (README, "Games never seen in training"): the
monochrome frames say little about *which* palette a game uses.  They say a lot about *where*
each colour goes, though, and one palette per game explains most of it: on the held-out dual-mode
games (``scripts/unseen_bounds.py``; val / test medians), each game's own 4 colours (one per shade)
leave 0.42 / 0.27 of grey's error, and the best palette of *some* training game 0.48 / 0.43.
So the choice of palette is the information the frames lack, and a player is the one who has it.
The Game Boy Color's boot ROM already lets a player pick one of its hand-made palettes with a
button held at power-on; a scheme is the same idea, with palettes that homebrew Color games use.

How the schemes are made (:func:`build`): each training game's palette is the mean a/b of its
pixels per monochrome shade (its real monochrome twin where it has one, else the 4-shade look of
its colour frame).  The schemes are then picked from those palettes greedily, each the one that
most lowers the training games' error when every game takes the best scheme so far -- the
measure a player picking by eye stands for.  So every scheme is a palette some game chose (not a
blend of several), the first is the best single guess, and each next one covers the games the
earlier ones fit worst.  Palettes that look grey are not candidates (:data:`MIN_RGB_SPREAD`):
the filter's off switch shows grey.
(Picked this way, 16 schemes came closer to held-out training games than the medoids or centres
of 16 k-means groups: 5-fold medians 0.58 / 0.63 / 0.62 x grey's error, a scratch check.)

The document (``retrocolor dataset schemes``, shipped as ``weights/schemes.json``) holds, per
scheme, its a/b for shades 0 (black) .. 3 (white) in Lab units, an sRGB preview of the four
colours at the DMG lightness levels, the game it came from (credited from a ROM index) and how
many training games it is the closest scheme for.  Torch-free
and numpy-only, like the rest of the stage: the player side (``realtime``) reads it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dataset.color import DMG_LEVELS_L, l_ab_to_rgb, rgb_to_lab
from dataset.genres import frame_shades, read_index_rows
from utils.errors import UserError
from utils.fsio import read_json_doc

VERSION = 1
#: As many as the boot ROM's button combinations and title table offer palettes (README: best of 16).
DEFAULT_K = 16
#: A scheme must look coloured on screen: in one of its four colours, drawn at its shade's DMG
#: lightness, the sRGB channels must differ by at least this much (of 255).  Greyish palettes
#: (many games are mostly grey) are no choice to offer: grey is what the filter's off switch shows.
#: (A first rule, chroma >= 10 in Lab a/b, let through a scheme that a newcomer saw as grey:
#: #F6FFF4 #AAAB9B #545365, whose largest spread is 16.)
MIN_RGB_SPREAD = 40


def _palette_rgb(ab: np.ndarray) -> np.ndarray:
    """A palette's four colours (4, 3) uint8, shade 0 (black) first, each at its DMG lightness."""
    return l_ab_to_rgb(np.asarray(DMG_LEVELS_L, np.float32)[None], np.asarray(ab, np.float32)[None])[0]


def rgb_spread(ab: np.ndarray) -> int:
    """How coloured a palette (4, 2) looks: the largest sRGB channel spread of its colours (0 = grey)."""
    rgb = _palette_rgb(ab)
    return int((rgb.max(-1).astype(int) - rgb.min(-1)).max())


def game_palette(rgb_frames: Sequence[np.ndarray], twins: Sequence[np.ndarray | None]) -> dict[str, np.ndarray]:
    """A game's palette: per shade (0 = black) the mean a/b ``ab`` (4, 2), the share of pixels
    ``share`` (4,) and the spread ``var`` (4,): mean squared distance of its pixels' a/b from the mean.

    Those three give any palette's error on the game without its frames (:func:`ratio_to_grey`).
    A shade the frames never show gets zeros.
    """
    total = np.zeros((4, 2))
    sq = np.zeros(4)
    count = np.zeros(4)
    for rgb, twin in zip(rgb_frames, twins, strict=True):
        shades = frame_shades(rgb, twin)
        ab = rgb_to_lab(rgb)[..., 1:].astype(np.float64)
        for k in range(4):
            m = shades == k
            if m.any():
                total[k] += ab[m].sum(0)
                sq[k] += (ab[m] ** 2).sum()
                count[k] += m.sum()
    if count.sum() == 0:
        raise UserError("no frames to take a palette from")
    mean = total / np.maximum(count, 1)[:, None]
    var = np.maximum(sq / np.maximum(count, 1) - (mean ** 2).sum(1), 0.0)
    return {"ab": mean, "share": count / count.sum(), "var": var}


def ratio_to_grey(game: dict[str, np.ndarray], palettes: np.ndarray) -> np.ndarray:
    """Each of ``palettes`` (P, 4, 2) painted on ``game`` (a :func:`game_palette`): mse_ab / grey's, (P,).

    Painting shade k with colour c costs ``|c - mean_k|^2 + var_k`` per pixel of that shade; grey
    (c = 0) costs ``|mean_k|^2 + var_k``.  inf for a game whose colours are grey (nothing beats grey).
    """
    w, mu, var = game["share"], game["ab"], game["var"]
    grey = float((w * ((mu ** 2).sum(1) + var)).sum())
    cost = (w * (((np.asarray(palettes) - mu) ** 2).sum(2) + var)).sum(1)
    return cost / grey if grey > 1e-9 else np.full(len(cost), np.inf)


def read_game_palettes(paths: Sequence[str | os.PathLike[str]], limit_per_game: int | None = 40,
                       show_progress: bool = True) -> tuple[list[str], list[dict[str, np.ndarray]]]:
    """Game names and :func:`game_palette` of every game folder under ``paths``.

    A folder linked several times (an oversampled game) is read and counted once.
    """
    from dataset.loader import find_game_folders, frame_pairs, spread
    from utils.images import list_images
    from utils.progress import progress

    folders = find_game_folders(paths)
    seen: set[Path] = set()
    names, games = [], []
    for g in progress(folders, desc="reading palettes", unit="game", disable=None if show_progress else True):
        key = g.frames.resolve()
        if key in seen:
            continue
        seen.add(key)
        pairs = list(frame_pairs(g, spread(list_images(g.frames), limit_per_game)))
        if not pairs:
            continue
        rgbs, twins = [p[0] for p in pairs], [p[1] for p in pairs]
        names.append(g.name)
        games.append(game_palette(rgbs, twins))
    if not names:
        raise UserError("no readable frames in " + ", ".join(str(p) for p in paths))
    return names, games


def preview_rgb(ab: np.ndarray) -> list[str]:
    """The four colours of a scheme as ``#RRGGBB`` (white first), each at its DMG lightness."""
    return ["#{:02X}{:02X}{:02X}".format(*c) for c in _palette_rgb(ab)[::-1]]


def pick(games: list[dict[str, np.ndarray]], k: int, cap: float = 3.0) -> tuple[list[int], np.ndarray]:
    """Greedy picks of ``k`` palettes among the games' own: indices, and each game's best ratio after them.

    Each step takes the candidate that most lowers the mean over games of the best ratio so far
    (capped at ``cap``, so one game no palette fits cannot steer the choice), and it stops early
    when none lowers it.  Grey games count in no mean, and palettes that look grey are no candidates.
    """
    pals = np.stack([g["ab"] for g in games])
    colourful = np.nonzero([rgb_spread(p) >= MIN_RGB_SPREAD for p in pals])[0]
    if colourful.size == 0:
        raise UserError(f"all {len(games)} games' palettes are grey: no colour scheme to learn from them")
    r = np.stack([ratio_to_grey(g, pals[colourful]) for g in games])     # (games, candidates)
    r = np.minimum(r[np.isfinite(r).all(1)], cap)
    if not len(r):
        raise UserError("every game's colours are grey: nothing to measure schemes against")
    best = np.full(len(r), cap)
    chosen: list[int] = []
    for _ in range(min(k, colourful.size)):
        score = np.minimum(best[:, None], r).mean(0)
        score[chosen] = np.inf
        j = int(np.argmin(score))
        if chosen and score[j] >= best.mean() - 1e-9:
            break  # no candidate brings any game closer: more schemes would only repeat
        chosen.append(j)
        best = np.minimum(best, r[:, j])
    return [int(colourful[j]) for j in chosen], best


def build(paths: Sequence[str | os.PathLike[str]], k: int = DEFAULT_K, limit_per_game: int | None = 40,
          show_progress: bool = True, index: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """``k`` schemes from the games under ``paths`` (see the module docstring); the document.

    A scheme is one game's palette, so it names the game; ``index`` (a ROM index TSV) adds its
    title, developer and licence field, to credit it wherever the schemes are published.
    """
    credits = read_index_rows(index, ["title", "developer", "licence"]) if index is not None else {}
    names, games = read_game_palettes(paths, limit_per_game, show_progress)
    chosen, best = pick(games, k)
    pals = np.stack([games[i]["ab"] for i in chosen])
    # each scheme's group: the games it fits best of all the schemes (grey games left out)
    ratios = np.stack([ratio_to_grey(g, pals) for g in games])
    fits = ratios[np.isfinite(ratios).all(1)].argmin(1)
    schemes = [{"id": j + 1, "ab": np.round(pals[j], 3).tolist(), "preview": preview_rgb(pals[j]),
                "game": names[i], **credits.get(names[i], {}), "games": int((fits == j).sum())}
               for j, i in enumerate(chosen)]
    return {"version": VERSION, "what": "4-colour schemes (a/b per shade, shade 0 = black): the palettes of "
            "training games picked greedily so that every game has one close to its own (greyish ones left out)",
            "k": int(k), "limit_per_game": limit_per_game, "training_games": len(names),
            "median_best_ratio_to_grey": float(np.median(best)),
            "schemes": schemes}


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A schemes document, checked and completed (UserError if missing or malformed).

    Schemes are numbered by position (``--scheme N``, the C key, evaluate's figures): an ``id``
    that says otherwise is an error.  A scheme without ``preview`` or ``game`` (a hand-written
    file) gets them from its colours and its number, so every reader finds both.
    """
    p = Path(path)
    doc = read_json_doc(p, "schemes")
    rows = doc.get("schemes") if isinstance(doc, dict) else None
    if not isinstance(rows, list) or not rows:
        raise UserError(f"{p}: not a schemes file (no 'schemes' list); make one with retrocolor dataset schemes")
    for i, s in enumerate(rows, 1):
        ab = np.asarray(s.get("ab") if isinstance(s, dict) else None, dtype=object)
        try:
            ok = ab.shape == (4, 2) and np.all(np.isfinite(ab.astype(np.float64)))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise UserError(f"{p}: scheme {i} has no valid 'ab' (4 shades x a/b numbers)")
        if s.get("id", i) != i:
            raise UserError(f"{p}: scheme {i} says id {s['id']!r}; schemes are numbered by position, from 1")
        s["id"] = i
        pv = s.get("preview")
        if not (isinstance(pv, list) and len(pv) == 4 and all(isinstance(c, str) for c in pv)):
            s["preview"] = preview_rgb(np.asarray(s["ab"], np.float32))
        if not isinstance(s.get("game"), str):
            s["game"] = f"scheme {i}"
    return doc


def check_number(doc: dict[str, Any], value: Any) -> int:
    """``value`` as a scheme number of ``doc`` (1-based), or a one-line UserError."""
    n = len(doc["schemes"])
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UserError(f"scheme must be a number, got {value!r}")
    if not 1 <= int(value) <= n:
        raise UserError(f"scheme must be 1..{n} (0: the model), got {value}")
    return int(value)


def scheme_ab(doc: dict[str, Any]) -> np.ndarray:
    """All schemes' a/b as one array ``(S, 4, 2)`` float32, shade 0 (black) first."""
    return np.asarray([s["ab"] for s in doc["schemes"]], np.float32)
