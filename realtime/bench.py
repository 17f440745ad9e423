"""``retrocolor bench``: per-stage latency and sustained fps of the live pipeline, per model.

One iteration is what the live filter does for one frame: **capture** (an ``mss`` grab of the
screen region showing the game), **preprocess / inference / postprocess** (the engine's own
timers, :attr:`realtime.engine.Colorizer.timings`) and **display** (pygame blit + display update
of the output area).  The game is played by the benchmark itself: a pygame window shows synthetic Game Boy frames (tiles
scrolling under a moving sprite, the 4 DMG shades) on its left half, the capture grabs that half,
and the colorized result is shown on the right half.

Where there is no display (no ``DISPLAY``, or ``SDL_VIDEODRIVER=dummy``) the capture stage
becomes a copy from an in-memory frame source and the window is SDL's dummy driver; the report
says so, because those two figures are then lower bounds.  Numbers are p50/p99 in milliseconds;
*latency* is capture-to-display (the sum of the stages) per frame; *fps* is frames over the
wall time of the whole loop, i.e. sustained throughput with nothing throttling it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from realtime.display import stages_line
from realtime.engine import NATIVE_H, NATIVE_W, Colorizer
from utils.errors import UserError
from utils.fsio import atomic_write_json
from utils.geometry import check_scale

STAGES = ("capture", "preprocess", "inference", "postprocess", "display")
DMG_GREYS = np.array([255, 170, 85, 0], np.uint8)


def game_frames(n: int = 120, seed: int = 0) -> np.ndarray:
    """``n`` grey 160x144 frames in the 4 DMG shades: a scrolling tile map and a moving sprite."""
    rng = np.random.default_rng(seed)
    tiles = rng.integers(0, 4, size=(24, 8, 8))
    tiles[0] = 0  # plenty of plain sky, as real games have
    tmap = rng.integers(0, 24, size=(NATIVE_H // 8, NATIVE_W // 8 + 1))
    tmap[: NATIVE_H // 16] = 0
    world = tiles[tmap].transpose(0, 2, 1, 3).reshape(NATIVE_H, NATIVE_W + 8)
    world = np.concatenate([world, world], axis=1)
    sprite = rng.integers(1, 4, size=(16, 16))
    out = np.empty((n, NATIVE_H, NATIVE_W), np.uint8)
    for i in range(n):
        idx = world[:, i % (NATIVE_W + 8): i % (NATIVE_W + 8) + NATIVE_W].copy()
        y, x = 60 + int(20 * np.sin(i / 9)), 20 + (i * 2) % 120
        idx[y:y + 16, x:x + 16] = sprite
        out[i] = DMG_GREYS[idx]
    return out


def _pct(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"p50": round(float(np.percentile(a, 50)), 3), "p99": round(float(np.percentile(a, 99)), 3)}


def _display_available() -> bool:
    driver = os.environ.get("SDL_VIDEODRIVER", "")
    return bool(os.environ.get("DISPLAY")) and driver not in ("dummy", "offscreen")


class _Window:
    """The benchmark's pygame window: game on the left, colorized output on the right."""

    def __init__(self, w: int, h: int, real: bool) -> None:
        if not real:
            os.environ["SDL_VIDEODRIVER"] = "dummy"
        else:
            os.environ.setdefault("SDL_VIDEO_WINDOW_POS", "0,0")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self.pg = pygame
        pygame.display.init()
        self.w, self.h = w, h
        self.surface = pygame.display.set_mode((2 * w, h))
        pygame.display.set_caption("retrocolor bench")
        self.driver = pygame.display.get_driver()

    def show_game(self, bgra: np.ndarray) -> None:
        img = self.pg.image.frombuffer(bgra, (self.w, self.h), "BGRA")
        self.surface.blit(img, (0, 0))
        self.pg.display.update(self.pg.Rect(0, 0, self.w, self.h))
        self.pg.event.pump()

    def show_output(self, bgra: np.ndarray) -> None:
        img = self.pg.image.frombuffer(bgra, (self.w, self.h), "BGRA")
        self.surface.blit(img, (self.w, 0))
        self.pg.display.update(self.pg.Rect(self.w, 0, self.w, self.h))

    def close(self) -> None:
        self.pg.display.quit()


class _MemorySource:
    """Capture stand-in: copies the current frame, as a grab returns a fresh buffer."""

    note = "in-memory frames (no display to grab from)"

    def __init__(self) -> None:
        self.current: np.ndarray | None = None

    def grab(self) -> np.ndarray:
        assert self.current is not None
        return self.current.copy()

    def close(self) -> None:
        pass


class _MssSource:
    """Real capture: mss grabs the window's game half (located on screen by template matching)."""

    def __init__(self, window: _Window, first: np.ndarray) -> None:
        import cv2

        from capture.window import Rect, grab, open_mss

        self.sct = open_mss()
        self._grab = grab
        window.show_game(first)
        time.sleep(0.2)
        mon = self.sct.monitors[0]  # type: ignore[attr-defined]
        full = grab(self.sct, Rect(int(mon["left"]), int(mon["top"]), int(mon["width"]), int(mon["height"])))
        res = cv2.matchTemplate(full[:, :, :3], np.ascontiguousarray(first[:, :, :3]), cv2.TM_SQDIFF)
        _, _, loc, _ = cv2.minMaxLoc(res)
        x, y = loc
        got = full[y:y + first.shape[0], x:x + first.shape[1], :3]
        if got.shape != first[:, :, :3].shape or not np.array_equal(got, first[:, :, :3]):
            self.sct.close()  # type: ignore[attr-defined]
            raise UserError("the benchmark window is not visible on screen")
        self.rect = Rect(int(mon["left"]) + x, int(mon["top"]) + y, first.shape[1], first.shape[0])
        self.note = (f"mss grab of a {first.shape[1]}x{first.shape[0]} screen region "
                     f"(DISPLAY={os.environ.get('DISPLAY')})")

    def grab(self) -> np.ndarray:
        return self._grab(self.sct, self.rect)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sct.close()  # type: ignore[attr-defined]


def bench_model(path: str | os.PathLike[str], *, seconds: float = 5.0, max_frames: int | None = None,
                threads: int = 1, scale: int = 1, warmup: int = 20) -> dict[str, Any]:
    """Run the pipeline on one model; returns the JSON entry (fps, latency_ms, stages_ms, notes)."""
    import cv2

    col = Colorizer(path, threads=threads)
    grey = game_frames()
    frames = [cv2.cvtColor(np.ascontiguousarray(np.kron(g, np.ones((scale, scale), np.uint8))), cv2.COLOR_GRAY2BGRA)
              for g in grey]
    h, w = frames[0].shape[:2]
    real = _display_available()
    window = _Window(w, h, real)
    source: _MemorySource | _MssSource
    capture_note = _MemorySource.note
    if real:
        try:
            source = _MssSource(window, frames[0])
            capture_note = source.note
        except UserError as e:
            source = _MemorySource()
            capture_note = f"in-memory frames ({e})"
    else:
        source = _MemorySource()
    display_note = (f"pygame window ({window.driver})" if window.driver not in ("dummy", "offscreen")
                    else "pygame with SDL's dummy video driver (no window; blit cost only)")
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    latency: list[float] = []
    n = 0
    try:
        t_start = None
        i = 0
        while True:
            frame = frames[i % len(frames)]
            if isinstance(source, _MemorySource):
                source.current = frame
            window.show_game(frame)  # the "emulator" draws its next frame (not a pipeline stage)
            t0 = time.perf_counter()
            grabbed = source.grab()
            t1 = time.perf_counter()
            out = col.colorize(grabbed, output="bgra")
            t2 = time.perf_counter()
            window.show_output(out)
            t3 = time.perf_counter()
            i += 1
            if i <= warmup:
                continue
            if t_start is None:
                t_start = t0
            stages["capture"].append((t1 - t0) * 1e3)
            for k in ("preprocess", "inference", "postprocess"):
                stages[k].append(col.timings[k])
            stages["display"].append((t3 - t2) * 1e3)
            latency.append((t3 - t0) * 1e3)
            n += 1
            if (max_frames is not None and n >= max_frames) or (max_frames is None and t3 - t_start >= seconds):
                break
        wall = time.perf_counter() - (t_start or time.perf_counter())
    finally:
        source.close()
        window.close()
    return {
        "fps": round(n / wall, 2) if wall > 0 else 0.0,
        "latency_ms": _pct(latency),
        "stages_ms": {s: _pct(v) for s, v in stages.items()},
        "frames": n,
        "threads": threads,
        "input": f"{w}x{h} BGRA (DMG grey, {scale}x)",
        "capture": capture_note,
        "display": display_note,
        "model_path": str(col.path),
    }


def _targets(models: list[str] | None) -> list[tuple[str, Path]]:
    import weights

    out: list[tuple[str, Path]] = []
    if models:
        for m in models:
            p = weights.resolve(m)
            name = p.name[: -len(".onnx")] if p.name.endswith(".onnx") else p.stem
            out.append((name, p))
            twin = p.with_name(name + ".int8.onnx")
            if not name.endswith(".int8") and twin.is_file():
                out.append((name + ".int8", twin))
        return out
    rows = weights.list_models()
    if not rows:
        raise UserError("no shipped model in the weights folder; pass --model PATH.onnx")
    for row in rows:
        out.append((row["name"], row["path"]))
        if row["int8_path"] is not None:
            out.append((row["name"] + ".int8", row["int8_path"]))
    return out


@contextlib.contextmanager
def _sdl_env() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("SDL_VIDEODRIVER", "SDL_VIDEO_WINDOW_POS")}
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_bench(models: list[str] | None = None, *, seconds: float = 5.0, frames: int | None = None, threads: int = 1,
              scale: int = 1, json_path: str | os.PathLike[str] | None = None,
              log: Callable[[str], None] | None = print) -> dict[str, dict[str, Any]]:
    """Benchmark each model (shipped ones, or ``models``; int8 twins included); optional JSON file."""
    say = log or (lambda _m: None)
    if seconds <= 0:
        raise UserError("--seconds must be positive")
    if frames is not None and frames < 1:
        raise UserError("--frames must be at least 1")
    scale = check_scale(scale, "--input-scale")
    targets = _targets(models)
    results: dict[str, dict[str, Any]] = {}
    for name, path in targets:
        with _sdl_env():
            r = bench_model(path, seconds=seconds, max_frames=frames, threads=threads, scale=scale)
        results[name] = r
        say(format_result(name, r))
    if json_path is not None:
        atomic_write_json(json_path, results)
        say(f"wrote {json_path}")
    return results


def format_result(name: str, r: dict[str, Any]) -> str:
    """A few human-readable lines for one model."""
    return (f"{name}: {r['fps']:.1f} fps sustained, capture-to-display p50 {r['latency_ms']['p50']:.2f} ms, "
            f"p99 {r['latency_ms']['p99']:.2f} ms ({r['frames']} frames, {r['input']}, {r['threads']} thread(s))\n"
            f"  {stages_line(r['stages_ms'], STAGES)}\n"
            f"  capture: {r['capture']}; display: {r['display']}")
