"""`retrocolor dataset render`: ROMs -> colour frames + real monochrome twins, on cartridges the tests build.

The cartridges are the project's own demo program (realtime.demo) in its three header modes: a
monochrome game, a dual-mode one that loads a Color palette, and a Color-only one.  PyBoy runs them
for real; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dataset.render import RenderConfig, render, twins_agree
from realtime.demo import build_demo_rom, finalize_header
from retrocolor import main
from utils.errors import UserError
from utils.images import read_gray, read_rgb

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(frames=10, max_emulated=6000, time_limit=60.0)


def _roms(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "dualgame.gbc").write_bytes(build_demo_rom("DUALGAME", mode="dual"))
    (d / "colourgame.gbc").write_bytes(build_demo_rom("COLOURGAME", mode="cgb"))
    (d / "monogame.gb").write_bytes(build_demo_rom("MONOGAME", mode="dmg"))
    return d


def _hung_rom() -> bytes:
    """A cartridge whose first instruction is an illegal opcode: PyBoy 2.8 never returns from tick()."""
    rom = bytearray(32 * 1024)
    rom[0x100:0x104] = bytes((0x00, 0xC3, 0x50, 0x01))
    rom[0x134:0x138] = b"HANG"
    rom[0x143] = 0x80  # dual-mode, so the renderer runs it
    rom[0x150] = 0xD3
    return finalize_header(bytes(rom))


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*.png"))}


def test_render_dual_colour_and_bad_roms_jobs_2(tmp_path, capsys):
    roms = _roms(tmp_path / "roms")
    (roms / "truncated.gb").write_bytes(build_demo_rom(mode="dual")[:20000])
    bad = bytearray(build_demo_rom(mode="dual"))
    bad[0x14D] ^= 0xFF
    (roms / "badsum.gbc").write_bytes(bytes(bad))
    (roms / "notes.gb").write_text("not a rom at all\n" * 3000)
    out = tmp_path / "corpus"
    rc = main(["dataset", "render", str(roms), "-o", str(out), "--jobs", "2", "--frames", "10",
               "--max-emulated", "6000"])
    assert rc == 0
    printed = capsys.readouterr()
    # one line per bad or skipped ROM, never a traceback
    for name in ("truncated.gb", "badsum.gbc", "notes.gb", "monogame.gb"):
        assert sum(name in line for line in printed.err.splitlines()) == 1, printed.err
    assert "header checksum" in printed.err and "monochrome-only" in printed.err
    assert "Traceback" not in printed.err + printed.out
    assert "2 games rendered" in printed.out

    dual = out / "dualgame"
    colour = sorted(dual.glob("*.png"))
    twins = sorted((dual / "dmg").glob("*.png"))
    assert len(colour) == 10
    assert 0 < len(twins) <= 10
    assert {t.name for t in twins} <= {c.name for c in colour}
    ticks = [int(p.stem.split("_")[1]) for p in colour]
    assert ticks == sorted(set(ticks))                    # play order, no two frames of one moment
    for t in twins:
        g = read_gray(t)
        assert g.shape == (144, 160)
        assert set(np.unique(g).tolist()) <= {0, 85, 170, 255}
        rgb = read_rgb(dual / t.name)
        assert twins_agree(rgb, g)
        assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 4  # real colour, not the grey screen
    meta = json.loads((dual / "render.json").read_text())
    assert meta["mode"] == "dual" and meta["status"] == "done" and meta["frames"] == 10
    assert meta["twins"] == len(twins) and meta["emulated"] > 0 and meta["scenes"] > 0

    cg = out / "colourgame"
    assert len(list(cg.glob("*.png"))) == 10 and not (cg / "dmg").exists()
    assert json.loads((cg / "render.json").read_text())["mode"] == "cgb"
    assert not (out / "monogame").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dualgame"]["mode"] == "dual" and manifest["dualgame"]["dmg_twins"] == len(twins)
    assert manifest["colourgame"]["mode"] == "colour-only"
    summary = json.loads((out / "summary.json").read_text())
    assert {s["rom"].split("/")[-1] for s in summary["skipped"]} == {"truncated.gb", "badsum.gbc", "notes.gb",
                                                                      "monogame.gb"}


def test_render_is_deterministic_and_a_rerun_skips_finished_games(tmp_path):
    roms = tmp_path / "roms"
    roms.mkdir()
    (roms / "dualgame.gbc").write_bytes(build_demo_rom("DUALGAME", mode="dual"))
    a = render([roms], tmp_path / "a", RenderConfig(seed=3, **SMALL))
    b = render([roms], tmp_path / "b", RenderConfig(seed=3, **SMALL))
    assert _files(tmp_path / "a") == _files(tmp_path / "b") != {}
    c = render([roms], tmp_path / "c", RenderConfig(seed=4, **SMALL))
    assert _files(tmp_path / "c") != _files(tmp_path / "a")      # the seed matters
    assert a.results[0].frames == b.results[0].frames == c.results[0].frames == 10
    # A rerun with the same settings renders nothing again.
    t = (tmp_path / "a" / "dualgame" / "render.json").stat().st_mtime_ns
    again = render([roms], tmp_path / "a", RenderConfig(seed=3, **SMALL))
    assert (tmp_path / "a" / "dualgame" / "render.json").stat().st_mtime_ns == t
    assert again.results[0].status == "done"
    # More frames extend the same run: the first ten are the same files.
    more = render([roms], tmp_path / "a", RenderConfig(seed=3, **{**SMALL, "frames": 14}))
    assert more.results[0].frames == 14
    assert set(_files(tmp_path / "b").items()) <= set(_files(tmp_path / "a").items())
    with pytest.raises(UserError, match="other settings"):
        render([roms], tmp_path / "a", RenderConfig(seed=5, **SMALL))


def test_render_resumes_after_a_kill(tmp_path):
    roms = tmp_path / "roms"
    roms.mkdir()
    (roms / "dualgame.gbc").write_bytes(build_demo_rom("DUALGAME", mode="dual"))
    (roms / "colourgame.gbc").write_bytes(build_demo_rom("COLOURGAME", mode="cgb"))
    args = ["dataset", "render", str(roms), "-o", str(tmp_path / "killed"), "--frames", "40",
            "--max-emulated", "20000", "--seed", "2"]
    proc = subprocess.Popen([sys.executable, "-c", "import sys, retrocolor; sys.exit(retrocolor.main(sys.argv[1:]))",
                             *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    first = tmp_path / "killed" / "colourgame"
    # finished frames only: a frame being written is a dot-named temp file (utils.fsio.atomic_path)
    while time.monotonic() < deadline and len([p for p in first.glob("*.png") if not p.name.startswith(".")]) < 8:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)   # the parent and the game's process, mid-game
    proc.wait()
    partial = {k: v for k, v in _files(tmp_path / "killed").items() if not Path(k).name.startswith(".")}
    assert 8 <= len(partial) < 80, len(partial)
    assert main(args) == 0
    assert main(args[:4] + [str(tmp_path / "clean")] + args[5:]) == 0
    assert _files(tmp_path / "killed") == _files(tmp_path / "clean")   # no half-written temp file left either
    assert set(partial.items()) <= set(_files(tmp_path / "clean").items())


def test_hung_rom_is_killed_and_the_others_go_on(tmp_path, capsys):
    roms = tmp_path / "roms"
    roms.mkdir()
    (roms / "hang.gb").write_bytes(_hung_rom())
    (roms / "dualgame.gbc").write_bytes(build_demo_rom("DUALGAME", mode="dual"))
    t0 = time.monotonic()
    rc = main(["dataset", "render", str(roms), "-o", str(tmp_path / "out"), "--jobs", "2", "--frames", "10",
               "--max-emulated", "6000", "--time-limit", "3"])
    took = time.monotonic() - t0
    out = capsys.readouterr().out
    assert rc == 0
    assert "no frames from" in out and "hung emulator" in out and "killed" in out
    assert len(list((tmp_path / "out" / "dualgame").glob("*.png"))) == 10
    assert took < 30   # killed at twice the limit, not left to run
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["games"]["hang"]["status"] == "killed"
    assert "hang" not in json.loads((tmp_path / "out" / "manifest.json").read_text())


def test_nothing_rendered_is_an_error_and_mono_renders_grey_frames_alone(tmp_path, capsys):
    roms = _roms(tmp_path / "roms")
    mono = roms / "monogame.gb"
    assert main(["dataset", "render", str(mono), "-o", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("retrocolor: error: nothing was rendered")
    assert main(["dataset", "render", str(tmp_path / "missing.gb"), "-o", str(tmp_path / "none")]) == 2
    assert "no such ROM" in capsys.readouterr().err
    assert main(["dataset", "render", str(mono), "-o", str(tmp_path / "mono"), "--mono", "--frames", "6"]) == 0
    game = tmp_path / "mono" / "monogame"
    assert list(game.glob("*.png")) == []             # no colour truth: nothing a trainer would read as colour
    greys = sorted((game / "dmg").glob("*.png"))
    assert len(greys) == 6
    assert all(set(np.unique(read_gray(g)).tolist()) <= {0, 85, 170, 255} for g in greys)


def test_twins_agree_tells_the_same_moment_from_another():
    rng = np.random.default_rng(0)
    shade = rng.integers(0, 4, size=(18, 20)).repeat(8, 0).repeat(8, 1)
    lut = np.array([[250, 240, 200], [120, 200, 80], [40, 90, 160], [10, 10, 30]], np.uint8)
    grey = (255 - 85 * shade).astype(np.uint8)
    assert twins_agree(lut[shade], grey)
    other = np.roll(shade, 24, axis=1)
    assert not twins_agree(lut[other], grey)
    assert not twins_agree(lut[np.zeros_like(shade)], grey)   # a blank colour frame


@pytest.mark.shared
def test_render_a_real_dual_rom_from_shared(tmp_path):
    from helpers import shared_path

    rom = shared_path("roms", "dual", "cars.gbc")
    rep = render([rom], tmp_path / "c", RenderConfig(frames=30, max_emulated=12000, time_limit=120))
    r = rep.results[0]
    assert r.mode == "dual" and r.frames == 30 and r.twins >= 15 and r.scenes >= 10, r
