"""Where ``live`` puts its window: always inside the screen, beside the emulator where it fits.

Pure geometry (no display needed): the window manager is not asked for anything, so the same
rules hold on a bare X server.
"""

from __future__ import annotations

import pytest

from capture.window import Rect
from realtime.live import LiveOptions, LiveSession

SCREEN = Rect(0, 0, 1280, 1024)
SBS = (2 * 160 + 2, 144)


def _layout(src: Rect, content: tuple[int, int], scale: int = 3, position: str = "beside",
            screen: Rect = SCREEN) -> tuple[int, tuple[int, int]]:
    s = LiveSession(LiveOptions(scale=scale, position=position))
    s.screen = screen
    return s._layout(src, content)  # noqa: SLF001


def _inside(scale: int, pos: tuple[int, int], content: tuple[int, int], screen: Rect = SCREEN) -> bool:
    w, h = content[0] * scale, content[1] * scale
    return pos[0] >= screen.x and pos[1] >= screen.y and pos[0] + w <= screen.x + screen.width \
        and pos[1] + h <= screen.y + screen.height


def test_beside_at_full_scale_when_it_fits() -> None:
    assert _layout(Rect(40, 40, 480, 432), (160, 144)) == (3, (528, 40))


def test_side_by_side_scales_down_to_fit_the_screen() -> None:
    """The reported case: 3x grey | colour (966 px) beside a 480-px mGBA at x=256 on 1280 px."""
    scale, pos = _layout(Rect(256, 176, 480, 432), SBS)
    assert scale < 3 and _inside(scale, pos, SBS)
    assert scale == 2  # below the emulator: 644x288 fits there


@pytest.mark.parametrize("src", [Rect(0, 0, 1280, 1024), Rect(800, 600, 480, 432), Rect(-100, -50, 480, 432)])
@pytest.mark.parametrize("content", [(160, 144), SBS])
def test_always_inside_the_screen(src: Rect, content: tuple[int, int]) -> None:
    scale, pos = _layout(src, content, scale=4)
    assert _inside(scale, pos, content)


def test_small_screen_gives_the_largest_scale_that_fits() -> None:
    small = Rect(0, 0, 800, 600)
    scale, pos = _layout(Rect(0, 0, 800, 600), SBS, screen=small)
    assert scale == 2 and _inside(scale, pos, SBS, small)


def test_over_keeps_the_emulators_corner() -> None:
    assert _layout(Rect(100, 80, 480, 432), (160, 144), position="over") == (3, (100, 80))


def test_a_repeated_frame_reuses_its_colour_and_a_new_model_does_not() -> None:
    import numpy as np

    from realtime.live import SameFrame

    class Counting:
        def __init__(self) -> None:
            self.calls = 0

        def colorize(self, frame: np.ndarray) -> np.ndarray:
            self.calls += 1
            return frame[:, :, ::-1].copy()

    same, model = SameFrame(), Counting()
    a = np.zeros((144, 160, 3), np.uint8)
    b = a.copy()
    b[5, 7] = 255
    outs = [same.colorize(model, f.copy()) for f in (a, a, a, b, b, a)]
    assert model.calls == 3 and same.reused == 3  # a, b, a again: colorized; the repeats reused
    assert np.array_equal(outs[4], b[:, :, ::-1]) and np.array_equal(outs[5], a[:, :, ::-1])
    other = Counting()
    same.colorize(other, a.copy())
    assert other.calls == 1  # another model (M) colours the same frame afresh
