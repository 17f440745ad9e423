"""``retrocolor live`` end to end under a private Xvfb server.

A stand-in emulator (a pygame window in a subprocess) plays grey Game Boy frames at 2x; the real
CLI captures it and shows the colourisation in its own window; the test grabs *that* window from
the X server and checks it shows the engine's colourisation of the frames being played.
Skipped cleanly where Xvfb or xdotool is not installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import make_game_frames, x_window_rect
from helpers import tiny_lightness_onnx as _tiny_onnx

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

pytestmark = pytest.mark.skipif(
    not (shutil.which("Xvfb") and shutil.which("xwininfo")),
    reason="needs Xvfb and xwininfo (apt install xvfb x11-utils)",
)

# A stand-in emulator: shows FRAMES (N,144,160) grey at 2x at (X,Y), cycling every PERIOD seconds,
# until killed or until LIFETIME seconds have passed (then it closes its window and exits).  An
# optional BORDER "top,left,bottom,right" puts the 2x screen inside a static window frame: a menu
# bar with "items" on top, a dark bevelled border elsewhere (like a real emulator's window).
FAKE_EMU = r"""
import os, sys, time
import numpy as np
os.environ["SDL_VIDEODRIVER"] = "x11"
os.environ["SDL_VIDEO_WINDOW_POS"] = sys.argv[2]
import pygame
frames = np.load(sys.argv[1])
period, lifetime = float(sys.argv[3]), float(sys.argv[4])
top, left, bottom, right = (int(v) for v in (sys.argv[5] if len(sys.argv) > 5 else "0,0,0,0").split(","))
W, H = 320 + left + right, 288 + top + bottom
canvas = np.zeros((H, W, 3), np.uint8)
canvas[:, :] = (60, 62, 70)
canvas[:top, :] = (214, 214, 206)
for i in range(0, W - 40, 56):  # menu items: dark text-like blocks
    canvas[top // 4:top - top // 4, i + 8:i + 40] = (40, 40, 40)
canvas[top:, :max(left - 2, 0)] = (30, 30, 36)
pygame.display.init()
screen = pygame.display.set_mode((W, H))
pygame.display.set_caption("FakeBoy emulator")
start = time.time()
i = 0
while time.time() - start < lifetime:
    pygame.event.pump()
    g = frames[int((time.time() - start) / period) % len(frames)]
    canvas[top:top + 288, left:left + 320] = np.repeat(np.repeat(np.repeat(g[:, :, None], 3, 2), 2, 0), 2, 1)
    pygame.surfarray.blit_array(screen, canvas.transpose(1, 0, 2))
    pygame.display.flip()
    time.sleep(1 / 60)
pygame.display.quit()
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return _tiny_onnx(tmp_path_factory.mktemp("model") / "tiny.onnx")


@pytest.fixture(scope="module")
def grey_frames() -> np.ndarray:
    """Three grey game frames with clearly different content (so the test can tell them apart)."""
    rgb = make_game_frames(24, seed=3)[::8]
    return np.ascontiguousarray(rgb.mean(axis=3).astype(np.uint8))


def _start_emu(env: dict, frames: np.ndarray, tmp: Path, pos: str = "40,40", period: float = 0.4,
               lifetime: float = 30.0, border: tuple[int, int, int, int] = (0, 0, 0, 0)) -> subprocess.Popen:
    np.save(tmp / "frames.npy", frames)
    (tmp / "fake_emu.py").write_text(FAKE_EMU)
    proc = subprocess.Popen([PY, str(tmp / "fake_emu.py"), str(tmp / "frames.npy"), pos, str(period), str(lifetime),
                             ",".join(str(v) for v in border)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 45  # generous: importing pygame takes seconds on a loaded 2-core machine
    while time.time() < deadline:
        if _find(env, "FakeBoy emulator") is not None:
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the stand-in emulator window did not appear")


def _live(env: dict, *args: str, timeout: float = 30) -> subprocess.Popen:
    return subprocess.Popen([PY, str(ROOT / "retrocolor.py"), "live", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


_find = x_window_rect


def _our_window(env: dict):
    return _find(env, "retrocolor live")


def test_live_region_shows_the_engines_colourisation(xvfb, model, grey_frames, tmp_path):
    from realtime.engine import Colorizer

    emu = _start_emu(xvfb, grey_frames, tmp_path)
    stats_path = tmp_path / "stats.json"
    try:
        live = _live(xvfb, "--region", "40,40,320,288", "--model", str(model), "--scale", "2", "--seconds", "3",
                     "--stats-json", str(stats_path))
        # grab our output window from the X server while it runs
        grabs = []
        deadline = time.time() + 12
        from capture.window import open_mss

        os.environ["DISPLAY"] = xvfb["DISPLAY"]
        with contextlib.closing(open_mss()) as sct:
            while time.time() < deadline and len(grabs) < 4 and live.poll() is None:
                geo = _our_window(xvfb)
                if geo is not None and geo.width == 320:
                    time.sleep(0.5)
                    shot = np.asarray(sct.grab({"left": geo.x, "top": geo.y, "width": geo.width, "height": geo.height}))
                    grabs.append(np.ascontiguousarray(shot[:, :, 2::-1]))
                else:
                    time.sleep(0.1)
        out, err = live.communicate(timeout=20)
    finally:
        emu.kill()
        emu.wait()
        os.environ.pop("DISPLAY", None)
    assert live.returncode == 0, err
    assert "live: capturing region 40,40,320,288" in err
    assert "frames shown" in out
    assert len(grabs) >= 1, f"could not grab our window ({err})"
    col = Colorizer(str(model))
    expected = [np.repeat(np.repeat(col.colorize(g), 2, 0), 2, 1).astype(np.int16) for g in grey_frames]
    for shot in grabs:
        assert shot.shape == (288, 320, 3)
        errors = [float(np.abs(shot.astype(np.int16) - e).mean()) for e in expected]
        assert min(errors) < 2.0, f"our window does not show the colourised frame (mean abs errors {errors})"
        # and it is really coloured, not the grey input
        assert float(np.abs(shot[:, :, 0].astype(int) - shot[:, :, 2]).mean()) > 5
    stats = json.loads(stats_path.read_text())
    print("live stats:", json.dumps({k: stats[k] for k in ("fps", "capture_fps", "frames", "frames_captured")}),
          "capture_to_display:", stats["capture_to_display"], "colorize:", stats["stages"]["colorize"])
    assert stats["frames"] > 10 and stats["frames_captured"] >= stats["frames_colorized"] >= stats["frames"]
    assert stats["target_fps"] == pytest.approx(59.7275, abs=1e-3)
    for key in ("capture", "detect_sample", "colorize", "display"):
        assert stats["stages"][key]["p50_ms"] is not None and stats["stages"][key]["p99_ms"] is not None
    assert stats["capture_to_display"]["p50_ms"] > 0
    # the stand-in shows a new frame every 0.4 s: most grabs repeat the one before and reuse its
    # colour, and the model's own time is reported on the new frames alone
    new = stats["stages"]["colorize_new_frames"]
    assert stats["frames_reused"] > 0 and new["n"] == stats["frames_colorized"] - stats["frames_reused"] > 0
    assert new["p50_ms"] > stats["stages"]["colorize"]["p50_ms"]
    assert f"{stats['frames_reused']} repeated frames reused their colour" in out
    assert f"on the {new['n']} new frames" in out


def test_live_says_a_signal_stopped_it(xvfb, model, grey_frames, tmp_path):
    """SDL turns SIGTERM into a window-close event: live must not say the user closed its window."""
    emu = _start_emu(xvfb, grey_frames, tmp_path)
    try:
        live = _live(xvfb, "--region", "40,40,320,288", "--model", str(model), "--scale", "2", "--seconds", "30")
        deadline = time.time() + 20
        while time.time() < deadline and _our_window(xvfb) is None and live.poll() is None:
            time.sleep(0.1)
        time.sleep(0.5)
        live.send_signal(signal.SIGTERM)
        out, err = live.communicate(timeout=20)
    finally:
        emu.kill()
        emu.wait()
    assert live.returncode == 0, err
    assert "live: stopped by SIGTERM" in err and "closed by the user" not in err, err
    assert "frames shown" in out


def test_live_finds_the_screen_inside_the_emulator_window(xvfb, model, grey_frames, tmp_path):
    """The emulator window has a static menu bar and border around its 2x screen: after a short
    look (whole window first), our window shows the colourised game screen only, not the frame."""
    from realtime.engine import Colorizer

    top, left, bottom, right = 24, 6, 10, 6
    emu = _start_emu(xvfb, grey_frames, tmp_path, pos="30,30", period=0.3, border=(top, left, bottom, right))
    stats_path = tmp_path / "stats.json"
    grabs = []
    try:
        live = _live(xvfb, "--window", "FakeBoy", "--model", str(model), "--scale", "2", "--seconds", "10",
                     "--stats-json", str(stats_path))
        t_start = time.time()
        # Read live's stderr as it comes, to know when the screen was found: detection takes
        # 0.3-2 s of CPU, much longer on a loaded machine, so a fixed delay would be flaky.
        err_lines: list[str] = []
        found_at: list[float] = []

        def read_err() -> None:
            assert live.stderr is not None
            for line in live.stderr:
                err_lines.append(line)
                if line.startswith("live: game screen") and not found_at:
                    found_at.append(time.time())

        reader = threading.Thread(target=read_err, daemon=True)
        reader.start()
        from capture.window import open_mss

        os.environ["DISPLAY"] = xvfb["DISPLAY"]
        deadline = time.time() + 20
        with contextlib.closing(open_mss()) as sct:
            while time.time() < deadline and live.poll() is None:
                geo = _our_window(xvfb)
                if geo is not None and geo.width == 320 and found_at and time.time() > found_at[0] + 0.5:
                    time.sleep(0.2)
                    with contextlib.suppress(Exception):  # our window may close between the two calls
                        shot = np.asarray(sct.grab({"left": geo.x, "top": geo.y, "width": geo.width,
                                                    "height": geo.height}))
                        grabs.append((time.time(), np.ascontiguousarray(shot[:, :, 2::-1])))
                    if len(grabs) >= 4:
                        break
                else:
                    time.sleep(0.1)
        live.wait(timeout=20)
        reader.join(timeout=5)
        err = "".join(err_lines)
    finally:
        emu.kill()
        emu.wait()
        os.environ.pop("DISPLAY", None)
    assert live.returncode == 0, err
    win_w, win_h = 320 + left + right, 288 + top + bottom
    assert f"capturing window 'FakeBoy emulator' ({win_w}x{win_h} at 30,30)" in err
    col = Colorizer(str(model))
    expected = [np.repeat(np.repeat(col.colorize(g), 2, 0), 2, 1).astype(np.int16) for g in grey_frames]
    # Grabs taken after the detection was announced; a grab of the window while it closes reads black.
    assert found_at, f"live never found the game screen: {err}"
    late = [shot for _, shot in grabs if shot.mean() > 10][-3:]
    assert len(late) >= 2, (f"too few grabs of our window after detection ({len(grabs)}; "
                            f"screen found {found_at[0] - t_start:.1f} s after the start)")
    for shot in late:
        assert shot.shape == (288, 320, 3)
        errors = [float(np.abs(shot.astype(np.int16) - e).mean()) for e in expected]
        assert min(errors) < 2.0, f"our window does not show the colourised game screen (mean abs errors {errors})"
    assert f"live: game screen {left},{top},320,288 (scale 2), nearest upscale inside the {win_w}x{win_h} window" \
        in err, err
    stats = json.loads(stats_path.read_text())
    assert stats["screen_detection"].startswith(f"game screen {left},{top},320,288")


@pytest.mark.skipif(not shutil.which("xdotool"), reason="needs xdotool to move and unmap the window")
def test_live_window_follow_minimise_and_close(xvfb, model, grey_frames, tmp_path):
    """--window finds the emulator by title; we follow it when it moves, wait while it is unmapped
    (minimised), and stop cleanly (exit 0, one line) when it closes mid-run."""
    emu = _start_emu(xvfb, grey_frames, tmp_path, pos="500,300", lifetime=60)
    stats_path = tmp_path / "stats.json"
    try:
        live = _live(xvfb, "--window", "fakeboy", "--model", str(model), "--seconds", "20",
                     "--stats-json", str(stats_path))
        deadline = time.time() + 40  # live imports onnxruntime and pygame first: slow on a loaded machine
        ours = None
        while time.time() < deadline and live.poll() is None:
            ours = _our_window(xvfb)
            if ours is not None:
                break
            time.sleep(0.1)
        assert ours is not None and live.poll() is None, "our window did not appear"
        assert (ours.x, ours.y) == (500 - 8 - 480, 300)  # beside: no room on the right, so on the left
        emu_id = subprocess.run(["xwininfo", "-name", "FakeBoy emulator"], env=xvfb, capture_output=True,
                                text=True).stdout.split("Window id: ")[1].split()[0]
        subprocess.run(["xdotool", "windowmove", emu_id, "100", "100"], env=xvfb, check=True)
        deadline = time.time() + 10  # the tracker polls 4 times a second; allow for a loaded machine
        while time.time() < deadline:
            ours = _our_window(xvfb)
            if ours is not None and (ours.x, ours.y) == (100 + 320 + 8, 100):
                break
            time.sleep(0.2)
        assert ours is not None and (ours.x, ours.y) == (100 + 320 + 8, 100)  # followed, now on the right
        subprocess.run(["xdotool", "windowunmap", emu_id], env=xvfb, check=True)
        time.sleep(0.8)
        subprocess.run(["xdotool", "windowmap", emu_id], env=xvfb, check=True)
        time.sleep(0.8)
        emu.kill()  # the emulator closes mid-run
        out, err = live.communicate(timeout=15)
    finally:
        emu.kill()
        emu.wait()
    assert live.returncode == 0, err
    assert "capturing window 'FakeBoy emulator' (320x288 at 500,300)" in err
    assert "minimised or hidden; waiting" in err and "window is back" in err
    assert "live: the captured window 'FakeBoy emulator' closed; stopping" in err
    stats = json.loads(stats_path.read_text())
    assert stats["seconds"] < 18  # it stopped because the window closed, not because time ran out
    assert stats["source"]["kind"] == "window" and stats["frames"] > 0
    assert stats["screen_detection"]


# Moves our window many times, dropping every temporary object, then checks what pygame attaches
# to window events: with pygame 2.6's borrowed "pg_window" pointer left dangling, ``e.window`` was
# freed memory (a random object, or a SIGSEGV in live's event loop after following the emulator).
MOVE_SCRIPT = r"""
import gc, sys, time
import numpy as np
import pygame
from realtime.display import Display
d = Display("retrocolor move test", (160, 144), 1, position=(10, 10))
bad = seen = 0
for i in range(30):
    d.move(10 + (i % 7) * 13, 10 + (i % 5) * 11)
    gc.collect()
    junk = [pygame.event.Event(pygame.USEREVENT, n=k) for k in range(200)]  # reuse freed memory
    d.show(np.zeros((144, 160, 3), np.uint8))
    time.sleep(0.01)
    for e in pygame.event.get():
        w = getattr(e, "window", None)
        if w is not None:
            seen += 1
            bad += type(w).__name__ != "Window"
d.close()
print(f"seen={seen} bad={bad}")
"""


def test_display_move_keeps_window_events_valid(xvfb, tmp_path):
    script = tmp_path / "move.py"
    script.write_text(MOVE_SCRIPT)
    r = subprocess.run([PY, str(script)], env=dict(xvfb, PYTHONFAULTHANDLER="1"), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    seen, bad = (int(t.split("=")[1]) for t in r.stdout.split()[-2:])
    assert seen > 0 and bad == 0, r.stdout


@pytest.mark.skipif(not shutil.which("xdotool"), reason="needs xdotool to send a key")
def test_live_over_the_window_and_screenshot_key(xvfb, model, grey_frames, tmp_path):
    """--position over: our window covers the emulator, yet shows its colourisation (the covered
    window is read through XComposite, not from the screen, so there is no feedback loop); P
    writes a screenshot PNG."""
    from realtime.engine import Colorizer
    from utils.images import read_rgb

    emu = _start_emu(xvfb, grey_frames, tmp_path, pos="60,60", period=0.25)
    shots = tmp_path / "shots"
    try:
        live = _live(xvfb, "--window", "FakeBoy", "--position", "over", "--scale", "2", "--seconds", "3",
                     "--model", str(model), "--screenshot-dir", str(shots))
        for _ in range(100):
            ours = _our_window(xvfb)
            if ours is not None:
                break
            time.sleep(0.1)
        assert ours == _find(xvfb, "FakeBoy emulator")  # exactly over it
        time.sleep(1.0)
        wid = subprocess.run(["xwininfo", "-name", "retrocolor live"], env=xvfb, capture_output=True,
                             text=True).stdout.split("Window id: ")[1].split()[0]
        subprocess.run(["xdotool", "key", "--window", wid, "p"], env=xvfb, check=True)
        out, err = live.communicate(timeout=20)
    finally:
        emu.kill()
        emu.wait()
    assert live.returncode == 0, err
    pngs = list(shots.glob("retrocolor-live-*.png"))
    assert len(pngs) == 1 and f"live: screenshot {pngs[0]}" in err
    shot = read_rgb(pngs[0]).astype(np.int16)
    col = Colorizer(str(model))
    errors = [float(np.abs(np.repeat(np.repeat(col.colorize(g), 2, 0), 2, 1) - shot).mean()) for g in grey_frames]
    assert shot.shape == (288, 320, 3) and min(errors) < 2.0, errors


def test_live_errors(xvfb, model, grey_frames, tmp_path, monkeypatch, capsys):
    """Every failure is one line and exit code 2 (run in-process: no interpreter start-ups)."""
    import retrocolor

    emu = _start_emu(xvfb, grey_frames, tmp_path, pos="40,40")
    monkeypatch.setenv("DISPLAY", xvfb["DISPLAY"])
    try:
        assert retrocolor.main(["live", "--window", "no such emulator", "--model", str(model)]) == 2
        err = capsys.readouterr().err
        assert "no window title contains 'no such emulator'" in err and "'FakeBoy emulator'" in err
        assert len(err.strip().splitlines()) == 1
        assert retrocolor.main(["live", "--region", "2000,2000,320,288", "--model", str(model)]) == 2
        err = capsys.readouterr().err
        assert "off screen" in err and "1024x768" in err, err
        # no --window/--region: it finds no known emulator, and says which titles it saw
        assert retrocolor.main(["live", "--model", str(model)]) == 2
        err = capsys.readouterr().err
        assert "no emulator window found" in err and "FakeBoy" in err
        assert retrocolor.main(["live", "--region", "0,0,320,288", "--position", "over", "--model", str(model)]) == 2
        assert "--position over needs --window" in capsys.readouterr().err
    finally:
        emu.kill()
        emu.wait()
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert retrocolor.main(["live", "--region", "0,0,320,288", "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert "DISPLAY is not set" in err and len(err.strip().splitlines()) == 1
