"""Robustness, faults: the CLI is SIGKILLed for real at seeded random points, then re-run.

* ``extract``: after every kill the folder holds only complete PNGs and no manifest line
  without its file; the finished dataset is byte-identical to an uninterrupted run.
* ``train``: kills land mid-epoch and during checkpoint writes (we poll for the temporary file);
  the checkpoints on disk always load, ``--resume`` finishes the same epochs, and the final
  ``log.csv`` keeps the rows written before each kill and equals an uninterrupted run's.
* ``download``: a slow loopback server; after every kill no file under the final name holds
  partial data; the re-run resumes (HTTP Range) to a byte-identical file.  A server that hangs
  up mid-body never yields a "success".
* ``live`` (under conftest's private Xvfb, with the tiny model of tests/helpers.py): the
  emulator window moves, is resized, disappears; a model file is swapped under the running
  filter and M pressed; the user closes our window (a WM_DELETE_WINDOW message, what a window
  manager's close button sends).  No traceback; a message; exit 0 or a one-line error.

Each fault is counted in the robustness tally (``tests/robustness.py``).  ``extract``,
``download`` and ``live`` run as ``python retrocolor.py ...``; ``train`` runs in children forked
from a pre-warmed interpreter (:class:`robustness.CliRunner`: the same ``main()``, its own
process and PID, SIGKILLed the same way) because ``import torch`` plus the optimiser's lazy
``torch._dynamo`` import cost ~5 s per start on a 2-core runner; its uninterrupted reference is
a plain ``python retrocolor.py train``, and the killed runs must end with exactly its log.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import RangeServer, make_game_frames, range_server
from robustness import CLI, ROOT, CliRunner, cli_env, fault, kill9, run_cli

from dataset.manifest import load_manifest
from utils.images import write_png

pytestmark = pytest.mark.robustness


def snapshot(d: Path) -> dict[str, bytes]:
    """Every file under ``d`` (relative path -> bytes)."""
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _complete_png(data: bytes) -> bool:
    ok = data[:8] == b"\x89PNG\r\n\x1a\n" and data[-12:-8] == b"\0\0\0\0" and data[-8:-4] == b"IEND"
    return ok and cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) is not None


# =========================================================================== extract
def _write_longplay(path: Path, seconds: float = 6.0, fps: int = 30) -> None:
    """Game frames (2x) in a 480x360 canvas after 1 s of black: like tests/test_extract.py's clips."""
    game = make_game_frames(int(seconds * fps), seed=5)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (480, 360))
    assert w.isOpened()
    for i in range(int(seconds * fps)):
        frame = np.zeros((360, 480, 3), np.uint8)
        if i >= fps:
            frame[36:324, 80:400] = cv2.resize(game[i], (320, 288), interpolation=cv2.INTER_NEAREST)[:, :, ::-1]
        w.write(frame)
    w.release()


def _check_extract_folder(out: Path) -> list[str]:
    """What a kill may never leave: a truncated PNG under a real name, a manifest line without its file."""
    problems = []
    frames = out / "frames"
    if frames.is_dir():
        for p in frames.iterdir():
            if not p.name.startswith(".") and not _complete_png(p.read_bytes()):
                problems.append(f"truncated PNG {p.name}")
    try:
        m = load_manifest(out / "manifest.jsonl")
    except Exception as e:  # noqa: BLE001 - any failure to read it back is the finding
        return [*problems, f"manifest unreadable: {e}"]
    problems += [f"orphan manifest line {r['file']}" for r in m.records if not (out / r["file"]).is_file()]
    if (out / "extract.json").exists():
        try:
            json.loads((out / "extract.json").read_text())
        except ValueError:
            problems.append("extract.json torn")
    return problems


def test_extract_sigkill_at_random_points(tmp_path: Path) -> None:
    rng = random.Random(20240501)
    video = tmp_path / "long play.mp4"
    _write_longplay(video)
    args = ["extract", str(video), "--every-seconds", "0.1"]
    ref, out = tmp_path / "ref", tmp_path / "killed"
    t0 = time.monotonic()
    res = run_cli([*args, "-o", str(ref)])
    t_ref = time.monotonic() - t0  # kill times scale with it: a quiet machine finishes fast
    assert res.is_clean_success(), res.describe()
    want = snapshot(ref)
    n_ref = len(load_manifest(ref / "manifest.jsonl").records)
    assert n_ref > 20

    kills, problems, points = 0, [], []
    for attempt in range(8):
        if kills >= 4:
            break
        before = len(load_manifest(out / "manifest.jsonl").records) if (out / "manifest.jsonl").exists() else 0
        proc = subprocess.Popen([*CLI, *args, "-o", str(out)], cwd=ROOT, env=cli_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if attempt == 0:  # the first kill at a random instant: start-up, detection, settings write
            time.sleep(rng.uniform(0.15, 0.6) * t_ref)
        else:  # later ones after a random number of new lines, plus a random sub-frame delay
            target = before + rng.randint(1, max(1, (n_ref - before) // 3))
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                m = out / "manifest.jsonl"
                if m.exists() and m.read_bytes().count(b"\n") >= target:
                    break
                time.sleep(0.001)
            time.sleep(rng.uniform(0, 0.03))
        if kill9(proc):
            kills += 1
            done = len(load_manifest(out / "manifest.jsonl").records) if (out / "manifest.jsonl").exists() else 0
            points.append(done)
            found = _check_extract_folder(out)
            problems += found
            fault("extract", survived=not found, note="; ".join(found))
        else:
            # It finished before the kill: start again from nothing so the next kill lands mid-run.
            proc.wait()
            shutil.rmtree(out, ignore_errors=True)
    assert kills >= 3, f"only {kills} kills landed mid-run"
    res = run_cli([*args, "-o", str(out)])
    assert res.is_clean_success(), res.describe()
    same = snapshot(out) == want
    print(f"extract: killed after {points} of {n_ref} kept frames; final dataset identical: {same}")
    if not same:
        fault("extract", survived=False, lost=True, note="final dataset differs from an uninterrupted run")
    assert not problems, problems
    assert same


# =========================================================================== train
@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliRunner]:
    r = CliRunner(tmp_path_factory.mktemp("cli"))
    yield r
    r.close()


def _log(run: Path) -> list[dict[str, str]]:
    if not (run / "log.csv").exists():
        return []
    with open(run / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def _curve(rows: list[dict[str, str]]) -> list[tuple[str, ...]]:
    """The loss curve without the wall-clock column."""
    return [tuple(v for k, v in r.items() if k != "seconds") for r in rows]


def _state_epoch(run: Path) -> int:
    try:
        return int(json.loads((run / "state.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def _temp_files(run: Path) -> list[str]:
    try:
        names = os.listdir(run)
    except OSError:
        return []
    return [n for n in names if n.startswith(".") and ".tmp" in n]


def _check_run_folder(run: Path) -> list[str]:
    """At any kill point: every checkpoint pair on disk loads, the state loads, the log is continuous."""
    from models.checkpoint import load_model
    from models.train import load_state
    from utils.errors import UserError

    problems = []
    epoch = 0
    if (run / "state.safetensors").exists():
        try:
            epoch = int(load_state(run)["epoch"])
        except UserError as e:
            problems.append(f"state does not load: {e}")
    for name in ("best", "last"):
        st, js = run / f"{name}.safetensors", run / f"{name}.json"
        if st.exists() or js.exists():
            try:
                _, meta = load_model(run / name)
            except UserError as e:
                problems.append(f"{name} does not load: {e}")
                continue
            # the metadata must describe these weights: the saved epoch or the one being saved
            if name == "last" and int(meta["epoch"]) not in (epoch, epoch + 1):
                problems.append(f"last.* says epoch {meta['epoch']}, the state is at {epoch}")
    rows = _log(run)
    if [int(r["epoch"]) for r in rows] != list(range(1, len(rows) + 1)):
        problems.append(f"log.csv epochs not continuous: {[r['epoch'] for r in rows]}")
    if len(rows) not in (epoch, epoch + 1):  # log.csv is written just before the state
        problems.append(f"log.csv has {len(rows)} rows but the state is at epoch {epoch}")
    return problems


def test_train_sigkill_mid_epoch_and_mid_checkpoint_then_resume(runner: CliRunner, tmp_path: Path) -> None:
    rng = random.Random(7)
    data = tmp_path / "data"
    for game, seed in (("alpha", 1), ("beta", 2)):
        for i, f in enumerate(make_game_frames(16, seed, w=80, h=72)):
            write_png(data / game / f"f{i:04d}.png", f)
    epochs = 5
    base = ["train", "--arch", "v0", "--data", str(data), "--epochs", str(epochs), "--batch-size", "1", "--crop", "0",
            "--preset", "reference", "--cache-dir", "none", "--device", "cpu"]
    ref, run = tmp_path / "ref", tmp_path / "run"
    # The uninterrupted reference is a real `python retrocolor.py train`, run alongside (the forked,
    # killed and resumed runs must end with exactly its loss curve).
    ref_proc = subprocess.Popen([*CLI, *base, "--out", str(ref)], cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    # (mode, completed epochs to wait for in this run): kills during a checkpoint write poll for
    # the temporary file of an atomic write; mid-epoch kills sleep a random part of an epoch.
    plan = [("checkpoint", 0), ("mid-epoch", 1), ("checkpoint", 1), ("mid-epoch", 1)]
    problems: list[str] = []
    kept_rows: list[tuple[str, ...]] = []
    kinds = []
    for mode, wait_epochs in plan:
        resume = (run / "state.safetensors").exists() or run.exists()
        stale = set(_temp_files(run))  # left by the previous kill (the resumed run deletes them)
        h = runner.start([*base, "--out", str(run), *(["--resume"] if resume else [])], timeout=300)
        start_epoch = _state_epoch(run)
        deadline = time.monotonic() + 120
        while h.running() and time.monotonic() < deadline and _state_epoch(run) < start_epoch + wait_epochs:
            time.sleep(0.002)
        if mode == "checkpoint":
            # aim at one of the checkpoint's files; if its short write is missed, take the next one
            target = rng.choice([".log.csv", ".last.safetensors", ".last.json", ".state.safetensors"])
            aim_epoch = _state_epoch(run)
            while h.running() and time.monotonic() < deadline:
                new = set(_temp_files(run)) - stale
                if any(n.startswith(target) for n in new) or (new and _state_epoch(run) > aim_epoch):
                    break
                time.sleep(0.0003)
            time.sleep(rng.choice([0.0, rng.uniform(0, 0.003)]))
        else:
            time.sleep(rng.uniform(0.03, 0.25))
        was_running = h.running()
        h.kill()
        writing = set(_temp_files(run)) - stale  # half-written at the kill (temp files of atomic writes)
        where = f"checkpoint, writing {', '.join(sorted(writing))}" if writing else \
            ("between checkpoint files" if mode == "checkpoint" else mode)
        r = h.wait()
        if not was_running or r.rc != -signal.SIGKILL:
            assert r.rc == 0, r.describe()
            break  # it finished before the kill: nothing was injected
        kinds.append(f"epoch {_state_epoch(run) + 1}: {where}")
        found = _check_run_folder(run)
        problems += found
        fault("train", survived=not found, note="; ".join(found))
        rows = _curve(_log(run))[: _state_epoch(run)]  # rows the saved state vouches for
        assert rows[: len(kept_rows)] == kept_rows, "rows written before a kill changed"
        kept_rows = rows
    print("train kills:", kinds)
    assert len(kinds) >= 3
    ref_out, ref_err = ref_proc.communicate(timeout=300)
    assert ref_proc.returncode == 0 and "Traceback" not in ref_err, ref_err
    want = _log(ref)
    assert len(want) == epochs
    final = runner.run([*base, "--out", str(run), "--resume"], timeout=300)
    assert final.is_clean_success(), final.describe()
    got = _log(run)
    lost = _curve(got)[: len(kept_rows)] != kept_rows or _curve(got) != _curve(want)
    if lost:
        fault("train", survived=False, lost=True, note="resumed loss curve differs from an uninterrupted run")
    assert not problems, problems
    assert [int(r["epoch"]) for r in got] == list(range(1, epochs + 1))
    assert _curve(got) == _curve(want), "the resumed run's loss curve is not the uninterrupted one"
    assert not _check_run_folder(run) and _state_epoch(run) == epochs
    assert not _temp_files(run), f"temporary files of killed writes left behind: {_temp_files(run)}"


# =========================================================================== download
@pytest.fixture
def slow_server() -> Iterator[RangeServer]:
    rng = np.random.default_rng(3)
    data = b"\0\0\0\x18ftypmp42" + rng.integers(0, 256, 600_000, dtype=np.uint8).tobytes()
    with range_server({"/clip.mp4": (data, "video/mp4")}) as srv:
        srv.chunk, srv.delay = 8192, 0.008  # trickle, so a kill lands mid-body
        yield srv


def _body(srv: RangeServer) -> bytes:
    return srv.files["/clip.mp4"][0]


def test_download_sigkill_then_rerun_resumes(slow_server: RangeServer, tmp_path: Path) -> None:
    rng = random.Random(99)
    url = f"http://127.0.0.1:{slow_server.server_address[1]}/clip.mp4"
    out = tmp_path / "downloads"
    final = out / "clip.mp4"
    size = len(_body(slow_server))
    kills, problems = 0, []
    for _ in range(6):
        if kills >= 3:
            break
        slow_server.sent = 0
        part = out / "clip.mp4.part"
        have = part.stat().st_size if part.exists() else 0
        target = rng.uniform(0.15, 0.8) * (size - have)
        proc = subprocess.Popen([*CLI, "download", url, "-o", str(out)], cwd=ROOT, env=cli_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while proc.poll() is None and slow_server.sent < target and time.monotonic() < deadline:
            time.sleep(0.002)
        if kill9(proc):
            kills += 1
            bad = final.exists() and final.read_bytes() != _body(slow_server)
            stray = [p.name for p in out.iterdir() if p.name not in ("clip.mp4.part", "clip.mp4.ytdl")] \
                if out.exists() else []
            if bad or stray:
                problems.append(f"after a kill: final file partial={bad}, other files {stray}")
            fault("download", survived=not bad and not stray, note="; ".join(problems[-1:]))
    assert kills >= 2
    res = run_cli(["download", url, "-o", str(out)])
    assert res.is_clean_success(), res.describe()
    assert res.out.strip().splitlines() == [str(final)]
    ok = final.read_bytes() == _body(slow_server)
    if not ok:
        fault("download", survived=False, lost=True, note="re-run did not give the server's bytes")
    resumed = [r for r in slow_server.ranges if r and not r.startswith("bytes=0-")]
    print(f"download: {kills} kills; Range requests {slow_server.ranges}")
    assert not problems, problems
    assert ok and resumed, "the re-runs never resumed with a Range request"
    assert sorted(p.name for p in out.iterdir()) == ["clip.mp4"]


def test_download_cut_connection_is_never_success(slow_server: RangeServer, tmp_path: Path) -> None:
    """The server announces the whole body, sends half and hangs up (several times, yt-dlp retries)."""
    slow_server.cut, slow_server.delay, slow_server.chunk = True, 0.0, 65536
    url = f"http://127.0.0.1:{slow_server.server_address[1]}/clip.mp4"
    out = tmp_path / "dl"
    res = run_cli(["download", url, "-o", str(out)])
    survived = res.is_clear_error() and not (out / "clip.mp4").exists()
    fault("download", survived=survived, note=res.describe())
    assert survived, res.describe()
    slow_server.cut = False
    res = run_cli(["download", url, "-o", str(out)])
    assert res.is_clean_success(), res.describe()
    assert (out / "clip.mp4").read_bytes() == _body(slow_server)


# =========================================================================== live
_HAVE_X = bool(shutil.which("Xvfb") and shutil.which("xwininfo") and shutil.which("xdotool"))
# the tiny model and the window lookup of the live-filter tests; the private Xvfb is conftest's
from helpers import tiny_lightness_onnx, x_window_rect  # noqa: E402


def _send_wm_delete(display: str, window_title: str) -> bool:
    """What a window manager's close button does: a WM_DELETE_WINDOW client message (via Xlib)."""
    import ctypes
    import ctypes.util

    wid_text = subprocess.run(["xwininfo", "-name", window_title], env=dict(os.environ, DISPLAY=display),
                              capture_output=True, text=True).stdout
    if "Window id: " not in wid_text:
        return False
    wid = int(wid_text.split("Window id: ")[1].split()[0], 16)
    lib = ctypes.util.find_library("X11")
    if lib is None:
        return False
    x = ctypes.cdll.LoadLibrary(lib)
    x.XOpenDisplay.restype = ctypes.c_void_p
    x.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x.XInternAtom.restype = ctypes.c_ulong
    x.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    x.XFlush.argtypes = [ctypes.c_void_p]
    x.XCloseDisplay.argtypes = [ctypes.c_void_p]

    class ClientMessage(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                    ("display", ctypes.c_void_p), ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
                    ("format", ctypes.c_int), ("data", ctypes.c_long * 5)]

    class XEvent(ctypes.Union):
        _fields_ = [("xclient", ClientMessage), ("pad", ctypes.c_long * 24)]

    dpy = x.XOpenDisplay(display.encode())
    if not dpy:
        return False
    try:
        ev = XEvent()
        ev.xclient.type = 33  # ClientMessage
        ev.xclient.window = wid
        ev.xclient.message_type = x.XInternAtom(dpy, b"WM_PROTOCOLS", 0)
        ev.xclient.format = 32
        ev.xclient.data[0] = x.XInternAtom(dpy, b"WM_DELETE_WINDOW", 0)
        x.XSendEvent(dpy, wid, 0, 0, ctypes.byref(ev))
        x.XFlush(dpy)
    finally:
        x.XCloseDisplay(dpy)
    return True


# The real CLI entry point, with the shipped-model folder pointed at a temporary one (so M has
# models to cycle through and the test can swap their files).
_LIVE_WRAPPER = ("import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; import weights; "
                 "weights.WEIGHTS_DIR = Path(sys.argv[2]); import retrocolor; sys.exit(retrocolor.main(sys.argv[3:]))")


# A stand-in emulator that survives being resized (test_live's draws into a fixed-size surface):
# FRAMES (N,144,160) grey at 2x, top-left of a window that may grow; runs until killed or LIFETIME.
_RESIZABLE_EMU = r"""
import os, sys, time
import numpy as np
os.environ["SDL_VIDEODRIVER"] = "x11"
os.environ["SDL_VIDEO_WINDOW_POS"] = sys.argv[2]
import pygame
frames = np.load(sys.argv[1])
period, lifetime = float(sys.argv[3]), float(sys.argv[4])
pygame.display.init()
screen = pygame.display.set_mode((320, 288), pygame.RESIZABLE)
pygame.display.set_caption("FakeBoy emulator")
start = time.time()
while time.time() - start < lifetime:
    for e in pygame.event.get():
        if e.type == pygame.VIDEORESIZE:
            screen = pygame.display.get_surface()
    screen = pygame.display.get_surface()
    g = frames[int((time.time() - start) / period) % len(frames)]
    rgb = np.repeat(np.repeat(np.repeat(g[:, :, None], 3, 2), 2, 0), 2, 1)
    screen.fill((0, 0, 0))
    screen.blit(pygame.surfarray.make_surface(rgb.transpose(1, 0, 2)), (0, 0))
    pygame.display.flip()
    time.sleep(1 / 60)
pygame.display.quit()
"""


def _start_emu(env: dict, frames: np.ndarray, tmp: Path, pos: str = "40,40") -> subprocess.Popen:
    np.save(tmp / "frames.npy", frames)
    (tmp / "resizable_emu.py").write_text(_RESIZABLE_EMU)
    proc = subprocess.Popen([CLI[0], str(tmp / "resizable_emu.py"), str(tmp / "frames.npy"), pos, "0.4", "60"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if not _wait_for(lambda: x_window_rect(env, "FakeBoy emulator") is not None, 15):
        proc.kill()
        raise AssertionError(f"the stand-in emulator did not start: {proc.communicate()[1][-500:]}")
    return proc


def _wid(env: dict, title: str) -> str:
    return subprocess.run(["xwininfo", "-name", title], env=env, capture_output=True,
                          text=True).stdout.split("Window id: ")[1].split()[0]


def _wait_for(pred, timeout: float) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not _HAVE_X, reason="needs Xvfb, xwininfo and xdotool")
def test_live_window_moves_resizes_models_swap_and_user_closes(xvfb: dict, tmp_path: Path) -> None:
    env = {**xvfb, "RETROCOLOR_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    wdir = tmp_path / "weights"
    wdir.mkdir()
    a = tiny_lightness_onnx(wdir / "a.onnx")
    tiny_lightness_onnx(wdir / "b.onnx")
    frames = np.ascontiguousarray(make_game_frames(24, seed=3)[::8].mean(axis=3).astype(np.uint8))
    emu = _start_emu(env, frames, tmp_path, pos="40,40")
    live = None
    try:
        # --- session 1: the emulator window moves and is resized, a model file is swapped, the user closes us
        live = subprocess.Popen([CLI[0], "-c", _LIVE_WRAPPER, str(ROOT), str(wdir), "live", "--window", "FakeBoy",
                                 "--model", str(a), "--seconds", "25", "--stats-json", str(tmp_path / "s1.json")],
                                env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert _wait_for(lambda: x_window_rect(env, "retrocolor live") is not None, 15), "no live window"
        time.sleep(0.8)
        emu_id = _wid(env, "FakeBoy emulator")
        subprocess.run(["xdotool", "windowmove", emu_id, "120", "90"], env=env, check=True)
        moved = _wait_for(lambda: getattr(x_window_rect(env, "retrocolor live"), "x", None) == 120 + 320 + 8, 4)
        fault("live", survived=moved and live.poll() is None, note="did not follow a moved window")
        subprocess.run(["xdotool", "windowsize", emu_id, "400", "360"], env=env, check=True)
        resized = _wait_for(lambda: getattr(x_window_rect(env, "FakeBoy emulator"), "width", 0) == 400, 3)
        time.sleep(1.0)
        assert resized and emu.poll() is None, "the stand-in emulator did not take the resize"
        alive = live.poll() is None
        fault("live", survived=alive, note="died after the emulator window was resized")
        assert alive, f"live died after a resize: rc {live.returncode}: {live.communicate()[1][-1500:]}"
        # swap b.onnx for another valid model (atomically, as a user copying a new export would), press M
        w = wdir / ".b.new.onnx"
        tiny_lightness_onnx(w)
        os.replace(w, wdir / "b.onnx")
        ours = _wid(env, "retrocolor live")
        subprocess.run(["xdotool", "key", "--window", ours, "m"], env=env, check=True)
        time.sleep(1.0)
        fault("live", survived=live.poll() is None, note="died after a model swap + M")
        closed = _send_wm_delete(env["DISPLAY"], "retrocolor live")
        out, err = live.communicate(timeout=20)
        ok = closed and live.returncode == 0 and "window closed by the user" in err and "Traceback" not in err
        fault("live", survived=ok, note=f"user close: rc {live.returncode}: {err.strip()[-200:]}")
        assert ok, f"rc {live.returncode} (-6: SIGABRT at exit): {err}"
        assert "live: model b" in err, err
        stats = json.loads((tmp_path / "s1.json").read_text())
        assert stats["frames"] > 0 and stats["model"] == "b"

        # --- session 2: the file of the next model is truncated while we run, M, then the emulator vanishes
        live = subprocess.Popen([CLI[0], "-c", _LIVE_WRAPPER, str(ROOT), str(wdir), "live", "--window", "FakeBoy",
                                 "--model", str(a), "--seconds", "25"],
                                env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert _wait_for(lambda: x_window_rect(env, "retrocolor live") is not None, 15), "no live window"
        time.sleep(0.8)
        (wdir / ".b.bad").write_bytes((wdir / "b.onnx").read_bytes()[:40])
        os.replace(wdir / ".b.bad", wdir / "b.onnx")
        subprocess.run(["xdotool", "key", "--window", _wid(env, "retrocolor live"), "m"], env=env, check=True)
        time.sleep(1.0)
        still = live.poll() is None
        if still:  # recovered (kept the old model): now the emulator disappears
            emu.kill()
            emu.wait()
        out, err = live.communicate(timeout=20)
        lines = err.strip().splitlines()
        clean_exit = (live.returncode == 2 and lines and lines[-1].startswith("retrocolor: error:")
                      and "b.onnx" in lines[-1])
        recovered = still and live.returncode == 0 and "closed; stopping" in err
        ok = (clean_exit or recovered) and "Traceback" not in err
        fault("live", survived=ok, note=f"swapped broken model: rc {live.returncode}: {err.strip()[-200:]}")
        print(f"live, broken model swapped in + M: {'recovered' if recovered else 'clean one-line exit'}: "
              f"{lines[-1] if lines else ''}")
        assert ok, f"rc {live.returncode} (-6: SIGABRT at exit): {err}"
        if not recovered:  # session 3: the emulator window disappears mid-run
            emu.kill()
            emu.wait()
            assert _wait_for(lambda: x_window_rect(env, "FakeBoy emulator") is None, 5)
            emu = _start_emu(env, frames, tmp_path, pos="40,40")
            live = subprocess.Popen([*CLI, "live", "--window", "FakeBoy", "--model", str(a), "--seconds", "25"],
                                    env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert _wait_for(lambda: x_window_rect(env, "retrocolor live") is not None, 15), "no live window"
            time.sleep(0.5)
            emu.kill()
            emu.wait()
            out, err = live.communicate(timeout=20)
            ok = live.returncode == 0 and "closed; stopping" in err and "Traceback" not in err
            fault("live", survived=ok, note=f"emulator vanished: rc {live.returncode}: {err.strip()[-200:]}")
            assert ok, f"rc {live.returncode} (-6: SIGABRT at exit): {err}"
    finally:
        for p in (live, emu):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()



# =========================================================================== the fixes, deterministically
def test_checkpoint_pair_killed_between_its_two_renames(tmp_path: Path) -> None:
    """save_model renames the weights, then the JSON: a kill between the two leaves new weights
    beside the previous (or no) JSON.  The checkpoint must load as the *new* save, whole."""
    import torch

    import models
    from models.checkpoint import load_model, save_model

    torch.manual_seed(0)
    m1 = models.create("v0")
    save_model(tmp_path / "last", m1, {"epoch": 1})
    old_json = (tmp_path / "last.json").read_bytes()
    torch.manual_seed(1)
    m2 = models.create("v0")
    save_model(tmp_path / "last", m2, {"epoch": 2})
    (tmp_path / "last.json").write_bytes(old_json)  # the kill: the JSON rename never happened
    for case in ("stale JSON", "no JSON", "torn JSON"):
        if case == "no JSON":
            (tmp_path / "last.json").unlink()
        elif case == "torn JSON":
            (tmp_path / "last.json").write_bytes(old_json[: len(old_json) // 2])
        model, meta = load_model(tmp_path / "last")
        assert meta["epoch"] == 2, case
        for k, v in m2.state_dict().items():
            assert torch.equal(model.state_dict()[k], v), (case, k)
    # an intact pair is read from its JSON (a user's edit of it is honoured)
    save_model(tmp_path / "best", m1, {"epoch": 7})
    card = json.loads((tmp_path / "best.json").read_text())
    card["note"] = "edited by hand"
    (tmp_path / "best.json").write_text(json.dumps(card))
    assert load_model(tmp_path / "best")[1]["note"] == "edited by hand"


def test_resume_of_a_run_killed_before_its_first_checkpoint(tmp_path: Path) -> None:
    """Killed during epoch 1 the folder has samples/ (maybe log.csv, last.*) but no state: --resume
    starts it again instead of refusing both with and without --resume; stale temps are removed."""
    import torch

    from models.train import TrainConfig, train
    from utils.errors import UserError

    data = tmp_path / "data"
    for i, f in enumerate(make_game_frames(20, 1, w=48, h=40)):
        write_png(data / "g" / f"f{i:02d}.png", f)
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    (run / "log.csv").write_text("epoch,step\n")
    (run / ".state.safetensors.abcd.tmp.safetensors").write_bytes(b"half")
    (run / "samples" / ".epoch_001.png.x.tmp.png").write_bytes(b"half")
    cfg = dict(arch="v0", data=[data], out=run, epochs=1, batch_size=4, crop=0, cache_dir=None, show_progress=False,
               sample_frames=1, device="cpu")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = train(TrainConfig(**cfg, resume=True))
    finally:
        torch.set_num_threads(old)
    assert "started again from epoch 1" in str(res)
    assert _state_epoch(run) == 1 and not _temp_files(run) and not list((run / "samples").glob(".*"))
    # a folder with files that are not a run's is still refused
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    with pytest.raises(UserError, match="no training state"):
        train(TrainConfig(**{**cfg, "out": other}, resume=True))
    assert (other / "notes.txt").read_text() == "keep"
