"""Game Boy screen geometry, the one definition every stage shares.

The screen is 160x144 pixels drawn from 8x8 tiles; capture, the datasets, export and the live
engine all work at this native size.  Lives in ``utils`` (not ``dataset``) because ``capture``,
the first stage, needs it too and may import no later stage.
"""

from __future__ import annotations

from utils.errors import UserError

#: Native screen width and height in pixels.
NATIVE_W, NATIVE_H = 160, 144
#: ``(width, height)``, the order OpenCV and the samplers take sizes in.
NATIVE_SIZE = (NATIVE_W, NATIVE_H)
#: Side of a background tile in pixels (models need sizes that are multiples of it).
TILE = 8

#: Integer pixel scales the commands take: a window (live, play, demo), an emulator window
#: (bench --emulator-scale / --input-scale), a contact sheet (dataset preview --tile-scale).
SCALE_RANGE = (1, 8)


def check_scale(value: object, what: str = "scale") -> int:
    """``value`` as an integer pixel scale in :data:`SCALE_RANGE`, else a one-line ``UserError``.

    The one validator behind every ``--*scale`` flag and the APIs they call.
    """
    lo, hi = SCALE_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UserError(f"{what} must be a whole number {lo}..{hi}, got {value!r}")
    try:
        v = int(value)
    except ValueError:
        raise UserError(f"{what} must be a whole number {lo}..{hi}, got {value!r}") from None
    if not lo <= v <= hi:
        raise UserError(f"{what} must be a whole number {lo}..{hi}, got {value!r}")
    return v
