"""Game Boy cartridges: check a ROM file before an emulator sees it, and read what its header says.

Both the dataset renderer (``dataset.render``) and the player (``realtime.play``) hand ROM files to
PyBoy; a wrong file should give one clear line, not an emulator crash, so the checks live here, in
the first stage, where every later stage can use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from utils.errors import UserError

#: Cartridge types (header byte 0x147) PyBoy 2.x can run.
KNOWN_CART_TYPES = frozenset({0x00, 0x01, 0x02, 0x03, 0x05, 0x06, 0x08, 0x09, 0x0F, 0x10, 0x11, 0x12, 0x13,
                              0x19, 0x1A, 0x1B, 0x1C, 0x1D, 0x1E})


@dataclass
class RomInfo:
    """What the header says about a cartridge."""

    title: str
    cart_type: int
    size: int
    cgb_flag: int


def validate_rom(path: str | Path) -> RomInfo:
    """Check that ``path`` looks like a Game Boy ROM; raise a one-line :class:`UserError` if not.

    Checks: a file of 32 KiB to 8 MiB, a multiple of the 16 KiB bank size, a correct header
    checksum (the byte the boot ROM itself verifies), and a cartridge type PyBoy supports.
    The global checksum is not checked: real hardware ignores it and homebrew often gets it wrong.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"no such ROM file: {p}")
    size = p.stat().st_size
    if size < 0x8000 or size > 8 * 1024 * 1024 or size % 0x4000:
        raise UserError(f"{p} is not a Game Boy ROM: {size} bytes (a ROM is 32 KiB to 8 MiB, in 16 KiB banks)")
    with open(p, "rb") as f:
        header = f.read(0x150)
    x = 0
    for i in range(0x134, 0x14D):
        x = (x - header[i] - 1) & 0xFF
    if header[0x14D] != x:
        raise UserError(f"{p} is not a Game Boy ROM: header checksum mismatch "
                        f"(byte 0x14D is {header[0x14D]:#04x}, expected {x:#04x})")
    cart = header[0x147]
    if cart not in KNOWN_CART_TYPES:
        raise UserError(f"{p}: cartridge type {cart:#04x} is not supported by PyBoy")
    title = header[0x134:0x143].split(b"\0")[0].decode("ascii", "replace").strip()
    return RomInfo(title=title, cart_type=cart, size=size, cgb_flag=header[0x143])


def rom_mode(info: RomInfo) -> str:
    """What the cartridge runs on, from header byte 0x143: ``"dual"`` (0x80), ``"cgb"`` (0xC0) or ``"dmg"``.

    Bit 7 set means the game knows the Color console; 0xC0 additionally refuses to run on a
    monochrome one.  Anything else is a monochrome game.
    """
    if info.cgb_flag == 0xC0:
        return "cgb"
    if info.cgb_flag & 0x80:
        return "dual"
    return "dmg"
