"""Hashes of the 8x8 windows of a monochrome screen: what tells one game from another.

A Game Boy draws its screen from 8x8 tiles, at any scroll, so the set of 8x8 windows a game shows
(in shade indices, 0 = black .. 3 = white) is close to a fingerprint of the game: two games share
few windows beyond blank ones (README: exact tiles shared between games cover 0-16% of a held-out
game's).  Two readers: the known-game gate (``models.router``: does a frame come from a game the
specialist learned?) and ``realtime.picks`` (is this the game a player picked a colour scheme for?).
Numpy only, no torch: the player side uses it.
"""

from __future__ import annotations

import numpy as np

#: A Game Boy tile is 8x8 pixels.
WINDOW = 8


def window_weights(seed: int = 0) -> np.ndarray:
    """(8, 8) integer hash weights below 2**16: every partial sum of ``shade * weight`` over a
    window stays below 2**24, so a float32 Conv computes the hash exactly (the gate's ONNX graph)."""
    rng = np.random.default_rng(seed)
    return rng.integers(1, 1 << 16, size=(WINDOW, WINDOW)).astype(np.int64)


def window_hashes(shades: np.ndarray, bits: int | None = None, seed: int = 0,
                  stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Hash of the 8x8 windows (every ``stride``-th) of a (H, W) shade-index image, and whether
    each window counts.  ``bits``: keep the low bits only (a table's size); None keeps the whole
    hash (below 2**24).

    Windows of one shade (blank sky, black borders) are in every game, so they carry no evidence:
    a window counts unless its raw hash is a multiple of the weights' sum, which every uniform
    window's is (``shade * sum``); a two-shade window lands there with odds of about 1 in 2**21.
    """
    s = np.asarray(shades, np.int64)
    win = np.lib.stride_tricks.sliding_window_view(s, (WINDOW, WINDOW))[::stride, ::stride]
    w = window_weights(seed)
    raw = np.tensordot(win, w, axes=([2, 3], [0, 1]))
    return (raw if bits is None else raw % (1 << bits)), raw % int(w.sum()) != 0
