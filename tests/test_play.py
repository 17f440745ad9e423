"""``retrocolor play`` / ``demo``: PyBoy on the project's own homebrew cartridge, through the colorizer."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import tiny_lightness_onnx as _tiny_onnx

import retrocolor
from capture.rom import validate_rom
from realtime.demo import build_demo_rom, write_demo_rom
from realtime.play import PlayOptions, play
from utils.errors import UserError


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return _tiny_onnx(tmp_path_factory.mktemp("model") / "tiny.onnx")


@pytest.fixture(scope="module")
def rom(tmp_path_factory) -> Path:
    return write_demo_rom(tmp_path_factory.mktemp("rom") / "demo.gb")


def _count_frames(path: Path) -> tuple[int, int, int]:
    cap = cv2.VideoCapture(str(path))
    n, size = 0, (0, 0)
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n += 1
        size = frame.shape[1], frame.shape[0]
    cap.release()
    return n, size[0], size[1]


def test_demo_rom_is_a_valid_cartridge_that_runs_and_reads_the_dpad():
    rom = build_demo_rom()
    assert len(rom) == 32 * 1024
    assert rom[0x104:0x134] == bytes(48)  # no Nintendo logo bytes: PyBoy's open boot ROM does not check them
    import io

    from pyboy import PyBoy

    pb = PyBoy(io.BytesIO(rom), window="null", sound_emulated=False, cgb=False, log_level="ERROR")
    try:
        pb.tick(200)  # past the boot animation
        a = pb.screen.ndarray[:, :, :3].copy()
        pb.tick(10)
        b = pb.screen.ndarray[:, :, :3].copy()
        assert len(np.unique(a[:, :, 0])) == 4  # all four DMG shades: a real scene, not a blank screen
        assert not np.array_equal(a, b)  # and it moves
        x0 = pb.memory[0xFE05]
        pb.button_press("right")
        pb.tick(10)
        pb.button_release("right")
        pb.tick(2)
        assert (pb.memory[0xFE05] - x0) % 256 >= 8  # the star followed the d-pad
    finally:
        pb.stop(save=False)


def test_headless_play_records_colorized_frames(model, rom, tmp_path):
    out, png, stats_path = tmp_path / "out.mp4", tmp_path / "last.png", tmp_path / "stats.json"
    res = play(rom, PlayOptions(model=str(model), headless=True, frames=90, record=out, scale=2, last_png=png,
                                stats_json=stats_path))
    print(res.summary())
    assert res.frames == 90 and res.video == out
    n, w, h = _count_frames(out)
    assert (n, w, h) == (90, 320, 288)
    assert not list(tmp_path.glob(".*tmp*"))  # atomic: no temp file left behind
    # the PNG is grey | colour at 2x; its colour half is the engine's colourisation of its grey half
    from realtime.engine import Colorizer
    from utils.images import read_rgb

    sbs = read_rgb(png)
    assert sbs.shape == (288, (160 * 2 + 2) * 2, 3)
    grey, colour = sbs[::2, ::2][:, :160], sbs[::2, ::2][:, 162:]
    assert np.array_equal(grey[:, :, 0], grey[:, :, 2])  # the input really is grey
    assert float(np.abs(colour[:, :, 0].astype(int) - colour[:, :, 2]).mean()) > 5  # the output is not
    expected = Colorizer(str(model)).colorize(grey)
    assert float(np.abs(expected.astype(int) - colour).mean()) < 2.0
    stats = json.loads(stats_path.read_text())
    assert stats["frames"] == 90 and stats["pacing"] is False and stats["stages"]["colorize"]["n"] == 90


def test_windowed_play_is_paced(model, rom, tmp_path, monkeypatch):
    """With a (dummy) display the loop is paced at 59.73 fps; the figures are printed, not asserted."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    res = play(rom, PlayOptions(model=str(model), frames=30, scale=1))
    s = res.stats
    print(f"windowed (dummy display): mean frame interval {s['mean_frame_interval_ms']} ms, "
          f"p99 {s['frame_interval_p99_ms']} ms, {s['fps']} fps (target {s['target_fps']})")
    assert s["pacing"] is True and s["target_fps"] == pytest.approx(59.7275, abs=1e-3)
    assert s["frames"] == 30 and s["stages"]["display"]["n"] == 30 and s["mean_frame_interval_ms"] > 0


def test_not_a_rom_is_refused_before_pyboy(tmp_path):
    small = tmp_path / "notes.gb"
    small.write_bytes(b"hello" * 100)
    with pytest.raises(UserError, match="not a Game Boy ROM: 500 bytes"):
        validate_rom(small)
    bad_sum = tmp_path / "zeros.gb"
    bad_sum.write_bytes(bytes(32 * 1024))
    with pytest.raises(UserError, match="header checksum mismatch"):
        validate_rom(bad_sum)
    good = bytearray(build_demo_rom())
    good[0x147] = 0xFC  # Pocket Camera: a real type, but not one PyBoy runs
    from realtime.demo import finalize_header

    odd = tmp_path / "camera.gb"
    odd.write_bytes(finalize_header(bytes(good)))
    with pytest.raises(UserError, match="cartridge type 0xfc"):
        validate_rom(odd)
    with pytest.raises(UserError, match="no such ROM"):
        validate_rom(tmp_path / "missing.gb")


def test_windowed_play_without_a_display_says_so(model, rom, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    monkeypatch.setattr("sys.platform", "linux")
    with pytest.raises(UserError, match="no display: DISPLAY is not set; use --headless"):
        play(rom, PlayOptions(model=str(model), frames=5))


def test_cli_play_and_demo(model, rom, tmp_path, capsys, monkeypatch):
    out = tmp_path / "cli.mp4"
    assert retrocolor.main(["play", str(rom), "--model", str(model), "--headless", "--frames", "20", "--record",
                            str(out), "--scale", "1"]) == 0
    printed = capsys.readouterr().out
    assert "play: 20 frames" in printed and str(out) in printed
    assert _count_frames(out)[:1] == (20,)

    bad = tmp_path / "bad.gb"
    bad.write_bytes(b"x" * 1234)
    assert retrocolor.main(["play", str(bad), "--model", str(model), "--headless", "--frames", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a Game Boy ROM" in err

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert retrocolor.main(["demo", "--seconds", "1", "--model", str(model), "--scale", "2"]) == 0
    cap = capsys.readouterr()
    print(cap.err + cap.out)
    assert "no display found" in cap.err
    mp4 = next(tmp_path.glob("retrocolor-demo-*.mp4"))
    png = next(tmp_path.glob("retrocolor-demo-*.png"))
    assert str(mp4) in cap.out and str(png) in cap.out
    n, w, h = _count_frames(mp4)
    assert n == 60 and (w, h) == (322 * 2, 144 * 2)
    assert os.path.getsize(png) > 1000
