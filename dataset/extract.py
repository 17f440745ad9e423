"""``retrocolor extract``: a longplay video -> a clean dataset of native 160x144 frames.

Layout of ``DATASET``::

    extract.json     settings + the screen rectangle, written atomically before any frame
    frames/NNNNNNN.png   one native frame, named by its video frame index (sorts in play order)
    manifest.jsonl   one JSON record per kept frame (see dataset.manifest)

Pipeline: validate the video (capture.video) -> find the screen (capture.screen.detect_screen,
or ``--crop``) -> for every sampled frame: resample to the native grid -> drop junk (blank,
fade, near-duplicate by 64-bit DCT perceptual hash) -> write the PNG, then its manifest line.

Resuming.  Every decision is a pure function of the frame and of state that the manifest holds
(the hashes of the last :data:`DEDUPE_WINDOW` kept frames), and the screen rectangle is read
back from ``extract.json`` instead of being detected again.  A re-run therefore skips every
frame index up to the last one in the manifest, cuts a torn last line, deletes PNGs that no
manifest line names (a kill between PNG and line), and then produces exactly the files and
lines an uninterrupted run would have.  A re-run with *different* settings (sampling, range,
crop, dedupe distance, another video) is refused with a clear error rather than mixing two
datasets in one folder: use a new ``-o`` folder or delete the old one.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from capture.screen import NativeSampler, ScreenRect, detect_screen, fit_kernel
from capture.video import VideoReader
from dataset.manifest import MANIFEST_NAME, append_record, make_record, repair_manifest
from utils.errors import UserError
from utils.fsio import atomic_write_json
from utils.geometry import NATIVE_SIZE
from utils.images import read_rgb, write_png
from utils.progress import progress

SETTINGS_NAME = "extract.json"
FRAMES_DIR = "frames"
FORMAT_VERSION = 1
#: How many recent kept frames a new frame is compared with (a static title card, or a scene
#: the game alternates between, is dropped even when other frames came in between).
DEDUPE_WINDOW = 8
#: A hash-near frame is still kept when its colours differ this much (mean absolute difference of
#: 20x18 colour thumbnails, 0..255): pHash is grey and contrast-normalised, blind to palette swaps
#: and inversions, which are exactly what a colorization dataset needs.
DEDUPE_COLOUR_MAD = 10.0
#: Frames sampled for screen detection (spread over the chosen time range).
DETECT_FRAMES = 32
#: A frame whose luma spread (0.1th..99.9th percentile) is at most this is "blank".
BLANK_SPREAD = 12
#: Nothing brighter than this (99.9th percentile of luma): a frame faded to black.
FADE_DARK = 40
#: Nothing darker than this (0.1th percentile of luma): a frame faded to white.
FADE_BRIGHT = 215


# --------------------------------------------------------------------------- frame tests
def phash(rgb: np.ndarray) -> int:
    """64-bit DCT perceptual hash (the classic pHash: 32x32 grey, DCT, 8x8 low band > median)."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    small = cv2.resize(gray.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:8, :8].ravel()
    bits = low > np.median(low)
    return int(np.packbits(bits).view(">u8")[0])


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes."""
    return int((a ^ b).bit_count())


def colour_thumb(rgb: np.ndarray) -> np.ndarray:
    """20x18 mean-colour thumbnail (8x8 native blocks), the colour guard of the dedupe test."""
    return cv2.resize(rgb.astype(np.float32), (20, 18), interpolation=cv2.INTER_AREA)


def is_duplicate(h: int, thumb: np.ndarray, window: deque[tuple[int, np.ndarray]], distance: int) -> bool:
    """Near a recent kept frame in structure (pHash within ``distance``) *and* in colour."""
    if distance < 0:
        return False
    return any(hamming(h, ph) <= distance and float(np.abs(thumb - pt).mean()) <= DEDUPE_COLOUR_MAD
               for ph, pt in window)


def junk_reason(rgb: np.ndarray) -> str | None:
    """``"blank"``, ``"fade"`` or None (a real frame).  Percentiles ignore a few stray pixels."""
    y = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    lo, hi = np.percentile(y, (0.1, 99.9))
    if hi - lo <= BLANK_SPREAD:
        return "blank"
    if hi <= FADE_DARK or lo >= FADE_BRIGHT:
        return "fade"
    return None


# --------------------------------------------------------------------------- report
@dataclass
class ExtractReport:
    """What one ``extract`` call did; :meth:`summary` is what the CLI prints."""

    video: Path
    out_dir: Path
    size: tuple[int, int]
    fps: float
    duration: float
    rect: ScreenRect
    rect_source: str
    every_seconds: float
    start: float
    end: float
    planned: int
    already_done: int = 0
    resumed_records: int = 0
    sampled: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: {"blank": 0, "fade": 0, "duplicate": 0})
    total_kept: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """A few human-readable lines."""
        w, h = self.size
        lines = [
            f"{self.video.name}: {w}x{h}, {self.fps:g} fps, {self.duration:.1f} s; "
            f"screen {self.rect.describe()}, {self.rect_source}",
        ]
        if self.already_done:
            lines.append(f"resumed: {self.already_done} of {self.planned} sampled frames were already done "
                         f"({self.resumed_records} kept)")
        drops = ", ".join(f"{k} {v}" for k, v in self.dropped.items())
        lines.append(f"sampled {self.sampled} frames every {self.every_seconds:g} s from {self.start:g} s to "
                     f"{self.end:g} s: kept {self.kept}, dropped {sum(self.dropped.values())} ({drops})")
        lines.append(f"dataset {self.out_dir}: {self.total_kept} frames in {FRAMES_DIR}/ + {MANIFEST_NAME} "
                     f"({self.seconds:.1f} s)")
        return "\n".join(lines)


# --------------------------------------------------------------------------- helpers
def frame_name(index: int) -> str:
    """File name of video frame ``index``: zero-padded so names sort in play order."""
    return f"{index:07d}.png"


def _settings(video: Path, reader: VideoReader, every_seconds: float, start: float, end: float,
              crop: tuple[int, int, int, int] | None, dedupe_distance: int) -> dict[str, Any]:
    """The settings a dataset is tied to (a re-run must match them to resume)."""
    return {
        "version": FORMAT_VERSION,
        "source": video.name,
        "video": {"size": [reader.width, reader.height], "fps": round(reader.fps, 6),
                  "frame_count": reader.frame_count},
        "every_seconds": every_seconds,
        "start": start,
        "end": end,
        "crop_arg": None if crop is None else [int(v) for v in crop],
        "dedupe_distance": int(dedupe_distance),
        "dedupe_window": DEDUPE_WINDOW,
        "dedupe_colour_mad": DEDUPE_COLOUR_MAD,
    }


def _check_output(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} exists and is not a directory")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"cannot create {out}: {parent} is not a directory")
            break


def _load_settings(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path} is unreadable ({e}); delete the dataset folder to start again") from None
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION or "screen" not in data:
        raise UserError(f"{path} is not an extract settings file of this retrocolor version")
    return data


def _diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = [k for k in new if k != "screen" and old.get(k) != new[k]]
    return "; ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in keys)


def _clean_frames_dir(frames_dir: Path, keep: set[str]) -> int:
    """Delete PNGs no manifest line names and temporary files left by a kill; return how many."""
    removed = 0
    if not frames_dir.is_dir():
        return 0
    for p in frames_dir.iterdir():
        if p.is_file() and (p.name.startswith(".") or (p.suffix == ".png" and p.name not in keep)):
            try:
                p.unlink()
            except OSError as e:
                raise UserError(f"cannot remove stale file {p}: {e.strerror or e}", 3) from None
            removed += 1
    return removed


# --------------------------------------------------------------------------- main entry
def extract(video: str | Path, out_dir: str | Path, *, every_seconds: float = 0.5, start: float | None = None,
            end: float | None = None, crop: tuple[int, int, int, int] | None = None,
            dedupe_distance: int = 4) -> ExtractReport:
    """Extract native frames from ``video`` into ``out_dir`` (resumable; see module docstring).

    ``dedupe_distance`` < 0 disables near-duplicate dropping.  Raises :class:`UserError` for bad
    input, leaving no partial files.
    """
    t_begin = time.monotonic()
    video, out = Path(video), Path(out_dir)
    _check_output(out)
    settings_path, manifest_path, frames_dir = out / SETTINGS_NAME, out / MANIFEST_NAME, out / FRAMES_DIR

    with VideoReader(video) as reader:
        indices = reader.sample_indices(every_seconds, start, end)
        t0 = 0.0 if start is None else float(start)
        t1 = reader.duration if end is None else min(float(end), reader.duration)
        settings = _settings(video, reader, every_seconds, t0, t1, crop, dedupe_distance)

        if settings_path.exists():
            stored = _load_settings(settings_path)
            changed = _diff(stored, settings)
            if changed:
                raise UserError(f"{out} holds an extraction with other settings ({changed}); "
                                "use another -o folder or delete it to start again")
            # (no "kernel": a dataset from before kernels were fitted, which sampled as "nearest")
            rect = ScreenRect(*stored["screen"]["rect"], score=float(stored["screen"].get("score", 0.0)),
                              kernel=str(stored["screen"].get("kernel", "nearest")))
            rect_source = f"{stored['screen']['source']}, reused from {SETTINGS_NAME}"
        else:
            if manifest_path.exists() or (frames_dir.is_dir() and any(frames_dir.iterdir())):
                raise UserError(f"{out} has frames or a manifest but no {SETTINGS_NAME}; "
                                "use another -o folder or delete it")
            if crop is not None:
                x, y, w, h = crop
                if x + w > reader.width or y + h > reader.height:
                    raise UserError(f"--crop {x},{y},{w},{h} does not fit inside the "
                                    f"{reader.width}x{reader.height} video")
                rect, rect_source = ScreenRect.from_crop(crop), "--crop"
                rect = rect.with_kernel(fit_kernel(reader.spread_frames(DETECT_FRAMES, t0, t1), rect)[0])
            else:
                rect = detect_screen(reader.spread_frames(DETECT_FRAMES, t0, t1))
                rect_source = f"detected, grid score {rect.score:.2f}"
            # Round-trip through the stored precision, so a resumed run samples identically.
            rect = ScreenRect(*rect.as_list(), score=round(rect.score, 4), kernel=rect.kernel)
            settings["screen"] = {"rect": rect.as_list(), "score": rect.score, "kernel": rect.kernel,
                                  "source": "--crop" if crop is not None else "detected"}
            atomic_write_json(settings_path, settings)

        try:
            frames_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create {frames_dir}: {e.strerror or e}", 3) from None
        manifest = repair_manifest(manifest_path)
        records = manifest.records
        _clean_frames_dir(frames_dir, {Path(r["file"]).name for r in records})
        last_done = max((int(r["frame_index"]) for r in records), default=-1)
        window: deque[tuple[int, np.ndarray]] = deque(maxlen=DEDUPE_WINDOW)
        for r in records[-DEDUPE_WINDOW:]:  # the dedupe state, rebuilt from the kept frames themselves
            window.append((int(r["hash"], 16), colour_thumb(read_rgb(out / r["file"]))))
        todo = [i for i in indices if i > last_done]

        report = ExtractReport(
            video=video, out_dir=out, size=(reader.width, reader.height), fps=reader.fps,
            duration=reader.duration, rect=rect, rect_source=rect_source, every_seconds=every_seconds,
            start=t0, end=t1, planned=len(indices), already_done=len(indices) - len(todo),
            resumed_records=len(records), total_kept=len(records),
        )
        sampler = NativeSampler(rect, (reader.height, reader.width), NATIVE_SIZE)
        crop_list = rect.as_list()
        bar = progress(total=len(todo), unit="frame", desc="extract")
        try:
            for idx, t, rgb in reader.frames(todo):
                native = sampler(rgb)
                report.sampled += 1
                bar.update(1)
                reason = junk_reason(native)
                h, thumb = phash(native), colour_thumb(native)
                if reason is None and is_duplicate(h, thumb, window, dedupe_distance):
                    reason = "duplicate"
                if reason is not None:
                    report.dropped[reason] += 1
                    continue
                name = frame_name(idx)
                png = frames_dir / name
                write_png(png, native)
                try:
                    append_record(manifest_path, make_record(
                        file=f"{FRAMES_DIR}/{name}", source=video.name, frame_index=idx, timestamp=t,
                        phash=f"{h:016x}", crop=crop_list))
                except UserError:
                    png.unlink(missing_ok=True)  # never leave a PNG without its line
                    raise
                window.append((h, thumb))
                report.kept += 1
                report.total_kept += 1
        finally:
            bar.close()
    report.seconds = time.monotonic() - t_begin
    return report
