"""Video decoding for extraction: a validated, seek-aware reader over ``cv2.VideoCapture``.

``VideoReader(path)`` refuses, with one clear line each, a missing path, a directory, an empty
file, a file that is not a video, a truncated download and a video without frames, *before*
anything is written.  It then yields ``(frame_index, time_s, rgb)`` for a sorted list of frame
indices, choosing per gap between ``grab()`` (decode, skip the colour conversion) and a seek
(``CAP_PROP_POS_FRAMES``: jumps to the previous key frame, so it only pays off for long gaps).
FFmpeg's frame-accurate seek decodes from a key frame, so a frame read after a seek has exactly
the pixels it has when decoded sequentially (tested on H.264), which makes resumed extractions
identical to uninterrupted ones.
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

# FFmpeg's own log lines ("moov atom not found") would clutter our one-line errors.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

import cv2  # noqa: E402  (after the environment is set)
import numpy as np  # noqa: E402

from utils.errors import UserError  # noqa: E402

#: A gap of at least this many seconds between wanted frames is crossed by seeking, not grabbing.
SEEK_SECONDS = 10.0


def _mp4_has_moov(path: Path) -> bool:
    """Walk the top-level MP4 boxes: is the ``moov`` index there?  (Absent: a truncated download.)"""
    size_total = path.stat().st_size
    pos = 0
    with open(path, "rb") as f:
        while pos + 8 <= size_total:
            f.seek(pos)
            size, kind = struct.unpack(">I4s", f.read(8))
            if size == 1:
                size = struct.unpack(">Q", f.read(8))[0]
            elif size == 0:
                size = size_total - pos
            if kind == b"moov":
                return pos + size <= size_total
            if size < 8:
                return False
            pos += size
    return False


class VideoReader:
    """A decoded video: ``fps``, ``frame_count``, ``width``, ``height``, ``duration``.

    Use as a context manager (or call :meth:`close`).  Frames come as RGB uint8 ``(H, W, 3)``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        p = Path(path)
        self.path = p
        if not p.exists():
            raise UserError(f"no such video file: {p}")
        if not p.is_file():
            raise UserError(f"{p} is not a file")
        if p.stat().st_size == 0:
            raise UserError(f"{p}: empty file (0 bytes), not a video")
        with contextlib.suppress(AttributeError, cv2.error):  # keep OpenCV's warnings off the terminal
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        self._cap = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG)
        if not self._cap.isOpened():
            self._cap.release()
            raise UserError(f"{p}: not a readable video ({self._why_unreadable()})")
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if count <= 0 or self.width <= 0 or self.height <= 0:
            self.close()
            raise UserError(f"{p}: the video has no frames")
        if not math.isfinite(fps) or fps <= 0 or fps > 1000:
            self.close()
            raise UserError(f"{p}: the video reports no usable frame rate ({fps})")
        self.fps = fps
        self.frame_count = count
        self._pos = 0  # index of the frame the next grab() returns
        self._validate_ends()

    # ------------------------------------------------------------------ validation
    def _why_unreadable(self) -> str:
        with open(self.path, "rb") as f:
            head = f.read(12)
        if head[4:8] == b"ftyp":
            if _mp4_has_moov(self.path):
                return "an MP4/MOV with no decodable video stream: zero-length or corrupt"
            return "an MP4/MOV whose index (moov box) is missing: truncated or still downloading?"
        if head[:4] == b"\x1a\x45\xdf\xa3":
            return "a Matroska/WebM file that cannot be decoded: truncated?"
        return "unknown or corrupt format"

    def _validate_ends(self) -> None:
        """Decode the first and the last frame now, so a truncated file fails before any work."""
        if self._read_at(0) is None:
            self.close()
            raise UserError(f"{self.path}: the video has no decodable frames")
        # Container frame counts can be estimates (WebM); accept the last frame within 1 s of it.
        for back in (1, 2, int(round(self.fps)) + 1):
            idx = self.frame_count - back
            if idx <= 0:
                break
            if self._read_at(idx) is not None:
                return
        self.close()
        raise UserError(
            f"{self.path}: truncated video: it declares {self.frame_count} frames but the last ones cannot be "
            "decoded (re-download it)"
        )

    def _read_at(self, index: int) -> np.ndarray | None:
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = self._cap.read()
        self._pos = index + 1 if ok else -1  # -1: position unknown, seek before the next read
        return frame if ok and frame is not None else None

    # ------------------------------------------------------------------ properties
    @property
    def duration(self) -> float:
        """Length in seconds (``frame_count / fps``)."""
        return self.frame_count / self.fps

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return self.width, self.height

    def time_of(self, index: int) -> float:
        """Presentation time of frame ``index`` in seconds (constant frame rate assumed)."""
        return index / self.fps

    def sample_indices(self, every_seconds: float, start: float | None = None, end: float | None = None) -> list[int]:
        """Frame indices at ``start, start+S, start+2S, ... < end`` (rounded to the nearest frame).

        Times are computed as ``start + k*S`` (no accumulated float error), so ``S = 0.5`` at 30 fps
        gives exactly every 15th frame.
        """
        if every_seconds <= 0:
            raise UserError("--every-seconds must be positive")
        t0 = 0.0 if start is None else float(start)
        t1 = self.duration if end is None else min(float(end), self.duration)
        if t0 >= self.duration:
            raise UserError(f"--start {t0:g}s is past the end of the video ({self.duration:.2f}s)")
        if t1 <= t0:
            raise UserError(f"--end {t1:g}s must be after --start {t0:g}s")
        out: list[int] = []
        k = 0
        while True:
            t = t0 + k * every_seconds
            if t >= t1 - 1e-9:
                break
            idx = int(round(t * self.fps))
            if idx >= self.frame_count:
                break
            if not out or idx > out[-1]:
                out.append(idx)
            k += 1
        return out

    # ------------------------------------------------------------------ reading
    def frame_at(self, index: int) -> np.ndarray:
        """One frame by index (a seek); :class:`UserError` if it cannot be decoded."""
        frame = self._read_at(index)
        if frame is None:
            raise UserError(f"{self.path}: frame {index} cannot be decoded (truncated or corrupt video)")
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def frames(self, indices: Iterable[int]) -> Iterator[tuple[int, float, np.ndarray]]:
        """Yield ``(index, time_s, rgb)`` for increasing ``indices``, grabbing or seeking per gap."""
        seek_gap = max(2, int(SEEK_SECONDS * self.fps))
        for idx in indices:
            if idx < 0 or idx >= self.frame_count:
                raise ValueError(f"frame index {idx} out of range 0..{self.frame_count - 1}")
            if self._pos < 0 or idx < self._pos or idx - self._pos >= seek_gap:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, idx)
                self._pos = idx
            while self._pos < idx:
                if not self._cap.grab():
                    raise UserError(f"{self.path}: decoding stopped at frame {self._pos} of {self.frame_count} "
                                    "(truncated or corrupt video)")
                self._pos += 1
            ok, frame = self._cap.read()
            if not ok or frame is None:
                raise UserError(f"{self.path}: frame {idx} of {self.frame_count} cannot be decoded "
                                "(truncated or corrupt video)")
            self._pos = idx + 1
            yield idx, self.time_of(idx), cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def spread_frames(self, count: int, start: float | None = None, end: float | None = None) -> list[np.ndarray]:
        """``count`` frames spread evenly over ``[start, end)`` (for screen detection)."""
        lo = 0 if start is None else min(self.frame_count - 1, int(start * self.fps))
        hi = self.frame_count if end is None else max(lo + 1, min(self.frame_count, int(end * self.fps)))
        n = max(1, min(count, hi - lo))
        idx = sorted({int(v) for v in np.linspace(lo, hi - 1, n + 2)[1:-1]} or {lo})
        return [rgb for _, _, rgb in self.frames(idx)]

    def close(self) -> None:
        """Release the decoder."""
        cap = getattr(self, "_cap", None)
        if cap is not None:
            cap.release()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
