"""The extraction manifest: ``DATASET/manifest.jsonl``, one JSON object per kept frame.

Each line is written with :func:`utils.fsio.append_line_durable` (append + fsync) *after* its
PNG was written atomically, so every complete line points to a complete file.  A kill can tear
only the *last* line; :func:`load_manifest` drops such a tail (and :func:`repair_manifest` cuts it
off the file, so the next append starts on a fresh line).  A bad line anywhere else means the
file was edited or damaged by something else, and is reported instead of guessed around.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.errors import UserError
from utils.fsio import append_line_durable

MANIFEST_NAME = "manifest.jsonl"
REQUIRED_KEYS = ("file", "source", "frame_index", "timestamp", "hash", "crop")
#: What ``file`` may be: a PNG directly inside ``frames/`` (what extract writes), nothing else.
_SAFE_FILE = re.compile(r"frames/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,200}\.png")
_HEX16 = re.compile(r"[0-9a-f]{16}")


@dataclass
class Manifest:
    """Records read from a manifest, plus where the valid content ends (``good_bytes``)."""

    records: list[dict[str, Any]]
    good_bytes: int
    torn: bool


def make_record(*, file: str, source: str, frame_index: int, timestamp: float, phash: str,
                crop: list[float]) -> dict[str, Any]:
    """One manifest record (the key order is fixed, so lines are byte-identical across runs)."""
    return {"file": file, "source": source, "frame_index": int(frame_index),
            "timestamp": round(float(timestamp), 4), "hash": phash, "crop": list(crop)}


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read ``path`` (missing file: empty), tolerating a torn last line."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        return Manifest([], 0, False)
    except OSError as e:
        raise UserError(f"cannot read {p}: {e.strerror or e}", 3) from None
    records: list[dict[str, Any]] = []
    pos = 0
    lines = data.split(b"\n")
    # lines[-1] is what follows the last newline: b"" for a well-formed file, else a torn tail.
    for i, raw in enumerate(lines[:-1]):
        rec = _parse(raw)
        if rec is None:
            if i == len(lines) - 2 and lines[-1] == b"":
                return Manifest(records, pos, True)  # a damaged last line (e.g. NULs after power loss)
            raise UserError(f"{p}: line {i + 1} is not a valid manifest record (file damaged or edited)")
        records.append(rec)
        pos += len(raw) + 1
    return Manifest(records, pos, lines[-1] != b"")


def _parse(raw: bytes) -> dict[str, Any] | None:
    """One record, or None when the line is not a well-formed record of ours.

    Types are checked here, once, because readers use the fields directly (``out / rec["file"]``,
    ``int(rec["hash"], 16)``): a hand-edited or hostile manifest must be reported as a bad line,
    never crash a reader or point it at a file outside ``DATASET/frames/``.
    """
    try:
        rec = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # JSONDecodeError is a ValueError
        return None
    if not isinstance(rec, dict) or not all(k in rec for k in REQUIRED_KEYS):
        return None
    return rec if _valid(rec) else None


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _valid(rec: dict[str, Any]) -> bool:
    """Field types, and ``file`` = ``frames/NAME.png`` with a plain name (no traversal)."""
    f = rec["file"]
    if not isinstance(f, str) or not _SAFE_FILE.fullmatch(f):
        return False
    idx, h, crop = rec["frame_index"], rec["hash"], rec["crop"]
    return (isinstance(rec["source"], str) and isinstance(idx, int) and not isinstance(idx, bool) and idx >= 0
            and _is_num(rec["timestamp"]) and isinstance(h, str) and _HEX16.fullmatch(h) is not None
            and isinstance(crop, list) and len(crop) == 4 and all(_is_num(v) for v in crop))


def repair_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Load the manifest and cut a torn last line off the file (so appends stay line-aligned)."""
    m = load_manifest(path)
    if m.torn:
        try:
            os.truncate(path, m.good_bytes)
        except OSError as e:
            raise UserError(f"cannot repair {path}: {e.strerror or e}", 3) from None
    return m


def append_record(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one record durably; I/O failures become a one-line :class:`UserError`."""
    line = json.dumps(record, separators=(",", ":"))
    try:
        append_line_durable(path, line)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}", 3) from None
