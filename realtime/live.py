"""``retrocolor live``: colorize a running emulator's window in real time.

Two threads, one hand-off::

    worker thread (capture -> find screen -> colorize) --(latest)--> display (main thread, pygame)

The worker grabs at the Game Boy's 59.73 fps and colorizes each grab at once, so the latency is
the sum of the stages, with no frame waiting for a busy stage.  The hand-off is a one-slot
"latest" box: a new frame replaces one the display has not taken (counted as dropped), so
nothing queues up; the display shows each frame the moment it arrives.

A separate tracker thread polls the emulator window's geometry a few times a second: a moved
window is followed (our window moves with it), a resized one triggers a new screen detection,
a minimised one pauses capture, and a closed one ends the run cleanly (exit code 0, one line).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from capture.screen import NATIVE_H, NATIVE_W, NativeSampler, ScreenRect, detect_screen, detect_screen_still
from capture.window import (
    Rect,
    WindowGone,
    WindowInfo,
    check_region,
    find_emulator,
    find_window,
    grab,
    open_mss,
    require_display,
    screen_rect,
    window_state,
)
from realtime import picks
from realtime.display import GB_FPS, KEY_HELP, SIDE_GAP, Display, Pacer, stage_stats
from realtime.viewer import (
    Viewer,
    check_scheme,
    engine_timings,
    make_colorizer,
    model_names,
    scheme_count,
    scheme_label,
)
from utils.errors import UserError
from utils.fsio import atomic_write_json
from utils.geometry import check_scale

LIVE_HELP = KEY_HELP + ". The emulator window is followed when it moves, re-detected when resized, waited for " \
    "when minimised; closing it ends the run (exit code 0)."

NATIVE = (NATIVE_W, NATIVE_H)


@dataclass
class LiveOptions:
    """Options of :func:`run_live` (the CLI flags of ``retrocolor live``)."""

    window: str | None = None
    region: tuple[int, int, int, int] | None = None
    model: str | None = None
    scale: int = 3
    borderless: bool = False
    on_top: bool = False
    position: str = "beside"
    seconds: float | None = None
    stats_json: Path | None = None
    smoothing: float = 0.0
    scheme: int | None = None  # a colour scheme (1-based); 0: the model; None: the model, or a remembered one
    recognise: bool = False  # recognise a game whose scheme a past session kept; keep the one this ends on
    # (``live --recognise``: opt-in, as a game can be taken for another that shares its screens)
    threads: int = 1
    screenshot_dir: Path = field(default_factory=Path.cwd)
    fps: float = GB_FPS


class Latest:
    """A one-slot mailbox that keeps only the newest item (a size-1 queue dropping stale frames)."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._item: Any = None
        self.dropped = 0

    def put(self, item: Any) -> None:
        with self._cv:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cv.notify()

    def take(self, timeout: float | None = None) -> Any:
        """The newest item (removing it), waiting up to ``timeout`` s; None if nothing came."""
        with self._cv:
            if self._item is None and timeout:
                self._cv.wait(timeout)
            item, self._item = self._item, None
            return item


class SameFrame:
    """The last (native frame, colour) pair: a frame identical to the one before reuses its colour.

    Game Boy games hold still a lot (menus, dialogue, pauses, title screens), and a repeated frame
    would be colorized to the same output again.  Comparing 160x144 RGB costs ~20 us against
    ~4 ms for the model, so on a still screen the filter leaves the cores to the emulator.  A new
    model (``M``) or colour scheme (``C``) never gets the old one's colours.
    """

    def __init__(self) -> None:
        self._frame: np.ndarray | None = None
        self._colour: np.ndarray | None = None
        self._owner: Any = None
        self._scheme: int | None = None
        self.reused = 0

    def colorize(self, colorizer: Any, native: np.ndarray) -> np.ndarray:
        scheme = getattr(colorizer, "scheme", None)
        if (self._colour is not None and self._owner is colorizer and self._scheme == scheme
                and self._frame is not None and self._frame.shape == native.shape
                and np.array_equal(self._frame, native)):
            self.reused += 1
            return self._colour
        colour = colorizer.colorize(native)
        # No copy: each captured frame is a new array, and nothing writes to it after this.
        self._frame, self._colour, self._owner, self._scheme = native, colour, colorizer, scheme
        return colour


@dataclass
class Colored:
    seq: int
    t_capture: float
    grey: np.ndarray  # native RGB (grey) input
    colour: np.ndarray  # native RGB output


# --------------------------------------------------------------------------- finding the game screen
#: Screen detection in a live window: the first try once frames have been collected for this
#: long, a failed try is repeated this often, and after this many tries the whole window is kept.
DETECT_AFTER_S = 0.5
DETECT_RETRY_S = 1.0
DETECT_TRIES = 8
#: Frames kept for detection (thinned to every other one when full, so they span the whole wait)
#: and the least spacing between two of them.
DETECT_FRAMES = 16
DETECT_SPACING_S = 0.05
#: A detected screen must fill this fraction of the window's width or height: an emulator
#: window is mostly screen, and a blinking cursor alone must not pass for a tiny 1x screen.
DETECT_MIN_COVER = 0.4
#: Single-frame detection: retried this often while the screen is blank, for this long, then
#: at the slow rate for as long as the filter runs (a game can stay blank for a while).
STILL_RETRY_S = 0.2
STILL_FAST_FOR_S = 5.0
STILL_SLOW_RETRY_S = 2.0


class _Plan:
    """How frames of one size become engine input, for one screen rectangle.

    A whole-pixel rectangle at an integer scale is read at its cell centres: exact for an
    emulator's clean nearest upscale, with the real DMG shades, which the engine's palette
    detection needs.  Anything else (a non-integer or
    sub-pixel window) goes through :class:`capture.screen.NativeSampler`, which inverts the
    detected upscaler, and the engine gets the native frame.
    """

    def __init__(self, rect: ScreenRect, shape: tuple[int, int]) -> None:
        self.rect = rect
        h, w = shape
        k = rect.w / NATIVE_W
        whole = all(abs(v - round(v)) < 1e-6 for v in (rect.x, rect.y, k)) and abs(rect.h - k * NATIVE_H) < 1e-6
        self.origin: tuple[int, int] | None = None  # top-left of an integer-scale screen
        self.sampler: NativeSampler | None = None
        if whole and k >= 1 and rect.x >= 0 and rect.y >= 0 and rect.x + rect.w <= w and rect.y + rect.h <= h:
            x0, y0, self.step = round(rect.x), round(rect.y), round(k)  # step: source pixels per cell
            self.origin = (x0, y0)
        else:
            self.step = 1
            self.sampler = NativeSampler(rect, shape)

    def __call__(self, bgra: np.ndarray) -> np.ndarray:
        if self.origin is not None:
            # The cell centres of an exact integer upscale *are* the native frame, real DMG shades
            # included (the engine's palette detection needs them): 0.1 ms, and the engine then
            # works at 160x144 instead of checking and re-upscaling a 9-36x larger crop.
            x0, y0 = self.origin
            o = self.step // 2
            native = np.ascontiguousarray(bgra[y0 + o:y0 + o + NATIVE_H * self.step:self.step,
                                               x0 + o:x0 + o + NATIVE_W * self.step:self.step, 2::-1])
            return native
        assert self.sampler is not None
        # RGB first: the alpha channel would cost a quarter of the sampling for nothing.
        native = self.sampler(cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGB))
        return native


class ScreenFinder:
    """Captured window pixels -> engine input, locating the Game Boy screen inside the window.

    Emulator windows have a menu bar, borders or a status line around the game screen.  Two
    detectors run on a background thread, so capture and display never wait for them:

    * :func:`capture.screen.detect_screen_still` on single frames, from the very first one: an
      emulator's nearest-neighbour upscale is an exact pixel grid, found in tens of milliseconds
      even on a paused game or a menu.  A blank frame (no edges) is retried every
      :data:`STILL_RETRY_S`.
    * :func:`capture.screen.detect_screen` on frames spread over :data:`DETECT_AFTER_S`, for
      windows drawn with a smooth upscale (no exact grid); it needs motion, so it is retried
      while the game shows nothing moving.

    Until one succeeds the whole window is used (cropped to the engine when it is an exact
    integer upscale, sampled to 160x144 otherwise).  A resize (:meth:`reset`) starts over; a
    result for a size that is gone is dropped.
    """

    def __init__(self, log: Callable[[str], None] | None = None) -> None:
        self._log = log or (lambda _m: None)
        self._lock = threading.Lock()
        self._generation = 0
        self._worker: threading.Thread | None = None
        self.rect: ScreenRect | None = None  # the detected screen (None: the whole window is used)
        self.detected = "not yet"
        self.found_after: float | None = None  # seconds from the first frame of this size to the result
        self._reset_locked()

    def _reset_locked(self) -> None:
        self._generation += 1
        self._shape: tuple[int, int] | None = None
        self._plan: _Plan | None = None
        self._frames: list[np.ndarray] = []
        self._t_start = 0.0
        self._t_last = 0.0
        self._next_try = 0.0
        self._next_still = 0.0
        self._still_tries = 0
        self._tries = 0
        self._busy = False
        self._last_error = ""
        self._gave_up = False
        self.rect = None
        self.found_after = None

    def reset(self) -> None:
        """The source changed size: forget the screen and look for it again."""
        with self._lock:
            self._reset_locked()

    def __call__(self, bgra: np.ndarray) -> np.ndarray:
        shape = (int(bgra.shape[0]), int(bgra.shape[1]))
        with self._lock:
            if shape != self._shape:
                if self._shape is not None:
                    self._reset_locked()
                self._shape = shape
                self._plan = _Plan(ScreenRect(0, 0, shape[1], shape[0]), shape)
                self._t_start = time.monotonic()
                self.detected = f"whole {shape[1]}x{shape[0]} window (looking for the game screen)"
            self._collect(bgra, shape)
            plan = self._plan
        assert plan is not None
        return plan(bgra)

    def _collect(self, bgra: np.ndarray, shape: tuple[int, int]) -> None:
        """Keep a few frames spread over time; start a detection when one is due (lock held)."""
        if self.rect is not None:
            return
        now = time.monotonic()
        if not self._busy and now >= self._next_still:
            # One frame is enough for an exact grid: try it first, and again while the screen is blank.
            self._still_tries += 1
            self._next_still = now + (STILL_RETRY_S if now - self._t_start < STILL_FAST_FOR_S else STILL_SLOW_RETRY_S)
            self._start(self._detect_still, np.ascontiguousarray(bgra[:, :, 2::-1]), shape)
            return
        if self._tries >= DETECT_TRIES:
            return
        if self._frames and now - self._t_last < DETECT_SPACING_S:
            return
        self._t_last = now
        self._frames.append(np.ascontiguousarray(bgra[:, :, 2::-1]))  # RGB copy: the grab buffer is reused
        if len(self._frames) > DETECT_FRAMES:
            self._frames = self._frames[::2]
        if self._busy or now - self._t_start < DETECT_AFTER_S or now < self._next_try or len(self._frames) < 4:
            return
        self._tries += 1
        self._next_try = now + DETECT_RETRY_S
        self._start(self._detect, list(self._frames), shape)

    def _start(self, target: Callable[..., None], frames: Any, shape: tuple[int, int]) -> None:
        self._busy = True
        # Not a daemon, and joined by close(): a daemon thread still inside OpenCV when the
        # interpreter shuts down aborts the whole process ("terminate called without an active
        # exception"), which turned clean exits into SIGABRT.
        self._worker = threading.Thread(target=target, args=(frames, self._generation, shape), name="screen-detect")
        self._worker.start()

    def close(self, timeout: float = 10.0) -> None:
        """Wait for a detection still running, so the process never exits with it mid-OpenCV."""
        worker = self._worker
        if worker is not None and worker.is_alive():
            worker.join(timeout)

    @staticmethod
    def _check_cover(rect: ScreenRect, shape: tuple[int, int]) -> None:
        h, w = shape
        if rect.w < DETECT_MIN_COVER * w and rect.h < DETECT_MIN_COVER * h:
            raise UserError(f"only a small area was found ({rect.describe()})")

    def _detect_still(self, frame: np.ndarray, generation: int, shape: tuple[int, int]) -> None:
        rect: ScreenRect | None = None
        error = "no exact pixel grid in one frame"
        try:
            rect = detect_screen_still(frame)
            if rect is not None:
                self._check_cover(rect, shape)
        except UserError as e:
            rect, error = None, str(e)
        except Exception as e:  # noqa: BLE001 - a detection bug must not stop the filter
            rect, error = None, f"{type(e).__name__}: {e}"
        self._finish(rect, error, generation, shape, "one frame", final=False)

    def _detect(self, frames: list[np.ndarray], generation: int, shape: tuple[int, int]) -> None:
        rect: ScreenRect | None = None
        try:
            rect = detect_screen(frames)
            self._check_cover(rect, shape)
        except UserError as e:
            rect, error = None, str(e)
        except Exception as e:  # noqa: BLE001 - a detection bug must not stop the filter
            rect, error = None, f"{type(e).__name__}: {e}"
        else:
            error = ""
        self._finish(rect, error, generation, shape, "motion", final=True)

    def _finish(self, rect: ScreenRect | None, error: str, generation: int, shape: tuple[int, int],
                how: str, final: bool) -> None:
        h, w = shape
        plan = None
        if rect is not None:
            try:
                plan = _Plan(rect, shape)
            except Exception as e:  # noqa: BLE001 - a rect the sampler cannot use is "not found"
                rect, error = None, f"{type(e).__name__}: {e}"
        with self._lock:
            if generation != self._generation:
                return  # the window was resized meanwhile: this result is for a size that is gone
            self._busy = False
            if rect is not None and plan is not None:
                self.rect, self._plan = rect, plan
                self.found_after = time.monotonic() - self._t_start
                self.detected = f"game screen {rect.describe()} inside the {w}x{h} window (from {how})"
                self._frames = []
                self._log(f"live: {self.detected}, after {self.found_after:.2f} s")
                return
            if final:
                self._last_error = error
            if final and self._tries >= DETECT_TRIES and not self._gave_up:
                self._gave_up = True
                self._frames = []
                self.detected = f"whole {w}x{h} window (no game screen found: {self._last_error})"
                self._log(f"live: no game screen found inside the window ({self._last_error}); "
                          "colorizing the whole window (still looking on single frames)")


# --------------------------------------------------------------------------- the live session
class LiveSession:
    """One run of the live filter: threads, shared state and statistics."""

    def __init__(self, opts: LiveOptions) -> None:
        self.opts = opts
        self.stop = threading.Event()
        self.stop_reason = ""
        self.lock = threading.Lock()
        self.source: WindowInfo | None = None
        self.rect: Rect | None = None  # what capture grabs now (absolute screen pixels)
        self.geometry = 0
        self.viewable = True
        self.moved_to: Rect | None = None  # set by the tracker, consumed by the display
        self.colored = Latest()
        self.view = Viewer("live", model_names(opts.model), screenshot_dir=opts.screenshot_dir)
        self.want_model: int | None = None
        self.same = SameFrame()
        self.picks: picks.PicksFile | None = None      # the remembered schemes (set in run)
        self.recall: picks.LiveRecall | None = None  # the remembered games' screens (set in run)
        self.finder = ScreenFinder(log=lambda m: print(m, file=sys.stderr))
        self.errors: list[str] = []
        self.t_capture: list[float] = []
        self.t_detect: list[float] = []
        self.t_colorize: list[float] = []
        self.t_colorize_new: list[float] = []   # frames the model ran on (not repeats of the one before)
        self.t_display: list[float] = []
        self.latency: list[float] = []
        self.shown_at: list[float] = []
        self.win_size: tuple[int, int] | None = None  # the whole window's size, for WindowGrabber
        self.n_captured = 0
        self.n_colored = 0
        self.n_shown = 0
        self.colorizer: Any = None

    # ---------------------------------------------------------------- source selection
    def pick_source(self, screen: Rect) -> str:
        o = self.opts
        if o.region is not None:
            x, y, w, h = o.region
            self.rect = check_region(Rect(x, y, w, h), screen)
            return f"capturing region {x},{y},{w},{h}"
        if o.window is not None:
            self.source = find_window(o.window)
            msg = f"capturing window {self.source.title!r}"
        else:
            name, self.source = find_emulator()
            msg = f"found {name}: window {self.source.title!r}"
        r = self.source.rect
        self.win_size = (r.width, r.height)
        self.rect = r.intersect(screen)
        if self.rect is None:
            raise UserError(f"window {self.source.title!r} is off screen ({r.width}x{r.height} at {r.x},{r.y})")
        return msg + f" ({r.width}x{r.height} at {r.x},{r.y})"

    # ---------------------------------------------------------------- threads
    def tracker(self) -> None:
        """Poll the emulator window (4 Hz): follow moves, re-detect on resize, wait when minimised."""
        assert self.source is not None
        screen = self.screen
        was_viewable = True
        while not self.stop.wait(0.25):
            try:
                st = window_state(self.source.id)
            except WindowGone:
                # Confirm once: an X server busy under load can fail one query of a live window.
                time.sleep(0.2)
                try:
                    st = window_state(self.source.id)
                except WindowGone:
                    self.finish(f"the captured window {self.source.title!r} closed; stopping")
                    return
                except Exception as e:  # noqa: BLE001 - a failed poll is retried, never fatal
                    self.errors.append(f"tracker: {e}")
                    continue
            except Exception as e:  # noqa: BLE001 - a failed poll is retried, never fatal
                self.errors.append(f"tracker: {e}")
                continue
            clipped = st.rect.intersect(screen)
            viewable = st.viewable and clipped is not None
            with self.lock:
                if viewable and clipped != self.rect:
                    assert clipped is not None
                    if self.rect is None or (clipped.width, clipped.height) != (self.rect.width, self.rect.height):
                        self.geometry += 1
                    self.rect = clipped
                    self.moved_to = st.rect
                    self.win_size = (st.rect.width, st.rect.height)
                self.viewable = viewable
            if viewable != was_viewable:
                print("live: the emulator window is minimised or hidden; waiting" if not viewable
                      else "live: the emulator window is back", file=sys.stderr)
                was_viewable = viewable

    def worker(self) -> None:
        """Grab, find the screen, colorize, hand to the display: one frame at a time, at the Game
        Boy's rate, with one mss instance (made in this thread: X connections are per thread).

        One thread for all three, not a thread each: on 2 cores beside an emulator a hand-off
        between threads costs a wake-up (and the GIL) per frame, and a frame that waits for a
        busy colorizer is a frame of latency.  Done in line, each capture is colorized at once:
        the latency is the sum of the stages.  The display stays on the main thread (pygame).
        """
        grabber = None
        try:
            sct = open_mss()
            if self.opts.position == "over" and self.source is not None:
                from capture.window import WindowGrabber

                grabber = WindowGrabber(self.source.id)
        except UserError as e:
            self.finish(str(e), error=True)
            return
        pacer = Pacer(self.opts.fps, spin=False)
        geometry_seen = -1
        try:
            while not self.stop.is_set():
                self._maybe_switch_model()
                if self.colorizer.scheme != (self.view.scheme or None):
                    self.colorizer.scheme = self.view.scheme or None  # C pressed: this thread alone sets it
                with self.lock:
                    rect, geometry, viewable, size = self.rect, self.geometry, self.viewable, self.win_size
                if not viewable or rect is None:
                    time.sleep(0.05)
                    continue
                t0 = time.perf_counter()
                try:
                    if grabber is not None and size is not None:
                        # "over": our window covers the emulator, so read the window's own pixels
                        got = grabber.grab(*size)
                        if got is None:
                            time.sleep(0.05)
                            continue
                        frame = got
                    else:
                        frame = grab(sct, rect)
                except Exception as e:  # noqa: BLE001 - e.g. the window moved off screen mid-grab
                    self.errors.append(f"capture: {e}")
                    time.sleep(0.05)
                    continue
                t1 = time.perf_counter()
                self.n_captured += 1
                if geometry != geometry_seen:
                    self.finder.reset()
                    geometry_seen = geometry
                native = self.finder(frame)  # the 160x144 RGB screen: engine input and the grey side
                t2 = time.perf_counter()
                reused = self.same.reused
                colour = self.same.colorize(self.colorizer, native)
                t3 = time.perf_counter()
                self.t_capture.append(t1 - t0)
                self.t_detect.append(t2 - t1)
                self.t_colorize.append(t3 - t2)
                new_frame = self.same.reused == reused  # the model ran (not a repeat of the frame before)
                if new_frame:
                    self.t_colorize_new.append(t3 - t2)
                self.n_colored += 1
                self.colored.put(Colored(self.n_captured, t0, native, colour))
                if new_frame and self.recall is not None and self.recall.due():
                    shades = self.colorizer.last_shades()  # after the hand-off: it never delays a frame
                    if shades is not None:
                        self.recall.add(shades)  # sets recall.matched: the window thread applies it
                pacer.wait()
        except UserError as e:
            self.finish(str(e), error=True)
        except Exception as e:  # noqa: BLE001 - report on the main thread, do not die silently
            self.finish(f"live filter failed: {type(e).__name__}: {e}", error=True)
        finally:
            with contextlib.suppress(Exception):
                sct.close()  # type: ignore[attr-defined]
            if grabber is not None:
                grabber.close()

    def _maybe_switch_model(self) -> None:
        """Load the model M asked for (here, off the display thread); keep the old one if it fails."""
        if self.want_model is None:
            return
        idx, self.want_model = self.want_model, None  # the next M moves on even if this one fails
        try:
            self.colorizer = make_colorizer(self.view.models[idx], threads=self.opts.threads,
                                            smoothing=self.opts.smoothing, scheme=self.view.scheme or None)
            print(f"live: model {self.view.models[idx]}", file=sys.stderr)
        except UserError as e:
            # A model file replaced by a broken one while we run: keep playing.
            self.errors.append(str(e))
            print(f"live: cannot switch to {self.view.models[idx]}: {e}; keeping {self.colorizer.name}",
                  file=sys.stderr)

    def finish(self, reason: str, error: bool = False) -> None:
        if not self.stop.is_set():
            self.stop_reason = reason
            self.failed = error
        self.stop.set()

    # ---------------------------------------------------------------- main loop
    def run(self) -> dict[str, Any]:
        require_display()
        o = self.opts
        check_scale(o.scale, "--scale")
        if o.position not in ("over", "beside"):
            raise UserError("--position must be 'over' or 'beside'")
        if o.position == "over" and o.region is not None:
            raise UserError("--position over needs --window: a region is read from the screen, "
                            "which would then show our own window on top of it")
        sct = open_mss()
        try:
            self.screen = screen_rect(sct)
        finally:
            sct.close()  # type: ignore[attr-defined]
        msg = self.pick_source(self.screen)
        self.failed = False
        print(f"live: {msg}", file=sys.stderr)
        self.colorizer = make_colorizer(self.view.model, threads=o.threads, smoothing=o.smoothing,
                                        scheme=o.scheme or None)
        self.view.scheme, self.view.scheme_count = o.scheme or 0, scheme_count(self.colorizer, "live")
        self.picks = picks.PicksFile("live", picks.scheme_games(self.colorizer.schemes)) \
            if o.recognise and self.view.scheme_count else None
        self.recall = picks.LiveRecall.load(self.picks) if self.picks is not None else None
        recall_open = self.recall is not None and o.scheme is None  # a match may still set the scheme
        print(f"live: model {self.view.model}; monochrome frames painted by {scheme_label(self.colorizer)}",
              file=sys.stderr)
        print(f"live: {LIVE_HELP}", file=sys.stderr)

        assert self.rect is not None
        scale, pos = self._layout(self.rect, NATIVE)
        display = Display("retrocolor live", NATIVE, scale, borderless=o.borderless, on_top=o.on_top,
                          position=pos)
        if scale != o.scale:
            print(f"live: window at {scale}x (not {o.scale}x): {o.scale}x does not fit on the "
                  f"{self.screen.width}x{self.screen.height} screen beside the emulator", file=sys.stderr)
        if o.on_top:
            print(f"live: {display.on_top_note}", file=sys.stderr)
        threads = [threading.Thread(target=self.worker, name="capture+colorize", daemon=True)]
        if self.source is not None:
            threads.append(threading.Thread(target=self.tracker, name="tracker", daemon=True))
        for t in threads:
            t.start()

        view = self.view
        relayout = False
        src_now = self.source.rect if self.source is not None else self.rect
        shown: np.ndarray | None = None
        last: Colored | None = None
        start = time.perf_counter()
        self.cpu_start = time.process_time()
        period = 1.0 / o.fps
        try:
            while not self.stop.is_set():
                if o.seconds is not None and time.perf_counter() - start >= o.seconds:
                    self.finish(f"ran for {o.seconds:g} s")
                    break
                ev = display.poll()
                if "quit" in ev.actions:
                    self.finish("window closed by the user")
                    break
                changed = view.handle(ev.actions)
                redraw = "redraw" in changed
                relayout = relayout or "layout" in changed
                if "model" in changed:
                    self.want_model = view.model_idx  # loaded by the inference thread
                if recall_open and self.recall is not None and ("scheme" in changed or self.recall.matched):
                    recall_open = False  # the player's C wins; a match applies once
                    if "scheme" not in changed and self.recall.matched is not None:
                        view.scheme = self.recall.matched[1]  # the inference thread applies it, as C's
                        print(f"live: a game you left on a colour scheme before: painted by "
                              f"{scheme_label(self.colorizer, view.scheme)} (C changes it; --scheme 0: the model; "
                              "without --recognise: the model this once)", file=sys.stderr)
                if "scheme" in changed:
                    # the inference thread applies it (it also owns model switches: no race with M)
                    print(f"live: monochrome frames painted by {scheme_label(self.colorizer, view.scheme)}",
                          file=sys.stderr)
                if "screenshot" in ev.actions and shown is not None:
                    view.screenshot(shown, display.scale)
                with self.lock:
                    moved, self.moved_to = self.moved_to, None
                if moved is not None:
                    src_now = moved
                if moved is not None or relayout:
                    relayout = False
                    content = (2 * NATIVE[0] + SIDE_GAP, NATIVE[1]) if view.side else NATIVE
                    scale, pos = self._layout(src_now, content)
                    display.set_scale(scale)
                    display.move(*pos)
                # Show each colorized frame the moment it is ready (waiting up to a frame, so
                # keys stay responsive): a display on its own clock would add up to a frame of
                # latency, half a frame on average.
                item: Colored | None = self.colored.take(timeout=period)
                if item is not None:
                    last, redraw = item, True
                if redraw and last is not None:
                    t0 = time.perf_counter()
                    shown = view.compose(last.grey, last.colour)
                    display.show(shown, self._overlay_lines() if view.overlay else ())
                    now = time.perf_counter()
                    self.t_display.append(now - t0)
                    if item is not None:
                        self.latency.append(now - last.t_capture)
                        self.shown_at.append(now)
                        self.n_shown += 1
        finally:
            self.stop.set()
            for t in threads:
                t.join(timeout=2.0)
            self.finder.close()
            display.close()
        elapsed = time.perf_counter() - start
        stats = self._stats(elapsed)
        if self.recall is not None:
            title = self.source.title if self.source is not None else "a screen region"
            stats["recognised"] = self.recall.matched is not None
            stats["recall"] = self.recall.summary()
            # a failed session, or a capture thread still running, keeps nothing: the pick stays as it was
            ended = not self.failed and not any(t.is_alive() for t in threads)
            stats["scheme_remembered"] = (self.recall.save(self.picks, view.scheme or None, title)
                                          if ended else None)
        if o.stats_json is not None:
            atomic_write_json(o.stats_json, stats)
        return stats

    def _layout(self, src: Rect, content: tuple[int, int]) -> tuple[int, tuple[int, int]]:
        """Scale and top-left of our window for ``content`` (native w, h): it always fits the screen.

        Over the source: its top-left.  Beside it: right of it, else left, else below, else
        above, at the largest scale up to ``--scale`` that fits there; where even 1x fits nowhere
        beside it, the largest scale that fits the screen at all, pushed inside the screen.  We
        place the window ourselves (``SDL_VIDEO_WINDOW_POS`` and moves), so this works the same
        with no window manager at all.
        """
        scr = self.screen
        gap = 8
        cw, ch = content

        def inside(x: int, y: int, w: int, h: int) -> bool:
            return scr.x <= x and scr.y <= y and x + w <= scr.x + scr.width and y + h <= scr.y + scr.height

        for scale in range(max(1, self.opts.scale), 0, -1):
            w, h = cw * scale, ch * scale
            if self.opts.position == "over":
                spots = [(src.x, src.y)]
            else:
                ya = min(max(src.y, scr.y), scr.y + scr.height - h)  # beside, slid up to fit the screen's height
                xa = min(max(src.x, scr.x), scr.x + scr.width - w)
                spots = [(src.x + src.width + gap, ya), (src.x - gap - w, ya),
                         (xa, src.y + src.height + gap), (xa, src.y - gap - h)]
            for x, y in spots:
                if inside(x, y, w, h):
                    return scale, (x, y)
        for scale in range(max(1, self.opts.scale), 0, -1):
            w, h = cw * scale, ch * scale
            if w <= scr.width and h <= scr.height or scale == 1:
                x = min(max(src.x + src.width + gap, scr.x), scr.x + max(scr.width - w, 0))
                y = min(max(src.y, scr.y), scr.y + max(scr.height - h, 0))
                return scale, (x, y)
        raise AssertionError("unreachable")

    def _overlay_lines(self) -> list[str]:
        recent = self.shown_at[-61:]
        fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
        lat = float(np.median(self.latency[-60:])) * 1000 if self.latency else None
        col = float(np.median(self.t_colorize[-60:])) * 1000 if self.t_colorize else None
        return self.view.overlay_lines(fps, lat, col, f"captured {self.n_captured}  shown {self.n_shown}  "
                                                      f"dropped {self.colored.dropped}")

    def _stats(self, elapsed: float) -> dict[str, Any]:
        src: dict[str, Any]
        if self.source is not None:
            src = {"kind": "window", "title": self.source.title, "id": hex(self.source.id)}
        else:
            src = {"kind": "region"}
        if self.rect is not None:
            src["rect"] = [self.rect.x, self.rect.y, self.rect.width, self.rect.height]
        return {
            "source": src,
            "screen_detection": self.finder.detected,
            "screen_found_after_s": None if self.finder.found_after is None else round(self.finder.found_after, 3),
            "process_cpu_s": round(time.process_time() - self.cpu_start, 3),
            "model": self.view.model,
            "scheme": self.view.scheme or None,  # the colour scheme on screen at the end (None: the model)
            "seconds": round(elapsed, 3),
            "target_fps": round(self.opts.fps, 4),
            "fps": round(self.n_shown / elapsed, 2) if elapsed > 0 else None,
            "capture_fps": round(self.n_captured / elapsed, 2) if elapsed > 0 else None,
            "frames": self.n_shown,
            "frames_captured": self.n_captured,
            "frames_colorized": self.n_colored,
            "frames_reused": self.same.reused,  # identical to the frame before: its colour shown again
            "dropped": {"before_display": self.colored.dropped},
            "stages": {"capture": stage_stats(self.t_capture), "detect_sample": stage_stats(self.t_detect),
                       "colorize": stage_stats(self.t_colorize), "display": stage_stats(self.t_display),
                       "colorize_new_frames": stage_stats(self.t_colorize_new)},
            "capture_to_display": stage_stats(self.latency),
            "engine_timings": engine_timings(self.colorizer),
            "stop_reason": self.stop_reason,
            "errors": self.errors[-5:],
        }


def run_live(opts: LiveOptions) -> dict[str, Any]:
    """Run the live filter until --seconds pass, the user quits, or the emulator window closes.

    Returns the statistics (also written to ``opts.stats_json``).  A failure inside a worker
    thread (e.g. a model that cannot be loaded) is raised as :class:`UserError` after cleanup.
    """
    check_scheme(opts.scheme or None)  # a bad --scheme is said before any window is searched for
    session = LiveSession(opts)
    # SDL turns SIGTERM and SIGINT into a window-close event, which would be reported as "window
    # closed by the user"; with our own handlers installed first, SDL leaves them alone.
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda n, _f: session.finish(f"stopped by {signal.Signals(n).name}"))
    try:
        stats = session.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if getattr(session, "failed", False):
        raise UserError(session.stop_reason)
    print(f"live: {session.stop_reason}", file=sys.stderr)
    return stats
