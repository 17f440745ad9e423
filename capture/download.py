"""Fetch gameplay videos into a folder: any yt-dlp URL, a ``file://`` URL or a local path.

Why this module exists rather than "just run yt-dlp":

* A longplay is hours long, so we take the best *video-only* stream up to ``max_height``
  (audio is useless to a colorizer and doubles the download), preferring H.264 because
  OpenCV's bundled FFmpeg may not decode AV1.  Sites that only offer combined streams (a plain
  ``.mp4`` link, handled by yt-dlp's generic extractor) fall back to the best combined one.
* Downloads go to ``NAME.part`` and are renamed only when complete (yt-dlp's ``continuedl``), so
  an interrupted run resumes with an HTTP ``Range`` request instead of starting over, and no
  file under the final name is ever a truncated video.  We re-check the size ourselves anyway.
* yt-dlp's errors are multi-line and noisy; the CLI promises one line, so they are condensed to
  ``download failed: <cause> (<url>)`` and raised as :class:`~utils.errors.UserError`.
* Local files take the same road (copied atomically into the output folder) so every later
  stage can assume "the video is in the dataset's download folder".

yt-dlp is used through its Python API only (``yt_dlp.YoutubeDL``), never a subprocess.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from utils.errors import UserError
from utils.fsio import atomic_path
from utils.progress import progress

__all__ = ["FORMAT_SORT", "OUTTMPL", "condense_error", "download", "format_selector"]

#: Output template: ASCII-only title (``restrictfilenames``) plus ``-ID``, the site's id, which
#: keeps two videos with the same title apart.  A direct file link's id *is* its title (the file
#: name), so there the suffix is dropped and ``.../clip.mp4`` stays ``clip.mp4`` (see
#: :class:`_IdSuffix`).  ``.120B`` caps the title at 120 bytes (file-name length limits).
OUTTMPL = "%(title).120B%(retrocolor_id_suffix|)s.%(ext)s"

#: Network settings: fail fast on a dead host, retry a flaky one a little (each retry of an
#: interrupted HTTP download resumes from the ``.part`` file), never sleep between retries.
SOCKET_TIMEOUT_S = 15.0
RETRIES = 2

_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_COPY_CHUNK = 1 << 20


def format_selector(max_height: int) -> str:
    """yt-dlp format spec: best video-only stream <= ``max_height``, with sensible fallbacks.

    ``height<=?`` also accepts formats of unknown height (a direct link says nothing about its
    resolution).  Order: video-only <= H, then any stream with video <= H (sites that only have
    combined streams), then the *smallest* video stream when every one is taller than H (better
    than failing: the extractor rescales to 160x144 anyway), then whatever is best.
    """
    h = int(max_height)
    return f"bv[height<=?{h}]/bv*[height<=?{h}]/wv*/b"


#: Sort order among the formats the selector allows: highest resolution first, then prefer
#: codecs no newer than H.264 (AV1/VP9 decoding in OpenCV wheels is not guaranteed).
FORMAT_SORT = ["res", "vcodec:h264"]


def download(url: str, out_dir: str | os.PathLike[str], *, max_height: int = 720) -> list[Path]:
    """Download ``url`` (video, playlist, ``file://`` URL or local path) into ``out_dir``.

    Returns the final file paths, one per video (a playlist gives one per entry), in order.
    Raises :class:`UserError` with one line for anything that goes wrong; on failure no file
    under a final name is left behind (a ``.part`` file may remain so a re-run can resume).
    """
    if not isinstance(max_height, int) or max_height < 1:
        raise UserError(f"--max-height must be a positive number of pixels, got {max_height!r}")
    url = str(url).strip()
    if not url:
        raise UserError("no URL or file given")
    created = [p for p in (Path(out_dir), *Path(out_dir).parents) if not p.exists()]  # leaf first
    out = _prepare_out_dir(Path(out_dir))
    try:
        if url.lower().startswith("file://"):
            return [_copy_local(_file_url_to_path(url), out)]
        if _SCHEME_RE.match(url):
            return _download_with_ytdlp(url, out, max_height)
        src = Path(url).expanduser()
        if not src.exists():
            raise UserError(f"no such file: {url} (for a web video give the full URL, e.g. https://...)")
        return [_copy_local(src, out)]
    except BaseException:
        # A failed first download leaves no empty folder behind (a .part file to resume from stays).
        for p in created:
            with contextlib.suppress(OSError):
                p.rmdir()
        raise


# --------------------------------------------------------------------------- helpers
def _prepare_out_dir(out: Path) -> Path:
    """Create the output folder; refuse a path that is an existing file (a common typo)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"output folder {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create output folder {out}: {e.strerror or e}", 3) from None
    return out


def _file_url_to_path(url: str) -> Path:
    """``file:///a/b.mp4`` (or ``file://localhost/...``) -> ``/a/b.mp4``; remote hosts are refused."""
    parsed = urllib.parse.urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise UserError(f"file:// URL names another host ({parsed.netloc}); only local files can be read: {url}")
    return Path(urllib.request.url2pathname(parsed.path))


def _copy_local(src: Path, out: Path) -> Path:
    """Copy a local video into ``out`` atomically (temp file + rename) and return the copy.

    A file already inside ``out`` is returned as is, so ``download`` is idempotent.
    """
    if not src.exists():
        raise UserError(f"no such file: {src}")
    if not src.is_file():
        raise UserError(f"{src} is not a file")
    target = out / src.name
    try:
        if target.exists() and target.samefile(src):
            return target
        size = src.stat().st_size
        if size == 0:
            raise UserError(f"{src} is empty, not a video")
        with atomic_path(target) as tmp, open(src, "rb") as fin, open(tmp, "wb") as fout:
            bar = progress(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=src.name[:40])
            try:
                while chunk := fin.read(_COPY_CHUNK):
                    fout.write(chunk)
                    bar.update(len(chunk))
            finally:
                bar.close()
            fout.flush()
            if fout.tell() != size:
                raise UserError(f"{src} changed while it was being copied; try again")
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a copy should look like any new file
    except OSError as e:
        raise UserError(f"cannot copy {src} to {out}: {e.strerror or e}", 3) from None
    return target


def _umask() -> int:
    """The process umask (reading it means setting it, so it is restored at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class _QuietLogger:
    """yt-dlp logger that keeps the terminal clean: our progress bar and one-line errors only.

    Errors are remembered (yt-dlp logs them before raising) in case an exception's text is
    less informative than the logged line.
    """

    def __init__(self) -> None:
        self.errors: list[str] = []

    def debug(self, msg: str) -> None:
        pass

    def info(self, msg: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        pass

    def error(self, msg: str) -> None:
        self.errors.append(msg)


class _ProgressHook:
    """Feeds yt-dlp's progress events into one tqdm bar per file and records expected sizes.

    ``expected`` maps each final file name to the byte count the server announced
    (Content-Length, or the total from Content-Range when resuming), so :func:`download` can
    refuse to report a short file as a success even if something upstream let it through.
    """

    def __init__(self) -> None:
        self.expected: dict[str, int] = {}
        self._bar: Any = None
        self._name: str | None = None

    def __call__(self, d: dict[str, Any]) -> None:
        status, name = d.get("status"), d.get("filename")
        if status == "downloading":
            total = d.get("total_bytes") or d.get("total_bytes_estimate")
            if name != self._name or self._bar is None:
                self.close()
                self._name = name
                self._bar = progress(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                                     desc=Path(str(name)).name[:40])
            if d.get("total_bytes") and d.get("fragment_index") is None and name:
                self.expected[os.path.abspath(name)] = int(d["total_bytes"])
            if total and self._bar.total != total:
                self._bar.total = total
            self._bar.n = int(d.get("downloaded_bytes") or 0)
            self._bar.refresh()
        elif status in ("finished", "error"):
            if self._bar is not None and status == "finished":
                self._bar.n = int(d.get("downloaded_bytes") or self._bar.n)
                self._bar.refresh()
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar, self._name = None, None


def _id_suffix_pp() -> Any:
    """A yt-dlp pre-process step that sets ``retrocolor_id_suffix`` for :data:`OUTTMPL`.

    Built lazily because yt-dlp is imported lazily (the CLI's other commands never need it).
    """
    from yt_dlp.postprocessor.common import PostProcessor

    class _IdSuffix(PostProcessor):  # type: ignore[misc]
        def run(self, info: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
            vid, title = str(info.get("id") or ""), str(info.get("title") or "")
            info["retrocolor_id_suffix"] = "" if vid in ("", title) else f"-{vid}"
            return [], info

    return _IdSuffix()


def _ytdlp_options(out: Path, max_height: int, logger: _QuietLogger, hook: _ProgressHook) -> dict[str, Any]:
    """The YoutubeDL parameters; each one is here for a reason given beside it."""
    return {
        "format": format_selector(max_height),
        "format_sort": FORMAT_SORT,
        "paths": {"home": str(out)},
        "outtmpl": {"default": OUTTMPL},
        "restrictfilenames": True,      # ASCII, no spaces: safe on every file system and shell
        "windowsfilenames": True,       # also no names Windows refuses (CON, trailing dots, ...)
        "continuedl": True,             # resume NAME.part with an HTTP Range request
        "nopart": False,                # never write under the final name until complete
        "noplaylist": False,            # a playlist URL means every entry
        "ignoreerrors": False,          # one failure is an error, not a silent gap
        "socket_timeout": SOCKET_TIMEOUT_S,
        "retries": RETRIES,
        "fragment_retries": RETRIES,
        "extractor_retries": 1,
        "file_access_retries": 1,
        "cachedir": False,              # no writes to ~/.cache, no stale signature cache
        "updatetime": False,            # the file's mtime is when we fetched it
        "quiet": True,
        "noprogress": True,             # our tqdm bar replaces yt-dlp's own progress lines
        "no_color": True,
        "logger": logger,
        "progress_hooks": [hook],
    }


def _download_with_ytdlp(url: str, out: Path, max_height: int) -> list[Path]:
    """Run yt-dlp's API on ``url`` and return the verified final files."""
    try:
        import yt_dlp
        from yt_dlp.utils import YoutubeDLError
    except ImportError:  # pragma: no cover - yt-dlp is a core dependency
        raise UserError("downloading needs the yt-dlp package: pip install yt-dlp") from None

    logger, hook = _QuietLogger(), _ProgressHook()
    finished: list[str] = []
    started = time.time()
    try:
        with yt_dlp.YoutubeDL(_ytdlp_options(out, max_height, logger, hook)) as ydl:
            ydl.add_post_processor(_id_suffix_pp(), when="pre_process")
            ydl.add_post_hook(finished.append)  # called with the final path of each video
            info = ydl.extract_info(url, download=True)
    except YoutubeDLError as e:
        cause = condense_error(str(e) or (logger.errors or [""])[-1]).replace(f": {url}", "")
        raise UserError(f"download failed: {cause} ({url}){_resume_hint(out, started)}") from None
    except OSError as e:
        raise UserError(f"download failed: {e.strerror or e} ({url}){_resume_hint(out, started)}", 3) from None
    finally:
        hook.close()

    paths = _unique(Path(p) for p in finished)
    if not paths and info is not None:
        paths = _unique(Path(d["filepath"]) for d in _iter_downloads(info) if d.get("filepath"))
    if not paths:
        raise UserError(f"download failed: no video found ({url})")
    for p in paths:
        _verify(p, hook.expected.get(os.path.abspath(p)), url)
    return paths


def _resume_hint(out: Path, started: float) -> str:
    """Tell the user a re-run resumes, when this run left a ``.part`` file behind."""
    try:
        recent = any(p.stat().st_mtime >= started - 1 for p in out.glob("*.part"))
    except OSError:
        recent = False
    return "; the partial download is kept: run the same command again to resume" if recent else ""


def _iter_downloads(info: dict[str, Any]) -> list[dict[str, Any]]:
    """All ``requested_downloads`` in an info dict, walking into playlist entries."""
    found: list[dict[str, Any]] = list(info.get("requested_downloads") or [])
    for entry in info.get("entries") or []:
        if isinstance(entry, dict):
            found.extend(_iter_downloads(entry))
    return found


def _unique(paths: Any) -> list[Path]:
    seen: set[Path] = set()
    result = []
    for p in paths:
        if p not in seen:
            seen.add(p)
            result.append(p)
    return result


def _verify(path: Path, expected: int | None, url: str) -> None:
    """Refuse to call a missing, empty or short file a success.

    A short file is moved back to ``NAME.part`` so the next run resumes it instead of
    skipping it as "already downloaded".
    """
    if not path.is_file():
        raise UserError(f"download failed: yt-dlp reported {path.name} but it does not exist ({url})")
    size = path.stat().st_size
    if size == 0 or (expected is not None and size != expected):
        part = path.with_name(path.name + ".part")
        try:
            os.replace(path, part)
        except OSError:
            path.unlink(missing_ok=True)
        want = f"{expected} bytes" if expected is not None else "a non-empty file"
        raise UserError(f"download failed: got {size} bytes of {path.name}, expected {want}; "
                        f"run again to resume ({url})")


_NOISE = [
    re.compile(r"^(?:ERROR|WARNING):\s*"),
    re.compile(r"^\[[^\]]+\]\s*(?:[^\s:]+:\s+)?"),                  # "[generic] clip: " extractor + id
    re.compile(r"^Unable to download (?:webpage|API page|JSON metadata|video data):\s*", re.I),
    re.compile(r"^<urlopen error\s*(.*)>$"),
    re.compile(r"^\[Errno -?\d+\]\s*"),
]


#: yt-dlp phrases that mean little to a user, reworded.
_REWORD = {
    "Did not get any data blocks": "the server closed the connection without sending data",
}


def condense_error(message: str) -> str:
    """Turn one of yt-dlp's multi-line error messages into a short single-line cause.

    ``ERROR: [generic] x: Unable to download webpage: HTTP Error 404: Not Found (caused by
    <HTTPError 404: Not Found>)`` becomes ``HTTP Error 404: Not Found``.
    """
    text = " ".join(str(message).split())
    text = re.split(r";?\s*please report this issue", text, maxsplit=1, flags=re.I)[0]
    text = re.split(r"\s*\(caused by ", text, maxsplit=1)[0]
    text = re.split(r"\s*(?:Use|Use the) --\S+", text, maxsplit=1)[0]
    for _ in range(3):  # prefixes nest ("ERROR: [generic] x: Unable to download webpage: ...")
        for rx in _NOISE:
            text = rx.sub(lambda m: m.group(1) if m.groups() else "", text).strip()
    text = text.rstrip(" ;,")
    return _REWORD.get(text, text) or "unknown error"

