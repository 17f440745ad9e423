"""``retrocolor play ROM``: run a Game Boy ROM in PyBoy and show it colorized, frame by frame.

PyBoy runs with no window of its own (``window="null"``) in DMG mode; each frame is taken straight
from its screen buffer (no screen capture, no scaling loss), colorized, and shown in our pygame
window at the Game Boy's 59.73 fps with a precise pacer.  The keyboard drives the emulator:
arrows = d-pad, Z = A, X = B, Enter = Start, Backspace or right Shift = Select.

``--headless --frames N --record OUT.mp4`` runs as fast as it can with no window, for scripts and
tests.  ROM files are checked (size, header checksum, cartridge type) before PyBoy sees them, so a
wrong file gives one clear line instead of an emulator crash.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from capture.rom import validate_rom
from realtime import picks
from realtime.display import GB_FPS, KEY_HELP, Display, Pacer, can_open_window, side_by_side, stage_stats
from realtime.viewer import Viewer, engine_timings, make_colorizer, model_names, scheme_count, scheme_label
from utils.errors import UserError
from utils.fsio import atomic_path, atomic_write_json
from utils.geometry import check_scale

PLAY_KEY_HELP = "game keys: arrows d-pad, Z = A, X = B, Enter = Start, Backspace or right Shift = Select; " + KEY_HELP


@dataclass
class PlayOptions:
    """Options of :func:`play` (the CLI flags of ``retrocolor play``)."""

    model: str | None = None
    headless: bool = False
    frames: int | None = None
    seconds: float | None = None
    record: Path | None = None
    scale: int = 3
    side_by_side: bool = False
    title: str = "retrocolor play"
    last_png: Path | None = None
    stats_json: Path | None = None
    smoothing: float = 0.0
    scheme: int | None = None  # a colour scheme (1-based); 0: the model; None: the one remembered, else the model
    remember: bool = False  # start with the scheme remembered for this cartridge, keep the one it ends on
    # (the CLI's windowed sessions; a headless run or a library call depends on no hidden state)
    threads: int = 1
    skip_frames: int = 0  # emulate this many frames first, unseen (the demo skips the boot animation)


@dataclass
class PlayResult:
    """What a :func:`play` run did."""

    frames: int
    seconds: float
    model: str
    video: Path | None = None
    png: Path | None = None
    stats: dict = field(default_factory=dict)

    def summary(self) -> str:
        s = self.stats
        line = (f"play: {self.frames} frames in {self.seconds:.2f} s ({s.get('fps', 0):.1f} fps, "
                f"target {GB_FPS:.2f}, pacing {'on' if s.get('pacing') else 'off'}), model {self.model}"
                f"{', colour scheme ' + str(s['scheme']) if s.get('scheme') else ''}; "
                f"colorize p50 {s['stages']['colorize']['p50_ms']} ms")
        if self.video:
            line += f"\nvideo: {self.video}"
        if self.png:
            line += f"\nlast frame (grey | colour): {self.png}"
        return line


# --------------------------------------------------------------------------- the emulator loop

def _pygame_buttons() -> dict[int, str]:
    import pygame

    return {pygame.K_UP: "up", pygame.K_DOWN: "down", pygame.K_LEFT: "left", pygame.K_RIGHT: "right",
            pygame.K_z: "a", pygame.K_x: "b", pygame.K_RETURN: "start", pygame.K_KP_ENTER: "start",
            pygame.K_BACKSPACE: "select", pygame.K_RSHIFT: "select"}


def play(rom: str | Path, opts: PlayOptions) -> PlayResult:
    """Run ``rom`` in PyBoy through the colorizer; windowed with pacing, or headless as fast as possible."""
    info = validate_rom(rom)
    if info.cgb_flag == 0xC0:
        raise UserError(f"{rom} is a Game Boy Color-only game ({info.title!r}); it is already in colour")
    if opts.headless and opts.frames is None:
        raise UserError("--headless needs --frames N (how many frames to run)")
    check_scale(opts.scale, "--scale")
    if not opts.headless and not can_open_window():
        raise UserError("no display: DISPLAY is not set; use --headless --frames N --record OUT.mp4 "
                        "(or run under Xvfb)")
    view = Viewer("play", model_names(opts.model), side=opts.side_by_side)
    colorizer = make_colorizer(view.model, threads=opts.threads, smoothing=opts.smoothing, scheme=opts.scheme or None)
    view.scheme, view.scheme_count = opts.scheme or 0, scheme_count(colorizer, "play")
    kept = None
    if opts.remember and view.scheme_count:
        kept = picks.PicksFile("play", picks.scheme_games(colorizer.schemes))
        key = picks.rom_key(rom)
        n = kept.scheme_for(key) if opts.scheme is None else None
        if n:
            colorizer.scheme = view.scheme = n
            print(f"play: monochrome frames painted by {scheme_label(colorizer)}: remembered for this "
                  "cartridge (--scheme 0: the model; --no-remember: this once)", file=sys.stderr)

    import cv2

    with warnings.catch_warnings():
        # pysdl2 announces which SDL2 binaries it found, on every start; players need not see it.
        warnings.filterwarnings("ignore", message="Using SDL2 binaries", category=UserWarning)
        from pyboy import PyBoy

    try:
        pyboy = PyBoy(str(rom), window="null", sound_emulated=False, cgb=False, log_level="ERROR")
    except Exception as e:  # noqa: BLE001 - PyBoy raises its own exception types for bad cartridges
        raise UserError(f"PyBoy cannot run {rom}: {e}") from None

    if opts.skip_frames > 0:
        pyboy.tick(opts.skip_frames, False)
    display = None
    buttons: dict[int, str] = {}
    if not opts.headless:
        display = Display(opts.title, (160 * (2 if opts.side_by_side else 1), 144), opts.scale)
        buttons = _pygame_buttons()
        print(PLAY_KEY_HELP, file=sys.stderr)
    pacer = Pacer(GB_FPS) if display is not None else None

    t_emu: list[float] = []
    t_col: list[float] = []
    t_show: list[float] = []
    t_rec: list[float] = []
    intervals: list[float] = []
    frames = 0
    last_grey = last_colour = None
    video_path = None
    start = time.perf_counter()
    last_flip = None
    with contextlib.ExitStack() as stack:
        stack.callback(pyboy.stop, False)
        tmp_video = stack.enter_context(atomic_path(opts.record, suffix=".mp4")) if opts.record else None
        writer = None
        try:
            while True:
                if opts.frames is not None and frames >= opts.frames:
                    break
                if opts.seconds is not None and time.perf_counter() - start >= opts.seconds:
                    break
                t0 = time.perf_counter()
                if not pyboy.tick():
                    break  # the emulator asked to stop
                screen = pyboy.screen.ndarray  # (144, 160, 4) RGBA; grey in DMG mode
                grey = np.ascontiguousarray(screen[:, :, :3])
                t1 = time.perf_counter()
                colour = colorizer.colorize(grey) if view.needs_colour() or tmp_video is not None else grey
                t2 = time.perf_counter()
                t_emu.append(t1 - t0)
                t_col.append(t2 - t1)
                last_grey, last_colour = grey, colour
                shown = view.compose(grey, colour)
                if tmp_video is not None:
                    rec = side_by_side(grey, colour) if opts.side_by_side else colour
                    rec = cv2.resize(rec, (rec.shape[1] * opts.scale, rec.shape[0] * opts.scale),
                                     interpolation=cv2.INTER_NEAREST)
                    if writer is None:
                        writer = cv2.VideoWriter(str(tmp_video), cv2.VideoWriter_fourcc(*"mp4v"), GB_FPS,
                                                 (rec.shape[1], rec.shape[0]))
                        if not writer.isOpened():
                            raise UserError(f"cannot write video {opts.record} (OpenCV mp4v encoder unavailable)")
                    writer.write(cv2.cvtColor(rec, cv2.COLOR_RGB2BGR))
                    t_rec.append(time.perf_counter() - t2)
                frames += 1
                if display is not None:
                    ev = display.poll()
                    for k in ev.keys:
                        b = buttons.get(k.key)
                        if b:
                            (pyboy.button_press if k.down else pyboy.button_release)(b)
                    changed = view.handle(ev.actions)
                    if "quit" in changed:
                        break
                    if "model" in changed:
                        colorizer = make_colorizer(view.model, threads=opts.threads, smoothing=opts.smoothing,
                                                   scheme=view.scheme or None)
                        print(f"play: model {view.model}", file=sys.stderr)
                    if "scheme" in changed:
                        colorizer.scheme = view.scheme or None  # the next frame gets it
                        print(f"play: monochrome frames painted by {scheme_label(colorizer)}", file=sys.stderr)
                    if changed & {"redraw", "model", "scheme"}:
                        shown = view.compose(grey, colour)
                    if "screenshot" in ev.actions:
                        view.screenshot(shown, display.scale)
                    lines: list[str] = []
                    if view.overlay and intervals:
                        fps = 1.0 / max(float(np.mean(intervals[-60:])), 1e-9)
                        lines = view.overlay_lines(fps, None, float(np.mean(t_col[-60:])) * 1000)
                    assert pacer is not None
                    pacer.wait()
                    t3 = time.perf_counter()
                    display.show(shown, lines)
                    now = time.perf_counter()
                    t_show.append(now - t3)
                    if last_flip is not None:
                        intervals.append(now - last_flip)
                    last_flip = now
            if writer is not None:
                writer.release()
                writer = None
                video_path = opts.record
        finally:
            if writer is not None:
                writer.release()
            if display is not None:
                display.close()
    elapsed = time.perf_counter() - start
    png = None
    if opts.last_png is not None and last_grey is not None and last_colour is not None:
        from utils.images import write_png

        sbs = side_by_side(last_grey, last_colour)
        write_png(opts.last_png, np.repeat(np.repeat(sbs, opts.scale, 0), opts.scale, 1))
        png = opts.last_png
    stats = {
        "rom": str(rom), "title": info.title, "model": view.model, "scheme": view.scheme or None, "frames": frames,
        "seconds": round(elapsed, 3), "fps": round(frames / elapsed, 2) if elapsed > 0 else None,
        "target_fps": round(GB_FPS, 4), "pacing": pacer is not None, "headless": opts.headless,
        "mean_frame_interval_ms": round(float(np.mean(intervals)) * 1000, 3) if intervals else None,
        "frame_interval_p99_ms": round(float(np.percentile(intervals, 99)) * 1000, 3) if intervals else None,
        "stages": {"emulate": stage_stats(t_emu), "colorize": stage_stats(t_col), "display": stage_stats(t_show),
                   "record": stage_stats(t_rec)},
        "engine_timings": engine_timings(colorizer),
        "video": str(video_path) if video_path else None,
    }
    if kept is not None:
        # the pick it ends on is the one to start with next time; ending on the model forgets it
        title = info.title or Path(rom).name
        changed = kept.keep(key, kept.entry(view.scheme, title) if view.scheme else None)
        stats["scheme_remembered"] = ("remembered" if view.scheme else "forgot") if changed else None
    if opts.stats_json is not None:
        atomic_write_json(opts.stats_json, stats)
    return PlayResult(frames=frames, seconds=elapsed, model=view.model, video=video_path, png=png, stats=stats)
