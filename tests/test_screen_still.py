"""capture.screen.detect_screen_still: an emulator window's screen from ONE frame, no motion.

Windows are drawn the way emulators draw them: the 160x144 frame in one of the palettes players
use (mGBA's grey default, BGB's green, the Pocket's greys, a custom one), nearest-neighbour
upscaled at 1x-6x or at a non-integer scale that fills the window, with or without a menu bar
and a border.  Synthetic frames need no ../shared data; one case uses real monochrome frames
of the shared games where they exist.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from capture.screen import detect_screen_still
from realtime.bench import DMG_GREYS, game_frames

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "gbc"

#: shade 0 (lightest) .. 3 (darkest), as emulators ship them
PALETTES = {
    "grey": [(255, 255, 255), (170, 170, 170), (85, 85, 85), (0, 0, 0)],
    "bgb-green": [(224, 248, 208), (136, 192, 112), (52, 104, 86), (8, 24, 32)],
    "dmg-green": [(155, 188, 15), (139, 172, 15), (48, 98, 48), (15, 56, 15)],
    "pocket": [(255, 255, 255), (169, 169, 169), (84, 84, 84), (0, 0, 0)],
    "custom": [(255, 239, 206), (222, 148, 74), (173, 41, 33), (49, 24, 82)],
}


def _native(palette: str, i: int = 7) -> np.ndarray:
    shades = game_frames(12, seed=1)[i]
    idx = np.searchsorted(-DMG_GREYS.astype(int), -shades.astype(int))  # 255 -> 0 ... 0 -> 3
    return np.array(PALETTES[palette], np.uint8)[idx]


def _window(native: np.ndarray, size: tuple[int, int], at: tuple[int, int], win: tuple[int, int],
            menu: int = 0) -> np.ndarray:
    """``native`` drawn nearest at ``size`` (w, h) into a ``win`` (w, h) window at ``at`` (x, y)."""
    img = np.full((win[1], win[0], 3), (40, 44, 52), np.uint8)  # the border / letterbox colour
    img[at[1]:at[1] + size[1], at[0]:at[0] + size[0]] = cv2.resize(native, size, interpolation=cv2.INTER_NEAREST)
    if menu:  # a menu bar: light strip with dark text that follows no pixel grid
        img[:menu] = (236, 236, 236)
        rng = np.random.default_rng(0)
        for x in range(6, win[0] - 40, 47):
            img[menu // 2 - 4:menu // 2 + 4, x:x + 30] = np.where(rng.random((8, 30, 1)) < 0.4, 20, 236)
    return img


@pytest.mark.parametrize("palette", list(PALETTES))
@pytest.mark.parametrize("scale", [1, 2, 3, 4, 5, 6])
def test_window_is_the_screen(palette: str, scale: int) -> None:
    """The most common case of all: the window is exactly the screen."""
    w, h = 160 * scale, 144 * scale
    r = detect_screen_still(_window(_native(palette), (w, h), (0, 0), (w, h)))
    assert r is not None
    assert (r.x, r.y, r.w, r.h) == (0, 0, w, h)


@pytest.mark.parametrize("palette", ["grey", "bgb-green", "custom"])
@pytest.mark.parametrize(("scale", "at", "win", "menu"), [
    (3, (0, 22), (480, 454), 22),     # mGBA-Qt-like: a menu bar on top
    (2, (12, 30), (344, 330), 22),    # menu bar and a border
    (4, (16, 8), (672, 592), 0),      # a plain border
    (3, (0, 0), (480, 452), 0),       # a status line below
])
def test_screen_inside_menu_and_border(palette: str, scale: int, at: tuple[int, int], win: tuple[int, int],
                                       menu: int) -> None:
    size = (160 * scale, 144 * scale)
    r = detect_screen_still(_window(_native(palette), size, at, win, menu))
    assert r is not None
    assert (r.x, r.y, r.w, r.h) == (*at, *size)


@pytest.mark.parametrize(("size", "at", "win", "menu"), [
    ((500, 450), (0, 0), (500, 450), 0),     # resized to a non-integer 3.125x
    ((400, 360), (0, 0), (400, 360), 0),     # 2.5x
    ((500, 450), (0, 20), (500, 470), 20),   # 3.125x below a menu bar
    ((560, 504), (30, 0), (620, 504), 0),    # 3.5x, letterboxed left and right
])
def test_non_integer_scale(size: tuple[int, int], at: tuple[int, int], win: tuple[int, int], menu: int) -> None:
    r = detect_screen_still(_window(_native("bgb-green"), size, at, win, menu))
    assert r is not None
    assert abs(r.x - at[0]) <= 0.5 and abs(r.y - at[1]) <= 0.5
    assert abs(r.w - size[0]) <= 0.5 and abs(r.h - size[1]) <= 0.5


def test_blank_and_smooth_frames_give_none() -> None:
    """No evidence, no answer: a blank boot screen, and a bilinear upscale (no exact grid)."""
    assert detect_screen_still(np.full((432, 480, 3), 255, np.uint8)) is None
    smooth = cv2.resize(_native("grey"), (480, 432), interpolation=cv2.INTER_LINEAR)
    assert detect_screen_still(smooth) is None


def test_rgba_and_grey_input() -> None:
    nat = _native("grey")
    big = cv2.resize(nat, (480, 432), interpolation=cv2.INTER_NEAREST)
    bgra = cv2.cvtColor(big, cv2.COLOR_RGB2BGRA)
    for frame in (bgra, big[:, :, 0]):
        r = detect_screen_still(frame)
        assert r is not None and (r.x, r.y, r.w, r.h) == (0, 0, 480, 432)


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data/gbc (real monochrome frames)")
def test_real_monochrome_frames() -> None:
    """Real DMG frames of the shared games, drawn at 3x below a menu bar: every one is found."""
    files = sorted(SHARED.glob("*/dmg/*.png"))[::97][:12]
    assert files, "no dmg frames in ../shared/data/gbc"
    found = 0
    for f in files:
        nat = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
        r = detect_screen_still(_window(nat, (480, 432), (0, 22), (480, 454), 22))
        blank = int(np.ptp(nat)) == 0
        if r is None:
            assert blank, f"{f}: not found"
            continue
        assert (r.x, r.y, r.w, r.h) == (0, 22, 480, 432), f"{f}: {r}"
        found += 1
    assert found >= len(files) - 2
