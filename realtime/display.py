"""The pygame window shared by ``live``, ``play`` and ``demo``, and a precise frame pacer.

One class owns every pygame call, so the three commands behave alike: integer nearest-neighbour
scaling (Game Boy pixels stay square and sharp), the same keys, the same overlay, and the same
best-effort window options (borderless, always on top, placed at a given position).

pygame must be driven from the main thread; the pipelines in ``live`` keep capture and inference
on worker threads and only hand finished frames to :class:`Display`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

#: The Game Boy's frame rate (4194304 Hz / 70224 clocks per frame).
GB_FPS = 4194304 / 70224

#: Keys understood by every window; ``play`` additionally forwards the game keys to the emulator.
KEY_HELP = ("keys: F or Space toggle the filter (grey/colour), S side-by-side, P screenshot (PNG), "
            "M next model, C next colour scheme (monochrome games), O fps/latency overlay, Esc or Q quit")


@dataclass
class KeyEvent:
    """A raw key transition, for ``play`` to forward to the emulator's buttons."""

    key: int
    down: bool


@dataclass
class Events:
    """What happened in the window since the last poll."""

    # "quit", "filter", "side", "screenshot", "model", "scheme", "overlay"
    actions: list[str] = field(default_factory=list)
    keys: list[KeyEvent] = field(default_factory=list)


class Pacer:
    """Wait for the next frame deadline at a fixed rate with ~0.1 ms precision.

    ``time.sleep`` alone overshoots by up to a millisecond or more, which at 59.73 fps shows as
    judder; so it sleeps to 1.5 ms before the deadline and spins the rest.  If the caller falls
    more than a frame behind (a slow frame), the schedule restarts from now instead of rushing
    through a burst of late frames.
    """

    def __init__(self, fps: float = GB_FPS, *, spin: bool = True) -> None:
        self.period = 1.0 / fps
        self.next = time.perf_counter() + self.period
        self.spin = spin

    def wait(self) -> float:
        """Block until the next deadline; returns the time it waited (s).

        ``spin=False`` only sleeps (about 0.1 ms late on Linux): a worker thread must not spin,
        because a spinning Python thread holds the GIL for up to the 5 ms switch interval at a
        time, which the thread doing the real work then waits out.
        """
        now = time.perf_counter()
        start = now
        if not self.spin:
            if self.next > now:
                time.sleep(self.next - now)
        elif self.next - now > 0.0015:
            time.sleep(self.next - now - 0.0015)
        while self.spin and time.perf_counter() < self.next:
            pass
        now = time.perf_counter()
        self.next += self.period
        if now - self.next > self.period:
            self.next = now + self.period
        return now - start


def has_display() -> bool:
    """True when a real pygame window can be shown (X11/Wayland on Linux; always elsewhere).

    The dummy/offscreen SDL drivers count as "no display" here: callers that accept them
    (tests) check :func:`can_open_window` instead.
    """
    if os.environ.get("SDL_VIDEODRIVER", "") in ("dummy", "offscreen"):
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def can_open_window() -> bool:
    """True when :class:`Display` can open: a real display, or SDL's dummy/offscreen driver on purpose."""
    return has_display() or os.environ.get("SDL_VIDEODRIVER", "") in ("dummy", "offscreen")


def _keymap() -> dict[int, str]:
    import pygame

    return {pygame.K_f: "filter", pygame.K_SPACE: "filter", pygame.K_s: "side", pygame.K_p: "screenshot",
            pygame.K_F12: "screenshot", pygame.K_m: "model", pygame.K_c: "scheme", pygame.K_o: "overlay",
            pygame.K_TAB: "overlay", pygame.K_ESCAPE: "quit", pygame.K_q: "quit"}


class Display:
    """A pygame window that shows RGB frames at an integer scale, with an optional text overlay.

    ``position`` places the window's top-left corner (screen pixels) before it opens
    (``SDL_VIDEO_WINDOW_POS``); :meth:`move` moves it later (to follow an emulator window).
    """

    def __init__(self, title: str, content_size: tuple[int, int], scale: int = 3, *, borderless: bool = False,
                 on_top: bool = False, position: tuple[int, int] | None = None) -> None:
        if position is not None:
            os.environ["SDL_VIDEO_WINDOW_POS"] = f"{int(position[0])},{int(position[1])}"
        import pygame

        pygame.display.init()
        self._pg = pygame
        self.title = title
        self.scale = max(1, int(scale))
        self.borderless = borderless
        self.content_size = (0, 0)
        self.screen = None
        self._keys = _keymap()
        self._font = None
        self.on_top = on_top
        self._sdl_win: tuple[int | None, object] | None = None  # see _sdl_window: must outlive the window
        self._set_size(content_size)
        pygame.display.set_caption(title)
        self.on_top_note = self._apply_on_top() if on_top else ""

    # ---------------------------------------------------------------- window management
    def _set_size(self, content_size: tuple[int, int]) -> None:
        if content_size == self.content_size and self.screen is not None:
            return
        self.content_size = content_size
        flags = self._pg.NOFRAME if self.borderless else 0
        old_id = self.window_id if self.screen is not None else None
        self.screen = self._pg.display.set_mode((content_size[0] * self.scale, content_size[1] * self.scale), flags)
        if old_id is not None and self.on_top and self.window_id != old_id:
            # pygame re-creates the window on a size change (side-by-side): ask again for "on top"
            self._apply_on_top()

    def set_scale(self, scale: int) -> None:
        """Show content at another integer scale from the next frame on (e.g. to fit the screen)."""
        scale = max(1, int(scale))
        if scale != self.scale:
            self.scale = scale
            self.content_size = (0, 0)  # the next show() resizes the window

    @property
    def window_id(self) -> int | None:
        """The X11 window id (None on other platforms or the dummy driver)."""
        info = self._pg.display.get_wm_info()
        wid = info.get("window")
        return int(wid) if isinstance(wid, int) and wid else None

    def _apply_on_top(self) -> str:
        """Best effort 'always on top'; returns a one-line note saying what worked.

        pygame 2.6's Window API has no always-on-top setter, so on X11 we ask the window manager
        through EWMH (``_NET_WM_STATE_ABOVE``) with xdotool or wmctrl.  Without a window manager
        (e.g. bare Xvfb) there is nothing to ask, and stacking order is simply creation order.
        """
        win = self._sdl_window()
        if win is not None and hasattr(win, "always_on_top"):
            try:
                win.always_on_top = True
                return "always on top: set through pygame's Window API"
            except Exception:  # noqa: BLE001, S110 - fall through to the X11 tools
                pass
        wid = self.window_id
        if wid is None:
            return "always on top: not supported on this platform/driver"
        for argv in (["xdotool", "windowstate", "--add", "ABOVE", str(wid)],
                     ["wmctrl", "-i", "-r", hex(wid), "-b", "add,above"]):
            if shutil.which(argv[0]):
                r = subprocess.run(argv, capture_output=True, text=True, timeout=3, check=False)  # noqa: S603
                if r.returncode == 0:
                    return f"always on top: requested from the window manager with {argv[0]}"
        return "always on top: could not be set (needs xdotool or wmctrl and an EWMH window manager)"

    def _sdl_window(self) -> object | None:
        """pygame's ``Window`` for our display window, created once per SDL window and kept alive.

        ``Window.from_display_module()`` stores a *borrowed* pointer to the new Python object in the
        SDL window (``SDL_SetWindowData(..., "pg_window", ...)``) without taking a reference; pygame's
        event module later attaches that pointer to every window event.  Dropping the object (as a
        temporary would be) leaves a dangling pointer there, and the next WINDOWMOVED/SHOWN event
        reads freed memory: the intermittent SIGSEGV ``live`` had after following a moved emulator.
        Holding the object for as long as the window lives keeps the pointer valid.
        """
        wid = self.window_id
        if self._sdl_win is not None and self._sdl_win[0] == wid:
            return self._sdl_win[1]
        try:
            from pygame._sdl2.video import Window

            win = Window.from_display_module()
        except Exception:  # noqa: BLE001 - private API; absent or different in some pygame builds
            return None
        self._sdl_win = (wid, win)
        return win

    def move(self, x: int, y: int) -> None:
        """Move the window's top-left corner to (x, y) screen pixels (best effort)."""
        win = self._sdl_window()
        if win is not None:
            try:
                win.position = (int(x), int(y))  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001, S110 - moving is cosmetic; never fail the run for it
                pass

    # ---------------------------------------------------------------- drawing and events
    def show(self, rgb: np.ndarray, overlay: Sequence[str] = ()) -> None:
        """Draw one RGB uint8 frame (native size; scaled by ``scale``) and flip."""
        pg = self._pg
        h, w = rgb.shape[:2]
        self._set_size((w, h))
        buf = np.ascontiguousarray(rgb[:, :, :3])  # the array's own buffer: no bytes copy
        surf = pg.image.frombuffer(buf, (w, h), "RGB")
        self.screen.blit(pg.transform.scale(surf, self.screen.get_size()), (0, 0))
        if overlay:
            self._draw_overlay(overlay)
        pg.display.flip()

    def _draw_overlay(self, lines: Sequence[str]) -> None:
        pg = self._pg
        if self._font is None:
            try:
                pg.font.init()
                self._font = pg.font.Font(None, 18)
            except Exception:  # noqa: BLE001 - pygame built without SDL_ttf: no overlay, no crash
                self._font = False
        if not self._font:
            return
        y = 4
        for line in lines:
            text = self._font.render(line, True, (255, 255, 0))
            bg = pg.Surface((text.get_width() + 6, text.get_height() + 2))
            bg.set_alpha(160)
            bg.fill((0, 0, 0))
            self.screen.blit(bg, (2, y - 1))
            self.screen.blit(text, (5, y))
            y += text.get_height() + 2

    def poll(self) -> Events:
        """Collect window events: our actions (see :data:`KEY_HELP`) and raw key transitions."""
        pg = self._pg
        ev = Events()
        for e in pg.event.get():
            if e.type == pg.QUIT:
                ev.actions.append("quit")
            elif e.type in (pg.KEYDOWN, pg.KEYUP):
                down = e.type == pg.KEYDOWN
                ev.keys.append(KeyEvent(e.key, down))
                if down and e.key in self._keys:
                    ev.actions.append(self._keys[e.key])
        return ev

    def close(self) -> None:
        self._pg.display.quit()


#: Columns between grey and colour in :func:`side_by_side`.
SIDE_GAP = 2


def side_by_side(grey: np.ndarray, colour: np.ndarray, gap: int = SIDE_GAP) -> np.ndarray:
    """Grey input | colour output with a thin dark gap, both RGB uint8 of the same size."""
    g = grey if grey.ndim == 3 else np.repeat(grey[:, :, None], 3, axis=2)
    g = g[:, :, :3]
    h = max(g.shape[0], colour.shape[0])
    sep = np.full((h, gap, 3), 32, np.uint8)
    return np.concatenate([g, sep, colour[:, :, :3]], axis=1)


def percentile_ms(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile of durations in seconds, in milliseconds (None if empty)."""
    if not values:
        return None
    return round(float(np.percentile(np.asarray(values) * 1000.0, q)), 3)


def stage_stats(values: Sequence[float]) -> dict[str, float | None]:
    """p50/p99/mean of a stage's durations (seconds in, milliseconds out)."""
    return {"p50_ms": percentile_ms(values, 50), "p99_ms": percentile_ms(values, 99),
            "mean_ms": None if not values else round(float(np.mean(values)) * 1000.0, 3), "n": len(values)}


def stages_line(stages: Mapping[str, Mapping[str, float]], order: Sequence[str] | None = None) -> str:
    """``stages p50/p99 ms: capture 0.48/1.90  colorize ...``: one line for stages of ``{p50, p99}`` ms."""
    keys = list(order) if order is not None else list(stages)
    return "stages p50/p99 ms: " + "  ".join(f"{k} {stages[k]['p50']:.2f}/{stages[k]['p99']:.2f}" for k in keys)
