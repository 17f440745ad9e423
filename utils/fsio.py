"""Crash-safe file writing: write to a temporary file beside the target, fsync, then rename.

A process killed at any instant leaves either the old file or the new one, never a truncated
one, because ``os.replace`` is atomic on POSIX and Windows within one file system.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from utils.errors import UserError

# Read once at import (os.umask can only be read by setting it).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it is fsynced and renamed over it.

    The temporary name keeps the target's extension (``suffix``) because encoders such as
    OpenCV pick the format from it.  On any exception the temporary file is removed.
    """
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create directory {parent}: {e.strerror or e}", 3) from None
    suffix = target.suffix if suffix is None else suffix
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=parent)
    except OSError as e:
        raise UserError(f"cannot write to {parent}: {e.strerror or e}", 3) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600, and some writers (safetensors' save_file) replace the file with
        # their own 0600 one: once written, give it the usual permissions (0644 with umask 022).
        with contextlib.suppress(OSError):
            os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` atomically (see module docstring)."""
    try:
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
    except OSError as e:
        raise UserError(f"cannot write {target}: {e.strerror or e}", 3) from None


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_json(target: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    atomic_write_text(target, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json_doc(path: str | os.PathLike[str], kind: str) -> Any:
    """A JSON document the tool wrote (``kind``: "genres", "schemes", ...), or a one-line UserError."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{kind} file not found: {p}") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{p}: not a {kind} file ({' '.join(str(e).split())[:120]})") from None


def append_line_durable(path: str | os.PathLike[str], line: str) -> None:
    """Append one line and fsync it, so a manifest never loses an acknowledged record.

    Readers must tolerate a torn *last* line (a kill during ``write``); see
    ``dataset.manifest.read_manifest``.
    """
    if "\n" in line:
        raise ValueError("line must not contain a newline")
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def user_path(override: str, xdg: str, fallback: str, *parts: str) -> Path:
    """A per-user location: ``$override`` if set, else ``$xdg`` (or ``~/fallback``) / retrocolor / parts.

    One rule for the frame cache (``XDG_CACHE_HOME``) and the remembered colour schemes
    (``XDG_CONFIG_HOME``), so both honour the XDG base directories the same way.
    """
    env = os.environ.get(override)
    if env:
        return Path(env)
    base = os.environ.get(xdg) or os.path.join(os.path.expanduser("~"), fallback)
    return Path(base, "retrocolor", *parts)
