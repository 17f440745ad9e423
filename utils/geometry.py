"""Game Boy screen geometry, the one definition every stage shares.

The screen is 160x144 pixels drawn from 8x8 tiles; capture, the datasets, export and the live
engine all work at this native size.  Lives in ``utils`` (not ``dataset``) because ``capture``,
the first stage, needs it too and may import no later stage.
"""

from __future__ import annotations

#: Native screen width and height in pixels.
NATIVE_W, NATIVE_H = 160, 144
#: ``(width, height)``, the order OpenCV and the samplers take sizes in.
NATIVE_SIZE = (NATIVE_W, NATIVE_H)
#: Side of a background tile in pixels (models need sizes that are multiples of it).
TILE = 8
