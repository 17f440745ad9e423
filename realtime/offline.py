"""``retrocolor colorize``: colorize an image, a folder of images, or a video file.

Every frame goes through the same :class:`realtime.engine.Colorizer` as the live filter, so what
you see offline is what a player sees.

* **Where the game screen is.**  A frame that already has the Game Boy's 10:9 shape is the screen.
  Otherwise (a longplay with borders or a 16:9 canvas) the screen is found once per file with
  :func:`capture.screen.detect_screen` on frames spread over the video (it needs change between
  frames, so a single image, or a video where detection fails, falls back to trimming the black
  border, and the summary says so), and only that rectangle is colorized and pasted back, so
  the output keeps the input's layout.  The engine samples the screen's native grid itself.
* **Video** is decoded with OpenCV and re-encoded with an ``ffmpeg`` binary (on PATH, or the one
  bundled by the ``imageio-ffmpeg`` package) as H.264; the source's audio track is copied (or
  re-encoded to AAC when the container needs it).  Without ffmpeg the video is written by OpenCV,
  without audio, and the command says so.  ffmpeg is always run with an argument list, never a
  shell.
* Every output is written to a temporary file and renamed, so an interrupted run never leaves a
  truncated file under the final name.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from capture.screen import ScreenRect, detect_screen
from realtime.engine import NATIVE_H, NATIVE_W, Colorizer
from utils.errors import UserError
from utils.fsio import atomic_path
from utils.images import IMAGE_SUFFIXES, label, list_images, read_rgb, write_image
from utils.progress import progress

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv")
Rect = tuple[int, int, int, int]


# ----------------------------------------------------------------------------- ffmpeg
def find_ffmpeg() -> str | None:
    """An ffmpeg executable: ``$RETROCOLOR_FFMPEG``, PATH, or imageio-ffmpeg's bundled binary."""
    env = os.environ.get("RETROCOLOR_FFMPEG")
    if env:
        return env if Path(env).is_file() else None
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg  # type: ignore[import-not-found]

        exe = imageio_ffmpeg.get_ffmpeg_exe()
        return exe if exe and Path(exe).is_file() else None
    except Exception:  # noqa: BLE001 - optional package; any failure means "no bundled ffmpeg"
        return None


def _ffmpeg(ffmpeg: str, args: list[str], timeout: float | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([ffmpeg, "-hide_banner", "-nostdin", *args], capture_output=True, timeout=timeout,
                          check=False)


def _tail(stderr: bytes) -> str:
    """The last line of ffmpeg's complaint, for a one-line error."""
    lines = [ln for ln in stderr.decode("utf-8", "replace").strip().splitlines() if ln.strip()]
    return lines[-1][:150] if lines else "no message"


def has_audio(ffmpeg: str, src: Path) -> bool:
    """Whether ``src`` has an audio stream (ffmpeg prints its streams when given no output)."""
    r = _ffmpeg(ffmpeg, ["-i", str(src)], timeout=60)
    return bool(re.search(rb"Stream #\d+:\d+.*?: Audio:", r.stderr))


def _encoders(ffmpeg: str) -> str:
    r = _ffmpeg(ffmpeg, ["-encoders"], timeout=60)
    return r.stdout.decode("utf-8", "replace")


# ----------------------------------------------------------------------------- screen location
def _is_screen_shape(w: int, h: int) -> bool:
    return w >= NATIVE_W and h >= NATIVE_H and abs((w / NATIVE_W) / (h / NATIVE_H) - 1.0) <= 0.1


def _trim_black(frames: list[np.ndarray], threshold: int = 24) -> Rect | None:
    """Bounding box of the non-black pixels over ``frames`` (the screen inside a black canvas)."""
    mask = None
    for f in frames:
        m = f.max(axis=2) > threshold
        mask = m if mask is None else (mask | m)
    if mask is None or not mask.any():
        return None
    ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1)


def _pixel_rect(r: ScreenRect, w: int, h: int) -> Rect:
    """The detected (sub-pixel) rectangle on whole pixels, clipped to the ``w`` x ``h`` frame."""
    x0, y0 = max(0, round(r.x)), max(0, round(r.y))
    x1, y1 = min(w, round(r.x + r.w)), min(h, round(r.y + r.h))
    return x0, y0, x1 - x0, y1 - y0


def locate_screen(frames: list[np.ndarray]) -> tuple[Rect, str]:
    """The game screen rectangle in RGB ``frames`` (a few from one source) and how it was found."""
    h, w = frames[0].shape[:2]
    if _is_screen_shape(w, h):
        return (0, 0, w, h), "whole frame"
    if len(frames) < 2:
        why = "one image has no motion to find a screen by"
    else:
        try:
            found = detect_screen(frames)
            rect = _pixel_rect(found, w, h)
            if _is_screen_shape(rect[2], rect[3]):
                return rect, f"detected: {found.describe()}"
            why = f"the detected screen {found.describe()} is cut off by the frame"
        except UserError as e:
            why = str(e)
    r = _trim_black(frames)
    if r is not None and _is_screen_shape(r[2], r[3]):
        return r, f"non-black area; screen detection failed: {why}"
    raise UserError(f"no Game Boy screen found in the {w}x{h} frames (expected a 10:9 screen, alone or inside "
                    f"a black canvas; detection: {why}); crop the input to the game screen first")


# ----------------------------------------------------------------------------- per frame
class _FrameJob:
    """Colorize the screen rectangle of full frames and assemble the output frame."""

    def __init__(self, colorizer: Colorizer, rect: Rect, side_by_side: bool) -> None:
        self.col, self.rect, self.side = colorizer, rect, side_by_side

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        x, y, w, h = self.rect
        screen = rgb[y:y + h, x:x + w]
        colour = self.col.colorize(screen)
        if (x, y, w, h) == (0, 0, rgb.shape[1], rgb.shape[0]):
            out = colour
        else:
            out = rgb.copy()
            out[y:y + h, x:x + w] = colour
        return np.concatenate([rgb, out], axis=1) if self.side else out


# ----------------------------------------------------------------------------- video
@contextlib.contextmanager
def _open_video(path: Path) -> Iterator[cv2.VideoCapture]:
    cap = cv2.VideoCapture(str(path))
    try:
        yield cap
    finally:
        cap.release()


def _probe_frames(path: Path, count: int = 8) -> tuple[list[np.ndarray], float, int]:
    """A few RGB frames spread over the video (skipping black lead-ins), its fps and frame count."""
    with _open_video(path) as cap:
        if not cap.isOpened():
            raise UserError(f"{path}: not a readable video")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        frames: list[np.ndarray] = []
        targets = np.linspace(0, max(n - 1, 0), count).round().astype(int) if n > 0 else [0]
        for t in sorted(set(int(v) for v in targets)):
            cap.set(cv2.CAP_PROP_POS_FRAMES, t)
            ok, bgr = cap.read()
            if ok and bgr is not None:
                frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    if not frames:
        raise UserError(f"{path}: no decodable video frames")
    return frames, (fps if 1.0 <= fps <= 1000.0 else 30.0), n


def _encode_ffmpeg(ffmpeg: str, size: tuple[int, int], fps: float, video_tmp: Path) -> subprocess.Popen[bytes]:
    w, h = size
    enc = _encoders(ffmpeg)
    codec = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "16", "-pix_fmt", "yuv420p"] if "libx264" in enc \
        else ["-c:v", "mpeg4", "-q:v", "2", "-pix_fmt", "yuv420p"]
    argv = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s", f"{w}x{h}", "-r", f"{fps:.6f}", "-i", "-", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
            *codec, "-an", str(video_tmp)]
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stderr=subprocess.PIPE)


def _mux(ffmpeg: str, video_tmp: Path, src: Path, out_tmp: Path) -> str:
    """Video from ``video_tmp`` + audio from ``src`` -> ``out_tmp``; returns what happened to audio."""
    base = ["-loglevel", "error", "-y", "-i", str(video_tmp), "-i", str(src), "-map", "0:v:0", "-map", "1:a?",
            "-c:v", "copy"]
    for audio in (["-c:a", "copy"], ["-c:a", "aac", "-b:a", "192k"], ["-c:a", "libopus"]):
        r = _ffmpeg(ffmpeg, [*base, *audio, "-shortest", str(out_tmp)])
        if r.returncode == 0:
            return "audio copied" if audio[1] == "copy" else f"audio re-encoded ({audio[1]})"
    r = _ffmpeg(ffmpeg, ["-loglevel", "error", "-y", "-i", str(video_tmp), "-c", "copy", str(out_tmp)])
    if r.returncode != 0:
        raise UserError(f"ffmpeg could not write {out_tmp.suffix} output: {_tail(r.stderr)}")
    return "audio dropped (ffmpeg could not put it in this container)"


def colorize_video(src: Path, dst: Path, colorizer: Colorizer, *, side_by_side: bool = False,
                   max_seconds: float | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Colorize every frame of ``src`` (or its first ``max_seconds``) into ``dst`` (audio kept where
    ffmpeg is available, cut to the same length)."""
    if dst.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"video output must end in one of {', '.join(VIDEO_SUFFIXES)}, got {dst.name!r}")
    if max_seconds is not None and not max_seconds > 0:
        raise UserError(f"seconds must be positive, got {max_seconds!r}")
    probe, fps, n = _probe_frames(src)
    if max_seconds is not None:
        limit = max(1, int(round(max_seconds * fps)))
        n = min(n, limit) if n > 0 else limit
    else:
        limit = None
    rect, how = locate_screen(probe)
    job = _FrameJob(colorizer, rect, side_by_side)
    fh, fw = probe[0].shape[:2]
    size = (fw * (2 if side_by_side else 1), fh)
    ffmpeg = find_ffmpeg()
    audio_note = "no ffmpeg found (PATH or imageio-ffmpeg): video written by OpenCV without audio"
    frames_done = 0
    with tempfile.TemporaryDirectory(prefix="retrocolor-video-", dir=dst.parent if dst.parent.is_dir() else None) as td:
        with _open_video(src) as cap, atomic_path(dst) as out_tmp:
            bar = progress(total=n or None, desc="colorizing", unit="frame")
            if ffmpeg:
                video_tmp = Path(td) / "video.mkv"
                proc = _encode_ffmpeg(ffmpeg, size, fps, video_tmp)
                assert proc.stdin is not None
                try:
                    while limit is None or frames_done < limit:
                        ok, bgr = cap.read()
                        if not ok or bgr is None:
                            break
                        if bgr.shape[:2] != (fh, fw):
                            raise UserError(f"{src}: frame size changes mid-video ({bgr.shape[1]}x{bgr.shape[0]})")
                        proc.stdin.write(np.ascontiguousarray(job(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))).tobytes())
                        frames_done += 1
                        bar.update(1)
                    proc.stdin.close()
                    err = proc.stderr.read() if proc.stderr else b""
                    if proc.wait() != 0:
                        raise UserError(f"ffmpeg failed encoding the video: {_tail(err)}")
                except BrokenPipeError:
                    err = proc.stderr.read() if proc.stderr else b""
                    proc.wait()
                    raise UserError(f"ffmpeg stopped: {_tail(err)}") from None
                finally:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                    bar.close()
                if frames_done == 0:
                    raise UserError(f"{src}: no decodable video frames")
                if has_audio(ffmpeg, src):
                    audio_note = _mux(ffmpeg, video_tmp, src, out_tmp)
                else:
                    r = _ffmpeg(ffmpeg, ["-loglevel", "error", "-y", "-i", str(video_tmp), "-c", "copy", str(out_tmp)])
                    if r.returncode != 0:
                        raise UserError(f"ffmpeg could not write {dst.name}: {_tail(r.stderr)}")
                    audio_note = "source has no audio"
            else:
                fourcc = cv2.VideoWriter_fourcc(*("XVID" if dst.suffix.lower() == ".avi" else "mp4v"))
                writer = cv2.VideoWriter(str(out_tmp), fourcc, fps, size)
                if not writer.isOpened():
                    raise UserError(f"OpenCV cannot write {dst.suffix} video; install ffmpeg or use .mp4/.avi")
                try:
                    while limit is None or frames_done < limit:
                        ok, bgr = cap.read()
                        if not ok or bgr is None:
                            break
                        writer.write(cv2.cvtColor(job(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), cv2.COLOR_RGB2BGR))
                        frames_done += 1
                        bar.update(1)
                finally:
                    writer.release()
                    bar.close()
                if frames_done == 0:
                    raise UserError(f"{src}: no decodable video frames")
    log(f"{src} -> {dst}: {frames_done} frames at {fps:.2f} fps, screen {rect[2]}x{rect[3]} at ({rect[0]},{rect[1]}) "
        f"[{how}]; {audio_note}")
    return {"kind": "video", "input": str(src), "output": str(dst), "frames": frames_done, "fps": fps,
            "screen": list(rect), "screen_found_by": how, "audio": audio_note}


# ----------------------------------------------------------------------------- entry point
def _is_video(path: Path) -> bool:
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return True
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return False
    with _open_video(path) as cap:
        return bool(cap.isOpened() and cap.read()[0])


def _check_image_output(dst: Path) -> None:
    """A one-line error for an image output whose suffix names no image format we write."""
    if dst.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"image output must end in one of {', '.join(IMAGE_SUFFIXES)}, got {dst.name!r}")


def scheme_sheet(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                 model: str | os.PathLike[str] = "default", threads: int = 1, per_row: int = 6,
                 log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """One image's game screen as the model paints it and in every colour scheme, on one labelled sheet.

    For a monochrome game the model never saw, which scheme suits it is the player's call (README,
    "colour schemes"); a sheet shows them all at once, at 2x the native screen, numbered as
    ``--scheme N`` and the C key count them.
    """
    say = log or (lambda _m: None)
    src, dst = Path(src), Path(dst)
    if src.is_dir() or _is_video(src):
        raise UserError("--scheme all makes a contact sheet of one image: give an image, not a folder or a video")
    _check_image_output(dst)
    try:
        rgb = read_rgb(src)
    except UserError:
        raise UserError(f"{src}: not an image this tool can read") from None
    rect, _ = locate_screen([rgb])
    x, y, w, h = rect
    screen = np.ascontiguousarray(rgb[y:y + h, x:x + w])
    col = Colorizer(model, threads=threads)

    def cell(img: np.ndarray, text: str) -> np.ndarray:
        small = cv2.resize(img, (2 * NATIVE_W, 2 * NATIVE_H), interpolation=cv2.INTER_NEAREST)
        return label(small, text)

    cells = [cell(screen, src.name[:28]), cell(col.colorize(screen), f"model {col.name}")]
    if col.active_palette is None:
        raise UserError(f"{src}: the screen is not a monochrome (4-shade) game; schemes paint only those")
    for k in range(1, col.scheme_count + 1):
        col.scheme = k
        info = col.scheme_info() or {}
        cells.append(cell(col.colorize(screen), f"--scheme {k}  ({str(info.get('title') or info.get('game'))[:16]})"))
    cells += [np.zeros_like(cells[0])] * (-len(cells) % per_row)
    sheet = np.concatenate([np.concatenate(cells[i:i + per_row], axis=1) for i in range(0, len(cells), per_row)])
    write_image(dst, sheet)
    say(f"{src} -> {dst}: the screen as {col.name} paints it and in each of the {col.scheme_count} colour schemes; "
        "pick one with --scheme N (or C in live/play)")
    return {"kind": "scheme_sheet", "input": str(src), "output": str(dst), "schemes": col.scheme_count,
            "model": col.name}


def colorize_path(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                  model: str | os.PathLike[str] = "default", side_by_side: bool = False, smoothing: float = 0.0,
                  threads: int = 1, max_seconds: float | None = None, scheme: int | str | None = None,
                  log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Colorize an image, a folder of images (-> folder) or a video (-> video); returns a summary.

    ``smoothing`` and ``max_seconds`` (colorize only the first S seconds) apply to videos only;
    images are independent.  ``scheme`` paints monochrome frames with that colour scheme
    (:attr:`realtime.engine.Colorizer.scheme`) instead of the model; ``"all"`` (one image only)
    writes a contact sheet of the screen in every scheme, to pick one by eye (:func:`scheme_sheet`).
    """
    say = log or (lambda _m: None)
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise UserError(f"input not found: {src}")
    if src.resolve() == dst.resolve():
        raise UserError("output must differ from the input")
    if scheme == "all":
        if side_by_side:
            raise UserError("--side-by-side does not go with --scheme all (the sheet shows the input beside them all)")
        return scheme_sheet(src, dst, model=model, threads=threads, log=say)
    if isinstance(scheme, str):
        raise UserError(f"scheme must be a number or 'all', got {scheme!r}")
    if src.is_dir():
        files = list_images(src)
        if not files:
            raise UserError(f"{src}: no images in this folder ({', '.join(IMAGE_SUFFIXES)})")
        if dst.exists() and not dst.is_dir():
            raise UserError(f"{dst}: exists and is not a folder (a folder input writes a folder)")
        col = Colorizer(model, threads=threads, scheme=scheme)
        written, skipped = 0, []
        for f in progress(files, desc="colorizing", unit="image"):
            try:
                rgb = read_rgb(f)
                rect, _ = locate_screen([rgb])
            except UserError as e:
                skipped.append(f"{f.name}: {e}")
                continue
            write_image(dst / (f.stem + ".png"), _FrameJob(col, rect, side_by_side)(rgb))
            written += 1
        if not written:
            raise UserError(f"{src}: none of the {len(files)} images could be colorized ({skipped[0]})")
        say(f"{src} -> {dst}/: {written} images colorized with {col.name}"
            + (f", {len(skipped)} skipped ({skipped[0]})" if skipped else ""))
        return {"kind": "folder", "input": str(src), "output": str(dst), "images": written, "skipped": skipped,
                "model": col.name}
    if _is_video(src):
        col = Colorizer(model, threads=threads, smoothing=smoothing, scheme=scheme)
        return {**colorize_video(src, dst, col, side_by_side=side_by_side, max_seconds=max_seconds, log=say),
                "model": col.name}
    try:
        rgb = read_rgb(src)
    except UserError:
        raise UserError(f"{src}: not an image or a video this tool can read") from None
    if dst.is_dir():
        dst = dst / (src.stem + ".png")
    else:
        _check_image_output(dst)
    rect, how = locate_screen([rgb])
    col = Colorizer(model, threads=threads, scheme=scheme)
    write_image(dst, _FrameJob(col, rect, side_by_side)(rgb))
    if scheme and col.active_palette is None:
        used = f"; scheme {scheme} unused: the screen is not monochrome, so the model painted it"
    else:
        used = f", scheme {scheme}" if scheme else ""
    say(f"{src} -> {dst} ({rgb.shape[1]}x{rgb.shape[0]}, screen {rect[2]}x{rect[3]} [{how}], model {col.name}"
        + used + ")")
    return {"kind": "image", "input": str(src), "output": str(dst), "screen": list(rect), "model": col.name}


