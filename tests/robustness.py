"""Shared machinery of the robustness group: the fault/bad-input tally and a fast CLI runner.

Why a tally: the group's purpose is a *figure* ("faults injected 12 / survived 12 / data lost
0"), not only pass/fail, so every injected fault and every hostile input is counted here and
``conftest.pytest_terminal_summary`` prints one line per area at the end of the run (and
``$RETROCOLOR_ROBUSTNESS_JSON``, when set, gets the same figures as JSON for the README script).

Why a fork server: a hostile input must go through the real CLI in its own process (a crash,
a hang or code run by a pickle must not take the test run with it), but ``import torch`` costs
~2-3 s per process on a busy 2-core runner.  :class:`CliRunner` starts one helper interpreter
that imports the CLI and its heavy dependencies once and then ``fork()``s a fresh child per
command: each child runs ``retrocolor.main(argv)`` -- the console script's entry point -- with
its own cwd, environment, stdout/stderr files and exit status, exactly as ``python
retrocolor.py ARGS`` would, minus the interpreter start-up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CLI = [PY, str(ROOT / "retrocolor.py")]


# --------------------------------------------------------------------------- the tally
@dataclass
class Area:
    """Counts for one area (``extract``, ``images``, ...)."""

    faults: int = 0
    survived: int = 0
    lost: int = 0
    tried: int = 0
    clear: int = 0
    accepted: int = 0
    crashes: int = 0
    executed: int = 0  # hostile files whose code ran (models area)
    notes: list[str] = field(default_factory=list)


TALLY: dict[str, Area] = {}
_LOCK = threading.Lock()


def _area(name: str) -> Area:
    with _LOCK:
        return TALLY.setdefault(name, Area())


def fault(area: str, survived: bool, lost: bool = False, note: str = "") -> None:
    """Record one injected fault (a real kill, a vanished window, ...)."""
    a = _area(area)
    a.faults += 1
    a.survived += int(survived)
    a.lost += int(lost)
    if note and (not survived or lost):
        a.notes.append(note)


def bad_input(area: str, outcome: str, note: str = "") -> None:
    """Record one hostile input: ``outcome`` is ``clear`` (one-line error), ``accepted`` (an odd but
    valid input handled correctly) or ``crash`` (anything else)."""
    assert outcome in ("clear", "accepted", "crash"), outcome
    a = _area(area)
    a.tried += 1
    a.clear += outcome == "clear"
    a.accepted += outcome == "accepted"
    a.crashes += outcome == "crash"
    if outcome == "crash" and note:
        a.notes.append(note)


def code_executed(area: str, n: int) -> None:
    """Record how many hostile files managed to run code (the target is 0)."""
    _area(area).executed += n


def summary_lines() -> list[str]:
    """One line per area and kind, in the order areas were first seen."""
    lines = []
    for name, a in list(TALLY.items()):
        if a.faults:
            lines.append(f"robustness: {name}: faults injected {a.faults} / survived {a.survived} / data lost {a.lost}")
        if a.tried:
            extra = f" / accepted correctly {a.accepted}" if a.accepted else ""
            lines.append(f"robustness: {name}: bad inputs tried {a.tried} / clear errors {a.clear}{extra} / "
                         f"crashes {a.crashes}")
        if a.executed or name == "models":
            lines.append(f"robustness: {name}: code executed from hostile files {a.executed}")
        for n in a.notes[:5]:
            lines.append(f"robustness: {name}:   ! {n}")
    return lines


def write_json(path: str | os.PathLike[str]) -> None:
    """The tally as JSON (``scripts/robustness_report.py`` reads it)."""
    data = {k: {f: getattr(v, f) for f in ("faults", "survived", "lost", "tried", "clear", "accepted", "crashes",
                                           "executed", "notes")} for k, v in TALLY.items()}
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- results
@dataclass
class Result:
    """One CLI run: exit code (negative: killed by that signal), stdout, stderr."""

    argv: list[str]
    rc: int
    out: str
    err: str

    def is_clear_error(self) -> bool:
        """Non-zero exit, stderr exactly one line starting ``retrocolor: error:``, no traceback."""
        lines = self.err.strip().splitlines()
        return (self.rc > 0 and len(lines) == 1 and lines[0].startswith("retrocolor: error:")
                and "Traceback" not in self.out + self.err)

    def is_clean_success(self) -> bool:
        """Exit 0 and no traceback or error line anywhere."""
        return self.rc == 0 and "Traceback" not in self.out + self.err and "error:" not in self.err

    def describe(self) -> str:
        tail = " | ".join(self.err.strip().splitlines()[-3:])[:300]
        return f"retrocolor {' '.join(self.argv)[:160]} -> rc {self.rc}: {tail}"


def cli_env(**extra: str) -> dict[str, str]:
    """The environment every CLI run gets: no progress bars, one thread, repo importable."""
    env = dict(os.environ, RETROCOLOR_PROGRESS="0", OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1",
               PYGAME_HIDE_SUPPORT_PROMPT="1")
    env.pop("RETROCOLOR_DEBUG", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_cli(argv: list[str], cwd: str | os.PathLike[str] = ROOT, env: dict[str, str] | None = None,
            timeout: float = 120) -> Result:
    """``python retrocolor.py ARGV`` as a real subprocess (list argv, never a shell)."""
    p = subprocess.run([*CLI, *argv], cwd=cwd, env=env or cli_env(), capture_output=True, text=True,
                       timeout=timeout, check=False)
    return Result(list(argv), p.returncode, p.stdout, p.stderr)


# --------------------------------------------------------------------------- the fork server
_ZYGOTE = r"""
import json, os, signal, sys, traceback
_env_before = dict(os.environ)
sys.path.insert(0, sys.argv[1])
os.environ["RETROCOLOR_PROGRESS"] = "0"
import retrocolor
# The expensive imports of every command, done once; each forked child starts with them loaded.
import numpy, cv2, onnxruntime, torch, safetensors.torch  # noqa
import torch._dynamo  # noqa - torch.optim imports it lazily on the first optimiser: ~3 s
torch.set_num_threads(1)
import capture.download, capture.video, dataset.extract, dataset.tools, dataset.loader  # noqa
import models.checkpoint, models.evaluate, models.export, models.train, realtime.offline, realtime.engine  # noqa
import weights  # noqa
import matplotlib  # noqa
matplotlib.use("Agg")
import matplotlib.pyplot  # noqa
# what the imports themselves put in the environment (a real CLI process has it too)
_env_imports = {k: v for k, v in os.environ.items() if _env_before.get(k) != v}
proto = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
print(json.dumps({"ready": True}), file=proto)
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid and job.get("notify"):
        print(json.dumps({"pid": pid}), file=proto)
    if pid == 0:
        code = 1
        try:
            signal.alarm(int(job["timeout"]))  # a hang is a crash, not a stuck test run
            os.chdir(job["cwd"])
            os.environ.clear()
            os.environ.update(job["env"])
            for k, v in _env_imports.items():
                os.environ.setdefault(k, v)
            for fd, name in ((1, job["out"]), (2, job["err"])):
                os.dup2(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
            sys.stdout = open(1, "w", buffering=1, closefd=False, errors="backslashreplace")
            sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")
            sys.argv = ["retrocolor", *job["argv"]]
            code = retrocolor.main(job["argv"])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(int(code or 0) & 0xFF)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), file=proto)
"""


class CliRunner:
    """Runs ``retrocolor ARGV`` in forked children of one pre-warmed interpreter (see module doc).

    Thread-safe (one command at a time); :meth:`close` ends the helper.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._n = 0
        self._lock = threading.Lock()
        self._proc = subprocess.Popen([PY, "-c", _ZYGOTE, str(ROOT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=cli_env())
        assert self._proc.stdout is not None
        ready = self._proc.stdout.readline()
        if not ready:
            raise RuntimeError("the CLI fork server did not start")

    def run(self, argv: list[str], cwd: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None,
            timeout: int = 60) -> Result:
        """Run one command to completion."""
        return self.start(argv, cwd, env, timeout, notify=False).wait()

    def start(self, argv: list[str], cwd: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None,
              timeout: int = 60, notify: bool = True) -> Running:
        """Start one command; the returned handle has its ``pid`` (to SIGKILL it) and ``wait()``.

        The runner is busy until ``wait()`` returns.
        """
        self._lock.acquire()
        try:
            self._n += 1
            out, err = self.workdir / f"{self._n}.out", self.workdir / f"{self._n}.err"
            job = {"argv": [str(a) for a in argv], "cwd": str(cwd or ROOT), "env": env or cli_env(),
                   "out": str(out), "err": str(err), "timeout": timeout, "notify": notify}
            assert self._proc.stdin is not None and self._proc.stdout is not None
            self._proc.stdin.write(json.dumps(job) + "\n")
            self._proc.stdin.flush()
            pid = int(json.loads(self._readline())["pid"]) if notify else None
        except BaseException:
            self._lock.release()
            raise
        return Running(self, job["argv"], pid, out, err)

    def _readline(self) -> str:
        assert self._proc.stdout is not None
        reply = self._proc.stdout.readline()
        if not reply:
            raise RuntimeError("the CLI fork server died")
        return reply

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


@dataclass
class Running:
    """A command started by :meth:`CliRunner.start`."""

    runner: CliRunner
    argv: list[str]
    pid: int | None
    out: Path
    err: Path
    result: Result | None = None

    def kill(self) -> None:
        """SIGKILL the command (no-op if it already ended)."""
        if self.pid is not None and self.result is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def wait(self) -> Result:
        """Wait for the exit status (negative: killed by that signal); frees the runner."""
        if self.result is None:
            try:
                rc = int(json.loads(self.runner._readline())["rc"])  # noqa: SLF001
            finally:
                self.runner._lock.release()  # noqa: SLF001
            read = lambda p: p.read_text(encoding="utf-8", errors="backslashreplace") if p.exists() else ""  # noqa: E731
            self.result = Result(self.argv, rc, read(self.out), read(self.err))
        return self.result

    def running(self) -> bool:
        """True while the child exists (it may be a zombie for an instant after it ends)."""
        if self.pid is None or self.result is not None:
            return False
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                return f.read().split(b") ")[-1][:1] != b"Z"
        except OSError:
            return False


# --------------------------------------------------------------------------- process helpers
def kill9(proc: subprocess.Popen) -> bool:
    """SIGKILL ``proc``; True if it was still running (the kill really interrupted it)."""
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.returncode == -signal.SIGKILL


def wait_with_rusage(proc: subprocess.Popen, timeout: float) -> tuple[int, int]:
    """Wait for ``proc``; return ``(exit code, peak RSS in KiB)`` of that child alone (wait4)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, int(ru.ru_maxrss)
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError(f"{proc.args} did not finish in {timeout} s")
        time.sleep(0.02)
