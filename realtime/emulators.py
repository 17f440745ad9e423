"""Real emulators on a private X display: what ``bench --emulator`` and the window tests run.

The live filter's real setting is an emulator playing on the same machine: it takes most of a
core, and its window is the capture source.  This module starts such a setting reproducibly:
a private ``Xvfb`` server, then mGBA (Debian's ``mgba-sdl``, ``/usr/games/mgba``) in monochrome
mode (``-C gb.model=DMG``) at an integer window scale, playing a ROM (by default the built-in
demo cartridge, so no ROM of the user's is needed), and then ``retrocolor live`` beside it as a
separate process, exactly as a player would run it.  Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realtime.display import stages_line
from utils.errors import UserError
from utils.fsio import atomic_write_json
from utils.geometry import check_scale

#: Emulators ``bench --emulator`` can start: name -> (executable candidates, window title).
EMULATORS = {"mgba": (("mgba", "/usr/games/mgba"), "mGBA")}
INSTALL_HINT = {"mgba": "apt install mgba-sdl"}


def find_executable(name: str) -> str:
    """Path of an emulator's executable, or a one-line :class:`UserError` saying how to install it."""
    if name not in EMULATORS:
        raise UserError(f"unknown emulator {name!r} (known: {', '.join(EMULATORS)})")
    for cand in EMULATORS[name][0]:
        path = shutil.which(cand) or (cand if os.path.isabs(cand) and os.access(cand, os.X_OK) else None)
        if path:
            return path
    raise UserError(f"{name} is not installed ({INSTALL_HINT[name]})")


@dataclass
class XServer:
    """A private Xvfb display; ``env`` is what child processes need to use it."""

    proc: subprocess.Popen[bytes]
    display: str

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, DISPLAY=self.display, SDL_VIDEODRIVER="x11", SDL_AUDIODRIVER="dummy",
                    PYGAME_HIDE_SUPPORT_PROMPT="1")

    def close(self) -> None:
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        if self.proc.poll() is None:
            self.proc.kill()


def start_xvfb(size: tuple[int, int] = (1280, 1024), timeout: float = 10.0) -> XServer:
    """Start ``Xvfb`` on the first free display number and wait until it accepts clients."""
    exe = shutil.which("Xvfb")
    if exe is None:
        raise UserError("Xvfb is not installed (apt install xvfb)")
    n = next((i for i in range(90, 400) if not Path(f"/tmp/.X11-unix/X{i}").exists()
              and not Path(f"/tmp/.X{i}-lock").exists()), None)
    if n is None:
        raise UserError("no free X display number between :90 and :399")
    proc = subprocess.Popen([exe, f":{n}", "-screen", "0", f"{size[0]}x{size[1]}x24", "-nolisten", "tcp"],  # noqa: S603
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    probe = shutil.which("xwininfo")
    while time.monotonic() < deadline:
        if Path(f"/tmp/.X11-unix/X{n}").exists():
            # the socket appears a moment before the server takes clients: ask it something
            if probe is None or subprocess.run([probe, "-root"], env=dict(os.environ, DISPLAY=f":{n}"),  # noqa: S603
                                               capture_output=True, timeout=5, check=False).returncode == 0:
                return XServer(proc, f":{n}")
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise UserError(f"Xvfb :{n} did not start within {timeout:g} s")


@contextlib.contextmanager
def using_display(display: str) -> Iterator[None]:
    """Point this process's X clients (xwininfo, xdotool, mss) at ``display`` for a while."""
    saved = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = display
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = saved


def start_emulator(name: str, rom: Path, xserver: XServer, scale: int = 3, *,
                   timeout: float = 15.0) -> tuple[subprocess.Popen[bytes], Any]:
    """Start emulator ``name`` on ``xserver`` playing ``rom`` in monochrome (DMG) mode at ``scale``.

    Returns the process and its window (:class:`capture.window.WindowInfo`) once it is mapped.
    """
    exe = find_executable(name)
    scale = check_scale(scale, "the emulator's window scale")
    argv = [exe, f"-{scale}", "-C", "gb.model=DMG", str(rom)]
    with tempfile.TemporaryFile() as log:  # read back only if the emulator fails; the child keeps its own fd
        proc = subprocess.Popen(argv, env=xserver.env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        return proc, _wait_for_window(proc, name, rom, xserver, log, timeout)


def _wait_for_window(proc: subprocess.Popen[bytes], name: str, rom: Path, xserver: XServer, log: Any,
                     timeout: float) -> Any:
    """The emulator's window once it is mapped and its size has settled."""
    from capture.window import list_windows

    title = EMULATORS[name][1]
    deadline = time.monotonic() + timeout
    last, since = None, 0.0
    with using_display(xserver.display):
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log.seek(0)
                said = " ".join(log.read().decode("utf-8", "replace").split())[-200:]
                raise UserError(f"{name} exited at once (code {proc.returncode}) playing {rom}: {said or 'no output'}")
            with contextlib.suppress(UserError):
                hits = [w for w in list_windows() if title.lower() in w.title.lower()]
                if hits:
                    win = max(hits, key=lambda w: w.rect.width * w.rect.height)
                    # mGBA opens its window at a default size, then sizes it for the game
                    if last is None or win.rect != last.rect:
                        last, since = win, time.monotonic()
                    elif time.monotonic() - since >= 0.5:
                        return win
            time.sleep(0.1)
    proc.kill()
    raise UserError(f"no {title} window appeared within {timeout:g} s")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux ``/proc``), None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _summary(stats: dict[str, Any], emu_cpu: float | None, live_cpu: float | None, seconds: float) -> dict[str, Any]:
    st = stats["stages"]
    return {
        "found_after_s": stats.get("screen_found_after_s"),
        "screen": stats.get("screen_detection"),
        "fps": stats.get("fps"),
        "frames": stats.get("frames"),
        "dropped": stats.get("dropped"),
        "stages_ms": {k: {"p50": v["p50_ms"], "p99": v["p99_ms"]} for k, v in st.items() if v.get("n")},
        "capture_to_display_ms": {"p50": stats["capture_to_display"]["p50_ms"],
                                  "p99": stats["capture_to_display"]["p99_ms"]},
        "emulator_cpu": round(emu_cpu / seconds, 3) if emu_cpu is not None else None,
        "live_cpu": round(live_cpu / seconds, 3) if live_cpu is not None else None,
    }


def bench_emulator(name: str = "mgba", *, rom: str | os.PathLike[str] | None = None, runs: int = 3,
                   seconds: float = 10.0, model: str | None = None, scale: int = 3,
                   json_path: str | os.PathLike[str] | None = None,
                   log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """``retrocolor live`` beside a real emulator on a private X display, ``runs`` times.

    Each run starts a fresh Xvfb and emulator (so runs are independent and nothing is left
    behind), waits a second for the game to boot, then runs the live filter for ``seconds`` as
    its own process and reads its ``--stats-json``.  Reports per run: how long finding the
    screen took, fps shown, per-stage p50/p99, capture-to-display p50/p99, and the CPU share
    (of one core) the emulator and the filter each used.
    """
    say = log or (lambda _m: None)
    if runs < 1:
        raise UserError("--runs must be at least 1")
    if seconds <= 0:
        raise UserError("--seconds must be positive")
    find_executable(name)
    with tempfile.TemporaryDirectory(prefix="retrocolor-emubench-") as tmp:
        if rom is None:
            from realtime.demo import write_demo_rom

            rom_path = write_demo_rom(Path(tmp) / "demo.gb", for_mgba=True)
            rom_label = "the built-in demo cartridge"
        else:
            rom_path = Path(rom)
            if not rom_path.is_file():
                raise UserError(f"ROM not found: {rom_path}")
            rom_label = rom_path.name
        say(f"bench: {name} at {scale}x in monochrome mode playing {rom_label}, "
            f"then retrocolor live beside it for {seconds:g} s; {runs} run(s) on {os.cpu_count()} CPU core(s)")
        results = []
        for i in range(runs):
            xs = start_xvfb()
            emu = None
            try:
                emu, win = start_emulator(name, rom_path, xs, scale)
                time.sleep(1.0)  # boot: the first frames of a ROM are blank
                stats_path = Path(tmp) / f"run{i}.json"
                argv = [sys.executable, "-m", "retrocolor", "live", "--window", EMULATORS[name][1],
                        "--seconds", f"{seconds:g}", "--stats-json", str(stats_path),
                        "--screenshot-dir", tmp]
                if model is not None:
                    argv += ["--model", str(model)]
                env = xs.env
                env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                                   env.get("PYTHONPATH")]))
                c0 = cpu_seconds(emu.pid)
                live = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603
                try:
                    _, err = live.communicate(timeout=seconds + 60)
                except subprocess.TimeoutExpired:
                    live.kill()
                    raise UserError(f"run {i + 1}: retrocolor live did not finish within {seconds + 60:g} s") from None
                c1 = cpu_seconds(emu.pid)
                if live.returncode != 0 or not stats_path.exists():
                    last = (err or "").strip().splitlines()[-1:] or ["no output"]
                    raise UserError(f"run {i + 1}: retrocolor live failed (exit {live.returncode}): {last[0]}")
                stats = json.loads(stats_path.read_text())
                live_cpu = stats.get("process_cpu_s")
                r = _summary(stats, (c1 - c0) if c0 is not None and c1 is not None else None, live_cpu,
                             float(stats.get("seconds") or seconds))
                r["window"] = f"{win.rect.width}x{win.rect.height}"
                results.append(r)
                say(format_run(i + 1, r))
            finally:
                if emu is not None:
                    _stop(emu)
                xs.close()
    out = {"emulator": name, "rom": rom_label, "scale": scale, "seconds": seconds, "cpus": os.cpu_count(),
           "model": model or "default", "runs": results}
    if json_path is not None:
        atomic_write_json(json_path, out)
        say(f"wrote {json_path}")
    return out


def format_run(i: int, r: dict[str, Any]) -> str:
    """Two lines for one run."""
    found = f"{r['found_after_s']:.2f} s" if r["found_after_s"] is not None else "not found"
    cpu = (f"; CPU: emulator {r['emulator_cpu'] * 100:.0f}%, live {r['live_cpu'] * 100:.0f}% of a core"
           if r["emulator_cpu"] is not None and r["live_cpu"] is not None else "")
    return (f"run {i}: {r['fps']:.1f} fps shown, capture-to-display p50 {r['capture_to_display_ms']['p50']:.2f} ms, "
            f"p99 {r['capture_to_display_ms']['p99']:.2f} ms; screen found after {found} ({r['window']} window){cpu}\n"
            f"  {stages_line(r['stages_ms'])}")
