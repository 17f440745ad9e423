"""Image reading and writing with OpenCV, hardened for files from strangers.

* Every image comes back as ``uint8`` RGB ``(H, W, 3)`` whatever it was on disk (grey, palette,
  16-bit, alpha), because every stage downstream expects exactly that.
* Dimensions are read from the file header *before* decoding, and images above
  :data:`MAX_PIXELS` are refused, so a decompression bomb is never decoded.
* Writes are atomic (temp file + rename), so a killed process never leaves a truncated PNG.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from utils.errors import UserError
from utils.fsio import atomic_path

#: Largest image we agree to decode (a 8K x 8K frame); a Game Boy frame is 23,040 pixels.
MAX_PIXELS = 8192 * 8192

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def _tiff_size(f: BinaryIO, head: bytes) -> tuple[int, int] | None:
    """Width and height from a TIFF's first IFD (tags 256/257, SHORT or LONG)."""
    end = "<" if head[:2] == b"II" else ">"
    f.seek(struct.unpack(end + "I", head[4:8])[0])
    count_b = f.read(2)
    if len(count_b) < 2:
        return None
    dims: dict[int, int] = {}
    for _ in range(min(struct.unpack(end + "H", count_b)[0], 4096)):
        entry = f.read(12)
        if len(entry) < 12:
            break
        tag, typ = struct.unpack(end + "HH", entry[:4])
        if tag in (256, 257):
            dims[tag] = struct.unpack(end + ("H" if typ == 3 else "I"), entry[8:10] if typ == 3 else entry[8:12])[0]
    return (int(dims[256]), int(dims[257])) if len(dims) == 2 else None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    """Width and height from a WebP's first chunk (lossy VP8, lossless VP8L or extended VP8X)."""
    kind = head[12:16]
    if kind == b"VP8 " and len(head) >= 30:
        w, h = struct.unpack("<HH", head[26:30])
        return int(w & 0x3FFF), int(h & 0x3FFF)
    if kind == b"VP8L" and len(head) >= 25:
        bits = struct.unpack("<I", head[21:25])[0]
        return int((bits & 0x3FFF) + 1), int(((bits >> 14) & 0x3FFF) + 1)
    if kind == b"VP8X" and len(head) >= 30:
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    return None


def header_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """Return ``(width, height)`` from a PNG/JPEG/BMP/TIFF/WebP header without decoding, else ``None``.

    TIFF and WebP matter as much as PNG: a 400 KB deflate-compressed TIFF can declare 20000x20000
    pixels and decode to 1.2 GB.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(32)
            if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
                w, h = struct.unpack(">II", head[16:24])
                return int(w), int(h)
            if head[:4] in (b"II*\0", b"MM\0*") and len(head) >= 8:
                return _tiff_size(f, head)
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                return _webp_size(head)
            if head[:2] == b"BM" and len(head) >= 26:
                w, h = struct.unpack("<ii", head[18:26])
                return abs(int(w)), abs(int(h))
            if head[:2] == b"\xff\xd8":
                f.seek(2)
                while True:
                    marker = f.read(2)
                    if len(marker) < 2 or marker[0] != 0xFF:
                        return None
                    if marker[1] in (0xD8, 0x01) or 0xD0 <= marker[1] <= 0xD7:
                        continue
                    seglen_b = f.read(2)
                    if len(seglen_b) < 2:
                        return None
                    seglen = struct.unpack(">H", seglen_b)[0]
                    if marker[1] in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                        data = f.read(5)
                        if len(data) < 5:
                            return None
                        h, w = struct.unpack(">HH", data[1:5])
                        return int(w), int(h)
                    f.seek(seglen - 2, 1)
    except OSError:
        return None
    return None


def to_rgb_u8(img: np.ndarray) -> np.ndarray:
    """Convert whatever OpenCV decoded (BGR/BGRA/grey, 8/16-bit, float) to RGB uint8."""
    if img.dtype == np.uint16:
        img = (img.astype(np.uint32) * 255 + 32767) // 65535
        img = img.astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(np.asarray(img, dtype=np.float64) * (255.0 if img.max() <= 1.0 else 1.0), 0, 255)
        img = np.rint(img).astype(np.uint8)
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    if img.shape[2] == 4:
        # Composite on black: an emulator screenshot's alpha is always opaque anyway.
        alpha = img[:, :, 3:4].astype(np.uint16)
        img = (img[:, :, :3].astype(np.uint16) * alpha // 255).astype(np.uint8)
    elif img.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(img, 3, axis=2))
    return np.ascontiguousarray(img[:, :, 2::-1])


def _decode_quietly(buf: np.ndarray) -> np.ndarray | None:
    """``cv2.imdecode`` with OpenCV's own logging off: for a corrupt file its decoders print
    WARN/ERROR lines (libtiff, libpng) to stderr, and we already say it in one UserError line."""
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    prev = None
    if log is not None:
        try:
            prev = log.setLogLevel(log.LOG_LEVEL_SILENT)
        except cv2.error:  # pragma: no cover - builds without the logging module
            prev = None
    try:
        with _stderr_to_devnull():
            return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    finally:
        if prev is not None:
            log.setLogLevel(prev)


@contextlib.contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the duration (libpng prints "libpng error: ..."
    with fprintf, past OpenCV's logging).  Best effort: without a usable fd 2 nothing is done."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
        finally:
            os.close(null)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def read_rgb(path: str | os.PathLike[str], max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file as RGB uint8, or raise :class:`UserError` with one clear line."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"no such image file: {p}")
    size = header_size(p)
    if size is not None and size[0] * size[1] > max_pixels:
        raise UserError(
            f"{p}: image is {size[0]}x{size[1]}, larger than the {max_pixels} pixel limit; refusing to decode"
        )
    buf = np.fromfile(p, dtype=np.uint8)
    if buf.size == 0:
        raise UserError(f"{p}: empty file, not an image")
    img = _decode_quietly(buf)
    if img is None:
        raise UserError(f"{p}: not a readable image (corrupt or unsupported format)")
    return to_rgb_u8(img)


def read_gray(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image as one uint8 channel (luma of RGB, or the grey channel itself)."""
    rgb = read_rgb(path)
    if np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 1], rgb[:, :, 2]):
        return rgb[:, :, 0].copy()
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def write_png(path: str | os.PathLike[str], rgb: np.ndarray) -> None:
    """Write an RGB (or grey) uint8 image as PNG, atomically."""
    write_image(path, rgb, ".png")


def write_image(path: str | os.PathLike[str], rgb: np.ndarray, suffix: str | None = None) -> None:
    """Write an RGB (or grey) uint8 image atomically, encoded by ``suffix`` (default: the path's,
    falling back to PNG for an unknown one)."""
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8:
        raise ValueError(f"write_image expects uint8, got {arr.dtype}")
    if suffix is None:
        suffix = Path(path).suffix.lower()
        suffix = suffix if suffix in IMAGE_SUFFIXES else ".png"
    bgr = arr if arr.ndim == 2 else cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, enc = cv2.imencode(suffix, bgr)
    if not ok:
        raise UserError(f"could not encode {Path(path).name} as {suffix}")
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(enc.tobytes())
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}", 3) from None


def label(img: np.ndarray, text: str) -> np.ndarray:
    """``img`` (H, W, 3) uint8 with a dark 14-pixel caption bar on top (galleries, contact sheets)."""
    bar = np.full((14, img.shape[1], 3), 24, np.uint8)
    cv2.putText(bar, text, (3, 10), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (235, 235, 235), 1, cv2.LINE_AA)
    return np.concatenate([bar, img], 0)


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (play order for our datasets)."""
    d = Path(folder)
    return sorted(
        p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
