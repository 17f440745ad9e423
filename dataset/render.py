"""``retrocolor dataset render``: turn Game Boy ROMs into training data by playing them in PyBoy.

Why: a model that saw 21 games does not know the next one.  Hundreds of homebrew ROMs are a far
larger corpus than any longplay collection, and a *dual-mode* cartridge gives what no video can:
the real monochrome screen and the game's own Color screen of the same moment.

How one game is rendered (:func:`render_game`):

* The mode comes from the header (byte 0x143): 0x80 dual, 0xC0 Color-only, else monochrome.
* A Color emulator runs the ROM; for a dual-mode ROM a second, monochrome emulator runs it in
  lockstep: the same button presses on the same frames, the same save states restored together
  (PyBoy's boot takes the same 64 frames in both modes, so the games start aligned).
* Exploration (in the spirit of Go-Explore) reaches deep into a game rather than its title
  screen: each sampled screen is reduced to a coarse *cell* (10x9 blocks, 8 grey levels); a new
  cell is kept in an archive with both emulators' save states; each episode restores the least
  visited cells (weight 1/sqrt(1 + visits)) and plays random button presses from there, A and
  Start favoured so menus get pushed through.  When no new cell turns up for a while the game is
  *stalled*: we hammer Start/A from the newest cells, and after a few stalls in a row we stop
  and say so.
* A frame is kept when it is not blank, not an exact copy of a kept frame, and its cell has not
  given :data:`PER_CELL` frames yet (near-duplicates of one scene would only weight it up).
  Names are ``s<seed>_<tick>.png``, ``tick`` the run's emulated-frame counter, so they sort in
  play order.  A monochrome twin (``dmg/``, grey 0/85/170/255) is kept only where the edge maps
  of the two frames agree (:func:`twins_agree`): the Color code path of a game can draw another
  screen at the same moment.
* Deterministic for a given seed: every decision comes from one RNG seeded by (seed, game).

A run over many ROMs (:func:`render`) runs each game in its own process, ``jobs`` at a time, with
a wall-clock limit per ROM, so a ROM that hangs or crashes the emulator costs one line, not the
run.  A game whose ``render.json`` says it finished is skipped on a rerun; a partial game is
replayed from its seed (the same frames come out, files already written are kept).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from capture.rom import RomInfo, rom_mode, validate_rom
from utils.errors import UserError
from utils.fsio import atomic_write_json
from utils.images import write_png
from utils.progress import progress

ROM_SUFFIXES = (".gb", ".gbc", ".cgb")
#: PyBoy's open boot ROM hands over to the cartridge after 64 frames in both modes (measured).
BOOT_FRAMES = 64
#: The four grey levels of the monochrome screen (the layout of ../shared/data/gbc/GAME/dmg).
DMG_SHADES = (0xFFFFFF, 0xAAAAAA, 0x555555, 0x000000)
#: Frames kept per coarse cell: enough for variety within one scene, not enough to weight it up.
PER_CELL = 3
#: Save states kept in the archive (two emulators' states are ~340 KB together).
MAX_CELLS = 256
#: At most one save every this many sampled screens (see _Explorer.sample).
SAVE_EVERY = 3
BUTTONS = ("a", "b", "start", "select", "up", "down", "left", "right")
#: Button combinations an episode draws from, with weights: A and Start push through menus.
ACTIONS: tuple[tuple[tuple[str, ...], float], ...] = (
    ((), 1.0), (("a",), 3.0), (("b",), 1.5), (("start",), 1.5), (("select",), 0.3),
    (("up",), 1.5), (("down",), 1.5), (("left",), 1.5), (("right",), 2.5),
    (("right", "a"), 1.0), (("left", "a"), 0.5), (("right", "b"), 0.7), (("up", "a"), 0.5), (("down", "a"), 0.5),
)
STATUS_FINISHED = ("done", "stalled", "budget", "timeout")
#: A game whose emulator gave no new frame for this long is hung (one frame takes ~0.1 ms).
HUNG_SECONDS = 20.0
#: Settings a game's frames depend on: a rerun with other values would mix two runs in one folder.
#: (``frames`` and ``max_emulated`` only extend a run: the same seed replays the same prefix.)
SAME_RUN = ("seed", "sample_every", "stall_after", "max_stalls")


@dataclass
class RenderConfig:
    """Settings of a render; all of them go into each game's manifest."""

    frames: int = 150              # colour frames to keep per game
    seed: int = 0
    max_emulated: int = 40_000     # emulated frames per game (per emulator)
    time_limit: float = 180.0      # wall seconds per game; a hung one is killed at kill_after()
    sample_every: int = 23         # emulated frames between two sampled screens
    stall_after: int = 40          # episodes without a new cell that make a stall
    max_stalls: int = 3            # stalls in a row (each with a menu push) before giving up
    mono: bool = False             # also render monochrome-only ROMs (their grey frames alone)

    def kill_after(self) -> float:
        """When a game's process is killed: it stops by itself at ``time_limit`` unless the emulator
        hangs inside one frame, so give it the time to write its frames, then no more (2x, <= +30 s)."""
        return self.time_limit + min(30.0, self.time_limit)


@dataclass
class GameResult:
    """One game's row of the summary table (also its ``render.json``)."""

    slug: str
    rom: str
    mode: str = "?"
    title: str = ""
    status: str = "failed"
    frames: int = 0
    twins: int = 0
    twins_rejected: int = 0
    emulated: int = 0
    scenes: int = 0
    stalls: int = 0
    seconds: float = 0.0
    seed: int = 0
    error: str = ""
    config: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- frame tests


def _grey(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0].astype(np.uint16) * 77 + rgb[..., 1].astype(np.uint16) * 150
            + rgb[..., 2].astype(np.uint16) * 29 >> 8).astype(np.uint8)


def cell_key(rgb: np.ndarray) -> bytes:
    """A coarse picture of a screen (10x9 blocks of 16x16 pixels, 8 grey levels): one *scene*."""
    small = cv2.resize(_grey(rgb), (10, 9), interpolation=cv2.INTER_AREA)
    return (small >> 5).tobytes()


def is_blank(rgb: np.ndarray) -> bool:
    """True for a screen with almost nothing on it: one grey level over 97% of it, or almost no contrast.

    Judged on the grey image (a 256-bin histogram is ~50x cheaper than counting RGB colours, and
    one colour covering 97% of the screen covers 97% of one grey level).
    """
    grey = _grey(rgb)
    if np.bincount(grey.ravel(), minlength=256).max() > 0.97 * grey.size:
        return True
    return float(grey.std()) < 4.0


def _edges(img: np.ndarray) -> np.ndarray:
    diff_h = img[:, 1:] != img[:, :-1]
    diff_v = img[1:] != img[:-1]
    if img.ndim == 3:
        diff_h, diff_v = diff_h.any(-1), diff_v.any(-1)
    e = np.zeros(img.shape[:2], bool)
    e[:, 1:] |= diff_h
    e[1:] |= diff_v
    return e


def twins_agree(rgb: np.ndarray, grey: np.ndarray, recall: float = 0.95, precision: float = 0.8) -> bool:
    """Do a Color frame and a monochrome frame show the same scene?  Compared on edge maps.

    Every monochrome edge should be a colour edge (within one pixel): ``recall``.  Most colour
    edges should be monochrome edges (``precision``; lower, since two colours may share a shade).
    Calibrated on ../shared's twins: matched pairs score >= 0.98 / >= 0.88, pairs from another
    moment of the same game mostly 0.4-0.85.
    """
    ec, ed = _edges(rgb), _edges(grey)
    if not ed.any() or not ec.any():
        return False
    kernel = np.ones((3, 3), np.uint8)
    near_c = cv2.dilate(ec.astype(np.uint8), kernel) > 0
    near_d = cv2.dilate(ed.astype(np.uint8), kernel) > 0
    r = (ed & near_c).sum() / ed.sum()
    p = (ec & near_d).sum() / ec.sum()
    return bool(r >= recall and p >= precision)


# --------------------------------------------------------------------------- the emulators


class Lockstep:
    """One Color emulator and, for a dual-mode ROM, a monochrome one driven with the same inputs."""

    def __init__(self, rom: bytes, mode: str) -> None:
        from pyboy import PyBoy

        self.emus = []
        modes = {"dual": (True, False), "cgb": (True,), "dmg": (False,)}[mode]
        for cgb in modes:
            # The ROM goes in as bytes: PyBoy then neither reads nor writes a .ram file beside it.
            self.emus.append(PyBoy(io.BytesIO(rom), window="null", sound_emulated=False, cgb=cgb,
                                   log_level="CRITICAL", color_palette=DMG_SHADES, no_input=False))
        self.held: tuple[str, ...] = ()

    def press(self, buttons: tuple[str, ...]) -> None:
        for e in self.emus:
            for b in self.held:
                if b not in buttons:
                    e.button_release(b)
            for b in buttons:
                if b not in self.held:
                    e.button_press(b)
        self.held = buttons

    def tick(self, n: int, render: bool = False) -> None:
        if n > 0:
            for e in self.emus:
                e.tick(n, render)

    def screens(self) -> list[np.ndarray]:
        return [np.ascontiguousarray(e.screen.ndarray[..., :3]) for e in self.emus]

    def save(self) -> list[bytes]:
        out = []
        for e in self.emus:
            buf = io.BytesIO()
            e.save_state(buf)
            out.append(buf.getvalue())
        return out

    def load(self, states: list[bytes]) -> None:
        self.press(())
        for e, s in zip(self.emus, states, strict=True):
            e.load_state(io.BytesIO(s))

    def close(self) -> None:
        for e in self.emus:
            with contextlib.suppress(Exception):
                e.stop(False)


@dataclass
class _Cell:
    states: list[bytes] | None
    visits: int = 0
    kept: int = 0
    found: int = 0


class _Explorer:
    """The exploration loop of one game (see the module docstring)."""

    def __init__(self, emu: Lockstep, mode: str, out: Path, cfg: RenderConfig, rng: np.random.Generator,
                 deadline: float, beat: Callable[[int], None] | None = None) -> None:
        self.emu, self.mode, self.out, self.cfg, self.rng, self.deadline = emu, mode, out, cfg, rng, deadline
        self.beat = beat
        self.cells: dict[bytes, _Cell] = {}
        self.order: list[bytes] = []          # cells in the order found (newest last)
        self.tick = 0                         # emulated frames so far, over all episodes
        self.samples = 0                      # screens looked at
        self.last_save = -SAVE_EVERY          # the sample of the last save
        self.seen: set[bytes] = set()         # digests of kept frames
        self.res = GameResult(slug=out.name, rom="", mode=mode, seed=cfg.seed)
        names, weights = zip(*ACTIONS, strict=True)
        self.actions = names
        self.weights = np.asarray(weights) / sum(weights)
        self.colour = mode in ("dual", "cgb")

    # -- budget
    def out_of_budget(self) -> str | None:
        kept = self.res.frames
        if kept >= self.cfg.frames:
            return "done"
        if self.tick >= self.cfg.max_emulated:
            return "budget"
        if time.monotonic() > self.deadline:
            return "timeout"
        return None

    # -- one sampled screen
    def sample(self) -> bool:
        """Look at the screen now: archive a new scene, keep the frame if it is worth keeping.

        Returns True when the scene (cell) was new.
        """
        self.emu.tick(1, True)
        self.tick += 1
        self.samples += 1
        if self.beat is not None:
            self.beat(self.tick)
        screens = self.emu.screens()
        main = screens[0]
        if is_blank(main):
            return False
        key = cell_key(main)
        cell = self.cells.get(key)
        new = cell is None
        if new:
            # Saving both emulators costs ~75 ms, most of a game's time: a burst of new scenes
            # (a scrolling level) keeps a state for every SAVE_EVERY-th sample, which reaches
            # the same places at a third of the cost.
            fresh = self.samples - self.last_save >= SAVE_EVERY and len(self.order) < MAX_CELLS
            states = self.emu.save() if fresh else None
            if fresh:
                self.last_save = self.samples
            cell = self.cells[key] = _Cell(states=states, found=self.tick)
            self.order.append(key)
        if cell.kept >= PER_CELL or self.res.frames >= self.cfg.frames:
            return new
        digest = hashlib.blake2b(main.tobytes(), digest_size=16).digest()
        if digest in self.seen:
            return new
        self.seen.add(digest)
        cell.kept += 1
        self.write(screens)
        return new

    def write(self, screens: list[np.ndarray]) -> None:
        name = f"s{self.cfg.seed}_{self.tick:07d}.png"
        if self.mode == "dmg":  # no colour truth: the grey frame alone, under dmg/ (never read as colour)
            self._write_once(self.out / "dmg" / name, screens[0][..., 0])
            self.res.frames += 1
            return
        self._write_once(self.out / name, screens[0])
        self.res.frames += 1
        if self.mode == "dual":
            grey = screens[1][..., 0]
            if twins_agree(screens[0], grey):
                self._write_once(self.out / "dmg" / name, grey)
                self.res.twins += 1
            else:
                self.res.twins_rejected += 1

    @staticmethod
    def _write_once(path: Path, img: np.ndarray) -> None:
        # A partial game is replayed from its seed: what a killed run already wrote is the same
        # file, and the atomic writer guarantees it is whole, so it stays.
        if not path.is_file():
            write_png(path, img)

    # -- episodes
    def choose_cell(self) -> bytes:
        keys = [k for k in self.order if self.cells[k].states is not None]
        visits = np.asarray([self.cells[k].visits for k in keys], float)
        w = 1.0 / np.sqrt(1.0 + visits)
        return keys[int(self.rng.choice(len(keys), p=w / w.sum()))]

    def step(self, buttons: tuple[str, ...]) -> bool:
        """Press ``buttons`` for part of one sampling interval, then look at the screen."""
        every = self.cfg.sample_every
        hold = int(self.rng.integers(2, every))
        self.emu.press(buttons)
        self.emu.tick(hold)
        self.emu.press(())
        self.emu.tick(every - 1 - hold)
        self.tick += every - 1
        return self.sample()

    def episode(self, menu_push: bool = False) -> int:
        """Play from a chosen cell; returns how many new cells it found."""
        if self.order:
            key = self.order[-1 - int(self.rng.integers(0, min(4, len(self.order))))] if menu_push \
                else self.choose_cell()
            cell = self.cells[key]
            if cell.states is not None:
                self.emu.load(cell.states)
            cell.visits += 1
        new = 0
        last = 0
        for _ in range(int(self.rng.integers(6, 20))):
            if menu_push:
                buttons = ("start",) if self.rng.random() < 0.4 else ("a",)
            elif self.rng.random() < 0.6:
                buttons = self.actions[last]
            else:
                last = int(self.rng.choice(len(self.actions), p=self.weights))
                buttons = self.actions[last]
            new += self.step(buttons)
            if self.out_of_budget():
                break
        return new

    def run(self) -> None:
        self.emu.tick(BOOT_FRAMES)
        self.tick += BOOT_FRAMES
        # Let the game's own intro play once before any button is pressed.
        for _ in range(8):
            self.emu.tick(self.cfg.sample_every - 1)
            self.tick += self.cfg.sample_every - 1
            self.sample()
        idle = 0
        stalls = 0
        while (reason := self.out_of_budget()) is None:
            if not any(c.states is not None for c in self.cells.values()):
                found = self.episode()  # nothing archived yet (blank intro): play on from here
            elif idle >= self.cfg.stall_after:
                self.res.stalls += 1
                stalls += 1
                found = sum(self.episode(menu_push=True) for _ in range(4))
                if found:
                    stalls = 0
                elif stalls >= self.cfg.max_stalls:
                    reason = "stalled"
                    break
                idle = 0
            else:
                found = self.episode()
            idle = 0 if found else idle + 1
        self.res.status = reason or "done"
        self.res.emulated = self.tick
        self.res.scenes = len(self.cells)


def render_game(rom_path: str | os.PathLike[str], out: str | os.PathLike[str], cfg: RenderConfig,
                info: RomInfo | None = None, beat: Callable[[int], None] | None = None) -> GameResult:
    """Render one ROM into ``out`` (``*.png`` colour frames, ``dmg/*.png`` twins, ``render.json``).

    ``beat(tick)`` is called at every sampled screen: the parent of a render run watches it to
    tell a hung emulator (no new frame for :data:`HUNG_SECONDS`) from a slow game.
    """
    rom_path, out = Path(rom_path), Path(out)
    info = info or validate_rom(rom_path)
    mode = rom_mode(info)
    t0 = time.monotonic()
    data = rom_path.read_bytes()
    seed = int.from_bytes(hashlib.sha256(f"{cfg.seed}:{out.name}".encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob(".*.tmp*"), *out.glob("dmg/.*.tmp*")]:  # a killed run's half-written frame
        stale.unlink(missing_ok=True)
    _write_result(out, GameResult(slug=out.name, rom=str(rom_path), mode=mode, title=info.title,
                                  status="running", seed=cfg.seed, config=asdict(cfg)))
    emu = Lockstep(data, mode)
    try:
        ex = _Explorer(emu, mode, out, cfg, rng, deadline=t0 + cfg.time_limit, beat=beat)
        ex.run()
    finally:
        emu.close()
    res = ex.res
    res.rom, res.title, res.config = str(rom_path), info.title, asdict(cfg)
    res.seconds = round(time.monotonic() - t0, 1)
    _write_result(out, res)
    return res


def _write_result(out: Path, res: GameResult) -> None:
    atomic_write_json(out / "render.json", asdict(res))


def read_result(game_dir: Path) -> GameResult | None:
    """The game's ``render.json``, or None where there is none (or it is unreadable)."""
    try:
        raw = json.loads((game_dir / "render.json").read_text(encoding="utf-8"))
        return GameResult(**{k: v for k, v in raw.items() if k in GameResult.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return None


# --------------------------------------------------------------------------- many ROMs


def find_roms(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """ROM files named directly or found (recursively) in folders, sorted, each game once."""
    roms: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            roms.extend(sorted(f for f in p.rglob("*") if f.suffix.lower() in ROM_SUFFIXES and f.is_file()))
        elif p.is_file():
            roms.append(p)
        else:
            raise UserError(f"no such ROM file or folder: {p}")
    if not roms:
        raise UserError("no ROM files found (looked for " + ", ".join(ROM_SUFFIXES) + ")")
    slugs: dict[str, Path] = {}
    for r in roms:
        if r.stem in slugs and slugs[r.stem] != r:
            raise UserError(f"two ROMs share the name {r.stem!r}: {slugs[r.stem]} and {r}")
        slugs[r.stem] = r
    return list(slugs.values())


def _worker(rom: str, out: str, cfg: RenderConfig, heartbeat: Any) -> None:
    # A child process: stray output from the emulator must not garble the parent's table.
    def beat(tick: int) -> None:
        heartbeat.value = tick

    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        try:
            render_game(rom, out, cfg, beat=beat)
        except Exception as e:  # noqa: BLE001 - one game's failure is one line of the table, never a traceback
            res = read_result(Path(out)) or GameResult(slug=Path(out).name, rom=rom)
            res.status, res.error = "failed", " ".join(f"{type(e).__name__}: {e}".split())[:300]
            with contextlib.suppress(Exception):
                _write_result(Path(out), res)
            sys.exit(3)


class _Job:
    """One game's process, watched: killed when its emulator stops giving frames (hung) or runs too long."""

    def __init__(self, proc: Any, heartbeat: Any, rom: Path, game_dir: Path) -> None:
        self.proc, self.heartbeat, self.rom, self.dir = proc, heartbeat, rom, game_dir
        self.started = self.last_change = time.monotonic()
        self.last_beat = -1
        self.killed = ""

    @classmethod
    def start(cls, ctx: Any, rom: Path, out: Path, cfg: RenderConfig) -> _Job:
        heartbeat = ctx.Value("q", -1, lock=False)
        proc = ctx.Process(target=_worker, args=(str(rom), str(out / rom.stem), cfg, heartbeat), daemon=True)
        proc.start()
        return cls(proc, heartbeat, rom, out / rom.stem)

    def finished(self, cfg: RenderConfig) -> bool:
        """True once the process has ended, or has just been killed for hanging."""
        if not self.proc.is_alive():
            self.proc.join()
            return True
        now = time.monotonic()
        if self.heartbeat.value != self.last_beat:
            self.last_beat, self.last_change = self.heartbeat.value, now
        elif now - self.last_change > HUNG_SECONDS:
            self.killed = f"no new frame for {HUNG_SECONDS:.0f} s (hung emulator)"
        if now - self.started > cfg.kill_after():
            self.killed = f"no answer after {cfg.kill_after():.0f} s (hung emulator)"
        if not self.killed:
            return False
        self.proc.kill()
        self.proc.join()
        return True

    def result(self) -> GameResult:
        """The game's row: its ``render.json``, or why there is none."""
        res = read_result(self.dir) or GameResult(slug=self.rom.stem, rom=str(self.rom))
        if self.killed:
            res.status, res.error = "killed", self.killed
        elif res.status == "running":
            res.status, res.error = "crashed", f"the emulator process died (exit code {self.proc.exitcode})"
        if res.status not in STATUS_FINISHED:
            res.rom = str(self.rom)
            with contextlib.suppress(UserError):
                _write_result(self.dir, res)
        return res


@dataclass
class RenderReport:
    """What a render run did (the CLI prints :meth:`table`)."""

    out: Path
    results: list[GameResult]
    skipped: list[tuple[str, str]]   # (rom, why) for ROMs that never started
    seconds: float
    jobs: int

    @property
    def rendered(self) -> list[GameResult]:
        return [r for r in self.results if r.status in STATUS_FINISHED and r.frames > 0]

    def table(self) -> str:
        lines = [f"{'game':28} {'mode':5} {'status':8} {'frames':>6} {'twins':>6} {'emulated':>9} "
                 f"{'scenes':>6} {'stalls':>6} {'s':>6}", "-" * 90]
        for r in sorted(self.results, key=lambda r: r.slug):
            lines.append(f"{r.slug[:28]:28} {r.mode:5} {r.status:8} {r.frames:6} {r.twins:6} {r.emulated:9} "
                         f"{r.scenes:6} {r.stalls:6} {r.seconds:6.1f}" + (f"  {r.error}" if r.error else ""))
        ok = self.rendered
        lines.append("-" * 90)
        colour = [r for r in ok if r.mode in ("dual", "cgb")]
        lines.append(f"{len(ok)} games rendered, {sum(r.frames for r in colour):,} colour frames, "
                     f"{sum(r.twins for r in ok):,} monochrome twins in {self.seconds:.0f} s ({self.jobs} jobs)")
        lines.append(f"games with >= 50 colour frames: {sum(r.frames >= 50 for r in colour)}; "
                     f"with >= 50 twins: {sum(r.twins >= 50 for r in ok)}; "
                     f"stalled: {sum(r.status == 'stalled' for r in ok)}")
        for rom, why in self.skipped:
            lines.append(f"skipped {rom}: {why}")
        for r in (r for r in self.results if r not in ok):
            why = r.error or f"{r.status} with no frame kept (blank or unchanging screens)"
            lines.append(f"no frames from {r.rom}: {r.status}: {why}" if r.error else f"no frames from {r.rom}: {why}")
        lines.append(f"corpus: {self.out} (per game: *.png, dmg/*.png, render.json; summary.json, manifest.json)")
        return "\n".join(lines)


def _plan(roms: Iterable[Path], out: Path, cfg: RenderConfig,
          skipped: list[tuple[str, str]]) -> tuple[list[tuple[Path, RomInfo]], list[GameResult]]:
    todo, done = [], []
    for rom in roms:
        try:
            info = validate_rom(rom)
        except UserError as e:
            skipped.append((str(rom), str(e)))
            continue
        if rom_mode(info) == "dmg" and not cfg.mono:
            skipped.append((str(rom), "monochrome-only ROM: no colour truth to learn from (--mono renders its "
                                      "grey frames alone)"))
            continue
        prev = read_result(out / rom.stem)
        if prev is not None and prev.config:
            fixed = {k: prev.config.get(k) for k in SAME_RUN}
            if fixed != {k: getattr(cfg, k) for k in SAME_RUN}:
                raise UserError(f"{out / rom.stem} holds a render with other settings ({fixed}); "
                                "use another -o folder or delete it to start again")
            if prev.status in STATUS_FINISHED and prev.config.get("frames") == cfg.frames \
                    and prev.config.get("max_emulated") == cfg.max_emulated:
                done.append(prev)
                continue
        todo.append((rom, info))
    return todo, done


def render(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], cfg: RenderConfig | None = None,
           jobs: int = 1) -> RenderReport:
    """Render every ROM under ``paths`` into the corpus ``out``, ``jobs`` games at a time."""
    cfg = cfg or RenderConfig()
    if cfg.frames < 1:
        raise UserError("--frames must be at least 1")
    if jobs < 1:
        raise UserError("--jobs must be at least 1")
    if cfg.time_limit <= 0:
        raise UserError("--time-limit must be positive")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    t0 = time.monotonic()
    skipped: list[tuple[str, str]] = []
    todo, results = _plan(find_roms(paths), out, cfg, skipped)
    for rom, why in skipped:
        print(f"render: skip {rom}: {why}", file=sys.stderr)
    if results:
        print(f"render: {len(results)} games already rendered with these settings (kept)", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    running: list[_Job] = []
    queue = list(todo)
    bar = progress(total=len(todo), unit="game", desc="render")
    try:
        while queue or running:
            while queue and len(running) < jobs:
                running.append(_Job.start(ctx, queue.pop(0)[0], out, cfg))
            time.sleep(0.05)
            for job in [j for j in running if j.finished(cfg)]:
                running.remove(job)
                res = job.result()
                results.append(res)
                bar.update(1)
                bar.set_postfix_str(f"{res.slug[:20]}: {res.frames} frames, {res.twins} twins")
                if bar.disable:
                    print(f"render: {res.slug}: {res.status}, {res.frames} frames, {res.twins} twins, "
                          f"{res.scenes} scenes, {res.seconds:.0f} s", file=sys.stderr, flush=True)
    finally:
        for job in running:
            job.proc.kill()
        bar.close()
    report = RenderReport(out=out, results=results, skipped=skipped, seconds=time.monotonic() - t0, jobs=jobs)
    _write_summary(out, report)
    if not report.rendered:
        raise UserError("nothing was rendered: " + (
            "; ".join(f"{Path(r).name}: {w}" for r, w in skipped[:3]) or
            "; ".join(f"{r.slug}: {r.status} {r.error}" for r in results[:3])))
    return report


def _write_summary(out: Path, report: RenderReport) -> None:
    """``summary.json`` (every game's row) and ``manifest.json`` (the layout of ../shared/data/gbc)."""
    every = {r.slug: asdict(r) for r in report.results}
    old = {}
    with contextlib.suppress(OSError, ValueError):
        old = json.loads((out / "summary.json").read_text(encoding="utf-8")).get("games", {})
    games = {**old, **every}
    atomic_write_json(out / "summary.json", {"games": dict(sorted(games.items())),
                                             "skipped": [{"rom": r, "why": w} for r, w in report.skipped]})
    manifest = {}
    for slug, g in sorted(games.items()):
        if g["status"] in STATUS_FINISHED and g["frames"] > 0:
            manifest[slug] = {"frames": g["frames"], "dmg_twins": g["twins"],
                              "mode": {"dual": "dual", "cgb": "colour-only", "dmg": "monochrome-only"}[g["mode"]],
                              "size": [160, 144]}
    atomic_write_json(out / "manifest.json", manifest)

