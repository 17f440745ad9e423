"""Small helpers shared by every stage: one-line errors, atomic writes, safe image I/O, progress bars.

Every stage may import ``utils``; ``utils`` imports no stage, so the one-way data flow
(capture -> dataset -> models -> weights -> realtime) is kept.
"""

from utils.errors import UserError
from utils.fsio import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text

__all__ = ["UserError", "atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"]
