"""``retrocolor demo``: see the filter work on real emulator output, with no ROM or video of your own.

We cannot ship a commercial game, and a canned animation would prove nothing about the live
path.  So the project assembles its *own* tiny Game Boy program here, in Python (about 150
bytes of SM83 machine code plus generated tiles): a side-scrolling landscape with a bouncing
ball and a d-pad-controlled star.  PyBoy runs it like any cartridge (through PyBoy's own open
boot ROM, which does not check the Nintendo logo, so the ROM carries no copyrighted bytes), and
each frame goes through the same :class:`realtime.engine.Colorizer` as ``play`` and ``live``.

With a display the demo opens a window showing grey | colour side by side; without one it says
so, and writes a short MP4 plus a side-by-side PNG to paths it prints.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------- a tiny SM83 assembler

#: Frames PyBoy's boot ROM takes before the cartridge's first picture (measured: 68); the demo skips them.
BOOT_FRAMES = 70

LCDC_ON = 0x93  # LCD on, BG+window tile data at 0x8000, BG map 0x9800, sprites on (8x8), BG on


class _Asm:
    """Just enough of an assembler for the demo: bytes, labels, relative jumps and calls.

    Relative jumps are resolved in a second pass, so forward references work.
    """

    def __init__(self, origin: int) -> None:
        self.origin = origin
        self.code = bytearray()
        self.labels: dict[str, int] = {}
        self.fixups: list[tuple[int, str, str]] = []  # (offset in code, label, kind "rel"|"abs")

    @property
    def pc(self) -> int:
        return self.origin + len(self.code)

    def label(self, name: str) -> None:
        self.labels[name] = self.pc

    def db(self, *values: int) -> None:
        self.code.extend(v & 0xFF for v in values)

    def jr(self, opcode: int, target: str) -> None:
        """JR/JR cc with an 8-bit signed displacement to ``target``."""
        self.db(opcode, 0)
        self.fixups.append((len(self.code) - 1, target, "rel"))

    def abs16(self, opcode: int, target: str) -> None:
        """JP/CALL/LD rr,a16 with a 16-bit little-endian address of ``target``."""
        self.db(opcode, 0, 0)
        self.fixups.append((len(self.code) - 2, target, "abs"))

    def assemble(self, extra_labels: dict[str, int]) -> bytes:
        labels = {**self.labels, **extra_labels}
        for off, name, kind in self.fixups:
            addr = labels[name]
            if kind == "rel":
                disp = addr - (self.origin + off + 1)
                if not -128 <= disp <= 127:
                    raise ValueError(f"jr to {name} out of range ({disp})")
                self.code[off] = disp & 0xFF
            else:
                self.code[off] = addr & 0xFF
                self.code[off + 1] = addr >> 8
        return bytes(self.code)


def _tile(rows: list[str]) -> bytes:
    """8 rows of 8 characters '0'..'3' (shade indices) -> 16 bytes of 2bpp Game Boy tile data."""
    out = bytearray()
    for row in rows:
        lo = hi = 0
        for i, ch in enumerate(row):
            v = int(ch)
            lo |= (v & 1) << (7 - i)
            hi |= ((v >> 1) & 1) << (7 - i)
        out += bytes((lo, hi))
    return bytes(out)


_TILES = [
    _tile(["00000000"] * 8),  # 0 sky
    _tile(["00000000", "00011000", "00111100", "01111110", "11111111", "11111111", "01111110", "00000000"]),  # 1 cloud
    _tile(["00000000", "00000000", "00011000", "00122100",
           "01222210", "12222221", "22222222", "22222222"]),  # 2 hill top
    _tile(["22222222", "22212222", "22222222", "22222122", "22222222", "21222222", "22222222", "22222212"]),  # 3 hill
    _tile(["11111111", "12121212", "21212121", "22222222", "22232222", "22222222", "22222232", "22222222"]),  # 4 grass
    _tile(["33333333", "22232222", "22232222", "22232222", "33333333", "22222223", "22222223", "22222223"]),  # 5 brick
    _tile(["33333333", "33323333", "33333333", "32333333", "33333323", "33333333", "33233333", "33333333"]),  # 6 earth
    _tile(["00333300", "03111130", "31101113", "31111113", "31111113", "31111123", "03111230", "00333300"]),  # 7 ball
    _tile(["00033000", "00322300", "33222233", "32222223", "03222230", "03233230", "32300323", "33000033"]),  # 8 star
]


def _tilemap() -> bytes:
    """A 32x32 background: sky with clouds, rolling hills, grass, bricks, earth (a side-scroller)."""
    m = np.zeros((32, 32), np.uint8)
    for x in range(0, 32, 7):
        m[2 + (x // 7) % 3, x] = 1
        m[2 + (x // 7) % 3, x + 1 if x + 1 < 32 else 0] = 1
    for x in range(32):
        top = 9 + int(round(2 * np.sin(x / 32 * 2 * np.pi * 2)))
        m[top, x] = 2
        m[top + 1:13, x] = 3
    m[13, :] = 4
    m[14:16, :] = 5
    m[16:18, :] = 6
    m[18:, :] = 6
    return m.tobytes()


def _oam() -> bytes:
    """Sprite table: OAM entries are (y+16, x+8, tile, flags); unused sprites sit off screen (y=0)."""
    oam = bytearray(160)
    oam[0:4] = bytes((16 + 96, 8 + 20, 7, 0))  # ball, moves by itself
    oam[4:8] = bytes((16 + 40, 8 + 80, 8, 0))  # star, moved by the d-pad
    return bytes(oam)


#: Colours of the Color versions of the cartridge (RGB555 per shade index 0..3): sky, cloud, hill, earth.
CGB_BG_PALETTE = ((20, 26, 31), (31, 31, 31), (6, 22, 4), (14, 7, 2))
CGB_OBJ_PALETTE = ((31, 31, 31), (31, 24, 0), (31, 8, 4), (8, 0, 12))
CGB_FLAGS = {"dmg": 0x00, "dual": 0x80, "cgb": 0xC0}


def _rgb555(palette: tuple[tuple[int, int, int], ...]) -> list[int]:
    out = []
    for r, g, b in palette:
        v = r | (g << 5) | (b << 10)
        out += [v & 0xFF, v >> 8]
    return out


def build_demo_rom(title: str = "RETROCOLOR", mode: str = "dmg") -> bytes:
    """Assemble the 32 KiB demo cartridge: valid header and checksums, no Nintendo logo.

    ``mode`` is the header's console flag: ``"dmg"`` (the demo: a monochrome game), ``"dual"``
    or ``"cgb"``.  The two Color versions also load a background and a sprite palette (a write a
    monochrome console ignores), so a dual cartridge shows the same scene in grey and in colour:
    the tests' small stand-in for a real dual-mode game.

    The program (at 0x150) turns the LCD off, copies tiles, map and sprites into VRAM/OAM, turns
    the LCD on, then once per frame (at the start of VBlank) scrolls the background one pixel,
    bobs it vertically every 4th frame, moves the ball, and moves the star by the d-pad.
    """
    a = _Asm(0x150)
    a.db(0xF3)                                   # di
    a.db(0x31, 0xFE, 0xFF)                       # ld sp,$FFFE
    a.label("wait_vb0")
    a.db(0xF0, 0x44, 0xFE, 0x90)                 # ldh a,(LY) ; cp 144
    a.jr(0x38, "wait_vb0")                       # jr c,wait_vb0
    a.db(0xAF, 0xE0, 0x40)                       # xor a ; ldh (LCDC),a  -> LCD off
    for dest, src, length in ((0x8000, "tiles", len(_TILES) * 16), (0x9800, "map", 1024), (0xFE00, "oam", 160)):
        a.db(0x21, dest & 0xFF, dest >> 8)       # ld hl,dest
        a.abs16(0x11, src)                       # ld de,src
        a.db(0x01, length & 0xFF, length >> 8)   # ld bc,length
        a.abs16(0xCD, "copy")                    # call copy
    a.db(0x3E, 0xE4, 0xE0, 0x47, 0xE0, 0x48)     # ld a,$E4 ; ldh (BGP),a ; ldh (OBP0),a
    if mode != "dmg":
        for index_reg, data_reg, pal in ((0x68, 0x69, CGB_BG_PALETTE), (0x6A, 0x6B, CGB_OBJ_PALETTE)):
            a.db(0x3E, 0x80, 0xE0, index_reg)    # ld a,$80 ; ldh (BCPS/OCPS),a  (index 0, auto-increment)
            for byte in _rgb555(pal):
                a.db(0x3E, byte, 0xE0, data_reg)  # ld a,byte ; ldh (BCPD/OCPD),a
    a.db(0xAF, 0xE0, 0x42, 0xE0, 0x43, 0xE0, 0x80)  # xor a ; SCY=SCX=0 ; frame counter=0
    a.db(0x3E, LCDC_ON, 0xE0, 0x40)              # ld a,LCDC_ON ; ldh (LCDC),a
    a.label("loop")
    a.label("wait_vb")
    a.db(0xF0, 0x44, 0xFE, 0x90)                 # ldh a,(LY) ; cp 144
    a.jr(0x20, "wait_vb")                        # jr nz,wait_vb
    a.db(0xF0, 0x80, 0x3C, 0xE0, 0x80)           # frame counter += 1
    a.db(0xF0, 0x43, 0x3C, 0xE0, 0x43)           # SCX += 1
    a.db(0xF0, 0x80, 0xE6, 0x1F, 0xFE, 0x10)     # a = frame & 31 ; cp 16
    a.jr(0x38, "bob_up")                         # jr c,bob_up  (first half: SCY up, second: down)
    a.db(0xF0, 0x42, 0x3D, 0xE0, 0x42)           # SCY -= 1
    a.jr(0x18, "bob_done")
    a.label("bob_up")
    a.db(0xF0, 0x42, 0x3C, 0xE0, 0x42)           # SCY += 1
    a.label("bob_done")
    a.db(0x21, 0x01, 0xFE, 0x34, 0x34)           # ld hl,$FE01 ; inc (hl) x2 -> ball x += 2
    a.db(0x3E, 0x20, 0xE0, 0x00, 0xF0, 0x00, 0xF0, 0x00)  # select d-pad ; read twice (settle)
    a.db(0x2F, 0xE6, 0x0F, 0x47)                 # cpl ; and $0F ; ld b,a  (bit0 R, 1 L, 2 U, 3 D)
    a.db(0x21, 0x05, 0xFE)                       # ld hl,$FE05 (star x)
    a.db(0xCB, 0x40, 0x28, 0x01, 0x34)           # bit 0,b ; jr z,+1 ; inc (hl)
    a.db(0xCB, 0x48, 0x28, 0x01, 0x35)           # bit 1,b ; jr z,+1 ; dec (hl)
    a.db(0x21, 0x04, 0xFE)                       # ld hl,$FE04 (star y)
    a.db(0xCB, 0x50, 0x28, 0x01, 0x35)           # bit 2,b ; jr z,+1 ; dec (hl)
    a.db(0xCB, 0x58, 0x28, 0x01, 0x34)           # bit 3,b ; jr z,+1 ; inc (hl)
    a.db(0x3E, 0x30, 0xE0, 0x00)                 # deselect joypad
    a.label("wait_out")
    a.db(0xF0, 0x44, 0xFE, 0x90)                 # ldh a,(LY) ; cp 144
    a.jr(0x28, "wait_out")                       # jr z,wait_out  (one step per frame)
    a.abs16(0xC3, "loop")                        # jp loop
    a.label("copy")
    a.db(0x1A, 0x22, 0x13, 0x0B, 0x78, 0xB1)     # ld a,(de) ; ld (hl+),a ; inc de ; dec bc ; ld a,b ; or c
    a.jr(0x20, "copy")                           # jr nz,copy
    a.db(0xC9)                                   # ret

    data_at = 0x1000
    tiles = b"".join(_TILES)
    blobs = {"tiles": tiles, "map": _tilemap(), "oam": _oam()}
    addrs, pos = {}, data_at
    for name, blob in blobs.items():
        addrs[name] = pos
        pos += len(blob)
    code = a.assemble(addrs)

    rom = bytearray(32 * 1024)
    rom[0x100:0x104] = bytes((0x00, 0xC3, 0x50, 0x01))  # entry point: nop ; jp $0150
    name = title.upper().encode("ascii", "replace")[:15]
    rom[0x134:0x134 + len(name)] = name
    rom[0x143] = CGB_FLAGS[mode]  # the demo is DMG only: the point is colouring monochrome output
    rom[0x147] = 0x00  # ROM only
    rom[0x148] = 0x00  # 32 KiB
    rom[0x149] = 0x00  # no RAM
    rom[0x14A] = 0x01  # non-Japanese
    rom[0x14B] = 0x00
    rom[0x150:0x150 + len(code)] = code
    for name_, blob in blobs.items():
        rom[addrs[name_]:addrs[name_] + len(blob)] = blob
    return finalize_header(bytes(rom))


def finalize_header(rom: bytes) -> bytes:
    """Fill in the header checksum (0x14D) and the global checksum (0x14E-0x14F)."""
    b = bytearray(rom)
    x = 0
    for i in range(0x134, 0x14D):
        x = (x - b[i] - 1) & 0xFF
    b[0x14D] = x
    b[0x14E] = b[0x14F] = 0
    total = sum(b) & 0xFFFF
    b[0x14E], b[0x14F] = total >> 8, total & 0xFF
    return bytes(b)


#: mGBA recognises a Game Boy ROM by these 4 bytes at 0x104 (the start of the header logo; it
#: compares no more: ``GBIsROM`` in mGBA's ``src/gb/gb.c``).  The demo leaves the logo out; a copy
#: for mGBA (``bench --emulator``, the window tests) carries just this signature.  It has no boot
#: ROM to satisfy, so nothing else of the logo is needed.
MGBA_SIGNATURE = bytes((0xCE, 0xED, 0x66, 0x66))


def write_demo_rom(path: str | os.PathLike[str], *, for_mgba: bool = False) -> Path:
    """Write the demo cartridge to ``path`` atomically and return the path.

    ``for_mgba``: add the 4-byte signature mGBA looks for (see :data:`MGBA_SIGNATURE`).
    """
    from utils.fsio import atomic_write_bytes

    rom = build_demo_rom()
    if for_mgba:
        b = bytearray(rom)
        b[0x104:0x108] = MGBA_SIGNATURE
        rom = finalize_header(bytes(b))
    atomic_write_bytes(path, rom)
    return Path(path)


# --------------------------------------------------------------------------- the demo command


@dataclass
class DemoResult:
    """What ``retrocolor demo`` did, for the CLI to print."""

    frames: int
    seconds: float
    windowed: bool
    video: Path | None
    png: Path | None
    model: str

    def summary(self) -> str:
        parts = [f"demo: {self.frames} frames of the built-in homebrew cartridge colorized with {self.model}"
                 f" in {self.seconds:.1f} s"]
        if self.video is not None:
            parts.append(f"video (grey | colour): {self.video}")
        if self.png is not None:
            parts.append(f"side-by-side PNG: {self.png}")
        return "\n".join(parts)


def run_demo(*, seconds: float = 20.0, model: str | None = None, record: Path | None = None,
             headless: bool = False, scale: int = 3, png: Path | None = None) -> DemoResult:
    """Run the homebrew cartridge in PyBoy through the colorizer, windowed or headless.

    Headless (asked for, or no display): ``seconds`` of emulated time are recorded to ``record``
    (default: a file in the temp folder) and the last frame is written as a grey | colour PNG.
    """
    from realtime.display import has_display
    from realtime.play import PlayOptions, play

    windowed = not headless and has_display()
    if not headless and not windowed:
        print("demo: no display found (DISPLAY is not set); running headless and writing files instead",
              file=sys.stderr)
    out_dir = Path(tempfile.gettempdir())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if record is None and not windowed:
        record = out_dir / f"retrocolor-demo-{stamp}.mp4"
    if png is None:
        png = out_dir / f"retrocolor-demo-{stamp}.png"
    with tempfile.TemporaryDirectory(prefix="retrocolor-demo-") as tmp:
        rom = write_demo_rom(Path(tmp) / "retrocolor-demo.gb")
        frames = max(1, int(round(seconds * 59.7275)))
        opts = PlayOptions(model=model, headless=not windowed, frames=frames, record=record, scale=scale,
                           side_by_side=True, title="retrocolor demo: grey | colour (F: filter, C: colours, Esc: quit)",
                           last_png=png, seconds=None if not windowed else seconds, skip_frames=BOOT_FRAMES,
                           remember=False)  # the built-in cartridge: a C press here is a try, not a pick
        res = play(rom, opts)
    return DemoResult(frames=res.frames, seconds=res.seconds, windowed=windowed, video=res.video, png=res.png,
                      model=res.model)
