"""Small helpers shared by every stage: one-line errors, atomic writes, safe image I/O, progress bars.

Every stage may import ``utils``; ``utils`` imports no stage, so the one-way data flow
(capture -> dataset -> models -> weights -> realtime) is kept.
"""

import os

# FFmpeg (inside OpenCV) prints its own lines, e.g. "[mov,mp4,...] moov atom not found", to stderr
# for a broken video; every command reports such a file in one UserError line instead.  OpenCV
# reads this when it first opens a video, so setting it here (every command imports utils first)
# covers extract, colorize and live alike.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

from utils.errors import UserError  # noqa: E402
from utils.fsio import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text  # noqa: E402

__all__ = ["UserError", "atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"]
