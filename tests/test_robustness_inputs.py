"""Robustness, bad and hostile input: a corpus built here, driven through the CLI and the APIs.

A *clear error* is: non-zero exit, stderr exactly one line starting with ``retrocolor: error:``,
no ``Traceback`` anywhere and no (partial) output file.  Odd-but-valid inputs (16-bit, palette,
grey and alpha PNGs, a video with the wrong extension, paths with spaces, unicode or leading
dashes) must instead work, with the same result as the plain version.  Anything else is counted
as a crash in the robustness tally.

Hostile model files are pickles whose ``__reduce__`` would create a marker file: a positive
control proves that unpickling one really does, then every command that takes a model gets them
and the marker must stay absent.

CLI runs go through :class:`robustness.CliRunner` (the real ``retrocolor.main`` in a forked
child per command, each its own process with its own exit code and stderr) to keep ~60 commands
within a few seconds; the URL cases run as plain ``python retrocolor.py`` subprocesses.
"""

from __future__ import annotations

import json
import pickle
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import conv1x1_onnx, make_game_frames
from robustness import ROOT, CliRunner, Result, bad_input, code_executed, run_cli

from utils.errors import UserError
from utils.images import read_rgb, write_png

pytestmark = pytest.mark.robustness


# --------------------------------------------------------------------------- corpus builders
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(w: int = 100_000, h: int = 100_000) -> bytes:
    """A valid PNG signature + IHDR declaring ``w`` x ``h`` RGB, with a tiny IDAT: decoding it
    would need w*h*3 bytes (30 GB here)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + \
        _chunk(b"IEND", b"")


def tiff_bomb(w: int = 9_000, h: int = 9_000) -> bytes:
    """A real decompression bomb: a deflate-compressed all-black grey TIFF, ~80 KB on disk,
    w*h*3 bytes (243 MB; 1.2 GB at 20000x20000) once decoded to RGB."""
    co = zlib.compressobj(9)
    row = b"\0" * w
    data = b"".join(co.compress(row) for _ in range(h)) + co.flush()
    n, ifd_off = 10, 8
    data_off = ifd_off + 2 + 12 * n + 4
    entries = [(256, 4, w), (257, 4, h), (258, 3, 8), (259, 3, 8), (262, 3, 1), (273, 4, data_off), (277, 3, 1),
               (278, 4, h), (279, 4, len(data)), (284, 3, 1)]
    ifd = struct.pack("<H", n) + b"".join(
        struct.pack("<HHI", tag, typ, 1) + (struct.pack("<HH", v, 0) if typ == 3 else struct.pack("<I", v))
        for tag, typ, v in entries) + b"\0\0\0\0"
    return b"II*\0" + struct.pack("<I", ifd_off) + ifd + data


def webp_bomb(w: int = 16_000, h: int = 16_000) -> bytes:
    """A lossless WebP header declaring ``w`` x ``h`` (the format's maximum is 16383)."""
    vp8l = b"\x2f" + struct.pack("<I", (w - 1) | ((h - 1) << 14)) + b"\0" * 64
    riff = b"WEBP" + b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    return b"RIFF" + struct.pack("<I", len(riff)) + riff


class _Evil:
    """Unpickling this calls ``exec`` on code that creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (exec, (f"open({self.marker!r}, 'w').write('code from a hostile pickle ran')",))


def tiny_onnx(path: Path, in_ch: int = 1, out_ch: int = 2, inputs: int = 1, in_type: int | None = None,
              weight: float = 1.2) -> Path:
    """A 1x1-conv + tanh colorizer (or a deliberately wrong variant of one)."""
    w = np.full((out_ch, in_ch), weight, np.float32) * np.linspace(-1, 1, out_ch, dtype=np.float32)[:, None]
    return conv1x1_onnx(path, w, np.zeros(out_ch, np.float32), inputs=inputs, in_type=in_type)


def write_video(path: Path, frames: np.ndarray, fps: int = 10, scale: int = 2, fourcc: str = "mp4v") -> Path:
    """Game frames at ``scale`` x in a black canvas (a small longplay)."""
    h, w = frames.shape[1] * scale, frames.shape[2] * scale
    ch, cw = h + 40, w + 80
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (cw, ch))
    assert vw.isOpened(), path
    for i, f in enumerate(frames):
        canvas = np.zeros((ch, cw, 3), np.uint8)
        if i >= 5:
            canvas[20:20 + h, 40:40 + w] = cv2.resize(f, (w, h), interpolation=cv2.INTER_NEAREST)[:, :, ::-1]
        vw.write(canvas)
    vw.release()
    return path


def ffmpeg(*args: str) -> bool:
    import shutil

    exe = shutil.which("ffmpeg")
    if exe is None:
        return False
    return subprocess.run([exe, "-v", "error", "-y", *args], capture_output=True, check=False).returncode == 0


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliRunner]:
    r = CliRunner(tmp_path_factory.mktemp("cli"))
    yield r
    r.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("corpus")
    c: dict[str, Path] = {}
    frames = make_game_frames(40, seed=11)
    good = write_video(d / "good.mp4", frames)
    c["good.mp4"] = good
    data = good.read_bytes()
    (d / "empty.mp4").write_bytes(b"")
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (d / "random.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    write_png(d / "frame.png", frames[10])
    (d / "png_renamed.mp4").write_bytes((d / "frame.png").read_bytes())
    (d / "wrong_ext.avi").write_bytes(data)
    (d / "text.mp4").write_text("this is not a video\n")
    for n in ("empty.mp4", "truncated.mp4", "random.mp4", "png_renamed.mp4", "wrong_ext.avi", "text.mp4"):
        c[n] = d / n
    if ffmpeg("-f", "lavfi", "-i", "color=c=gray:size=1x1:rate=10:duration=2", "-c:v", "ffv1", str(d / "1x1.mkv")):
        c["1x1.mkv"] = d / "1x1.mkv"
    if ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(d / "audio_only.mp4")):
        c["audio_only.mp4"] = d / "audio_only.mp4"

    # images
    img = frames[20]
    write_png(d / "plain.png", img)
    raw = (d / "plain.png").read_bytes()
    c["plain.png"] = d / "plain.png"
    (d / "zero.png").write_bytes(b"")
    (d / "truncated.png").write_bytes(raw[: len(raw) * 6 // 10])
    ihdr_end = 8 + 25
    (d / "corrupt.png").write_bytes(raw[:ihdr_end] + _chunk(b"IDAT", b"\x78\x9c" + bytes(range(256)) * 8) +
                                    _chunk(b"IEND", b""))
    (d / "text.png").write_text("<html>not a png</html>")
    cv2.imwrite(str(d / "16bit.png"), (img[:, :, ::-1].astype(np.uint16) * 257))
    cv2.imwrite(str(d / "gray.png"), cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(d / "alpha.png"), np.dstack([img[:, :, ::-1], np.full(img.shape[:2], 255, np.uint8)]))
    from PIL import Image

    Image.fromarray(img).quantize(colors=4, method=Image.Quantize.MEDIANCUT).save(d / "palette.png")
    (d / "bomb.png").write_bytes(png_bomb())
    (d / "bomb.tif").write_bytes(tiff_bomb())
    (d / "bomb.webp").write_bytes(webp_bomb())
    for n in ("zero.png", "truncated.png", "corrupt.png", "text.png", "16bit.png", "gray.png", "alpha.png",
              "palette.png", "bomb.png", "bomb.tif", "bomb.webp"):
        c[n] = d / n

    # models
    c["tiny.onnx"] = tiny_onnx(d / "tiny.onnx")
    c["wrong_channels.onnx"] = tiny_onnx(d / "wrong_channels.onnx", in_ch=3)
    c["wrong_outputs.onnx"] = tiny_onnx(d / "wrong_outputs.onnx", out_ch=3)
    c["two_inputs.onnx"] = tiny_onnx(d / "two_inputs.onnx", inputs=2)
    c["int_input.onnx"] = tiny_onnx(d / "int_input.onnx", in_type=6)  # INT32
    onnx_bytes = c["tiny.onnx"].read_bytes()
    (d / "truncated.onnx").write_bytes(onnx_bytes[: len(onnx_bytes) // 2])
    c["truncated.onnx"] = d / "truncated.onnx"
    import models
    from models.checkpoint import save_model

    save_model(d / "ckpt", models.create("v0"), {"games": ["g"]})
    c["ckpt"] = d / "ckpt.safetensors"
    st = c["ckpt"].read_bytes()
    (d / "trunc.safetensors").write_bytes(st[: len(st) // 2])
    (d / "trunc.json").write_bytes((d / "ckpt.json").read_bytes())
    c["trunc.safetensors"] = d / "trunc.safetensors"

    # a game folder of valid frames (for evaluate / dataset info)
    for i in range(6):
        write_png(d / "games" / "g1" / f"f{i:03d}.png", frames[5 + i])
    c["games"] = d / "games"
    return c


def _new_files(folder: Path, before: set[Path]) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p not in before)


def _judge(area: str, res: Result, expect: str, leftovers: list[Path], ok: bool = True) -> str:
    """Classify one run and record it; ``expect``: error / accept / either."""
    if res.is_clear_error() and not leftovers:
        outcome = "clear"
    elif res.is_clean_success() and ok:
        outcome = "accepted"
    else:
        outcome = "crash"
    wrong = outcome == "crash" or (expect == "error" and outcome != "clear") or \
        (expect == "accept" and outcome != "accepted")
    note = f"{res.describe()}; leftovers {[p.name for p in leftovers]}" if wrong else ""
    bad_input(area, "crash" if wrong else outcome, note)
    return note


# --------------------------------------------------------------------------- videos
def test_bad_videos_through_extract_and_colorize(runner: CliRunner, corpus: dict[str, Path], tmp_path: Path) -> None:
    failures = []
    expect = {"empty.mp4": "error", "truncated.mp4": "error", "random.mp4": "error", "png_renamed.mp4": "error",
              "text.mp4": "error", "1x1.mkv": "error", "audio_only.mp4": "error", "wrong_ext.avi": "accept"}
    for name, want in expect.items():
        if name not in corpus:
            continue
        src = corpus[name]
        out = tmp_path / f"ds_{name}"
        res = runner.run(["extract", str(src), "-o", str(out), "--every-seconds", "0.2"])
        left = [p for p in out.rglob("*") if p.is_file()] if (out.exists() and want == "error") else []
        ok = want != "accept" or len(list((out / "frames").glob("*.png"))) > 3
        failures.append(_judge("videos", res, want, left, ok))
        dst = tmp_path / f"col_{name}.mp4"
        before = set(tmp_path.rglob("*"))
        res = runner.run(["colorize", str(src), "-o", str(dst), "--model", str(corpus["tiny.onnx"])])
        # FFmpeg sniffs content, not names: a PNG called .mp4 is a valid one-frame "video" to colorize
        cwant = "either" if name == "png_renamed.mp4" else want
        left = _new_files(tmp_path, before) if res.rc != 0 else []
        ok = cwant == "error" or (dst.is_file() and bool(cv2.VideoCapture(str(dst)).read()[0]))
        failures.append(_judge("videos", res, cwant, left, ok))
    failures = [f for f in failures if f]
    assert not failures, failures


def test_long_stream_memory_stays_flat(tmp_path: Path) -> None:
    """A 10-hour stream, simulated: 2 min vs 20 min of a tiny video; peak RSS of `extract` must not
    grow with the length (frames are streamed, never collected)."""
    import os
    import shutil

    from robustness import CLI, cli_env, wait_with_rusage

    if not shutil.which("ffmpeg"):
        pytest.skip("needs ffmpeg to write the long videos quickly")
    peaks = {}
    for minutes in (2, 20):
        v = tmp_path / f"stream_{minutes}min.mp4"
        assert ffmpeg("-f", "lavfi", "-i", f"testsrc=size=160x144:rate=2:duration={minutes * 60}", "-c:v", "libx264",
                      "-preset", "ultrafast", "-g", "20", "-pix_fmt", "yuv420p", str(v)) or \
            ffmpeg("-f", "lavfi", "-i", f"testsrc=size=160x144:rate=2:duration={minutes * 60}", "-c:v", "mpeg4",
                   "-g", "20", str(v))
        proc = subprocess.Popen([*CLI, "extract", str(v), "-o", str(tmp_path / f"ds{minutes}"), "--every-seconds", "5",
                                 "--crop", "0,0,160,144"], cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        rc, peak_kib = wait_with_rusage(proc, 120)
        err = proc.stderr.read().decode() if proc.stderr else ""
        assert rc == 0, err
        peaks[minutes] = peak_kib / 1024
        n = len(os.listdir(tmp_path / f"ds{minutes}" / "frames"))
        print(f"extract of a {minutes}-minute stream ({n} frames kept): peak RSS {peaks[minutes]:.1f} MiB")
    grow = peaks[20] - peaks[2]
    flat = grow < 30
    bad_input("videos", "accepted" if flat else "crash", f"peak RSS grew {grow:.1f} MiB from 2 to 20 minutes")
    assert flat, peaks


# --------------------------------------------------------------------------- images
IMAGE_EXPECT = {
    "zero.png": "error", "truncated.png": "error", "corrupt.png": "error", "text.png": "error",
    "bomb.png": "error", "bomb.tif": "error", "bomb.webp": "error",
    "16bit.png": "accept", "gray.png": "accept", "alpha.png": "accept", "palette.png": "accept",
}


def test_bad_images_through_read_rgb_colorize_info_and_evaluate(runner: CliRunner, corpus: dict[str, Path],
                                                                tmp_path: Path) -> None:
    import time

    failures = []
    plain = read_rgb(corpus["plain.png"])
    ref = tmp_path / "ref.png"
    res = runner.run(["colorize", str(corpus["plain.png"]), "-o", str(ref), "--model", str(corpus["tiny.onnx"])])
    assert res.is_clean_success(), res.describe()
    for name, want in IMAGE_EXPECT.items():
        src = corpus[name]
        # the API: one UserError, refused before decoding for the bombs (fast, small)
        t0 = time.perf_counter()
        try:
            img = read_rgb(src)
            api = "accepted" if img.dtype == np.uint8 and img.shape == (144, 160, 3) else "crash"
        except UserError as e:
            api = "clear"
            if "bomb" in name:
                assert "refusing to decode" in str(e) and time.perf_counter() - t0 < 0.5, e
        except Exception as e:  # noqa: BLE001 - the finding
            api = "crash"
            failures.append(f"read_rgb({name}): {type(e).__name__}: {e}")
        bad_input("images", api if (api == "clear") == (want == "error") else "crash")
        if want == "accept" and name != "palette.png" and api == "accepted":
            same = np.abs(read_rgb(src).astype(int) - (plain if name != "gray.png" else plain)).max()
            if name != "gray.png":
                assert same <= 1, f"{name} decodes differently from the 8-bit RGB original ({same})"
        # the CLI: colorize one image
        dst = tmp_path / f"out_{name}.png"
        before = set(tmp_path.rglob("*"))
        res = runner.run(["colorize", str(src), "-o", str(dst), "--model", str(corpus["tiny.onnx"])])
        ok = True
        if want == "accept" and dst.is_file() and name in ("16bit.png", "alpha.png"):
            ok = np.abs(read_rgb(dst).astype(int) - read_rgb(ref).astype(int)).max() <= 2
        failures.append(_judge("images", res, want, _new_files(tmp_path, before) if want == "error" else [], ok))
        # dataset info on a game folder holding it: unreadable files are listed, never fatal
        game = tmp_path / f"set_{name}" / "g"
        game.mkdir(parents=True)
        (game / "a.png").write_bytes(corpus["plain.png"].read_bytes())
        (game / f"b{Path(name).suffix}").write_bytes(src.read_bytes())
        res = runner.run(["dataset", "info", str(game.parent), "--sample", "0", "--json"])
        if res.is_clean_success():
            listed = f"b{Path(name).suffix}" in res.out
            good = listed == (want == "error")
            bad_input("images", ("clear" if listed else "accepted") if good else "crash",
                      "" if good else f"dataset info: {name} listed={listed}")
            if not good:
                failures.append(f"dataset info {name}: unreadable listed={listed}")
        else:
            failures.append(_judge("images", res, "error", []))
    # evaluate reads frames through the same loader: the bombs and corrupt frames are skipped, not fatal
    for name in ("bomb.png", "bomb.tif", "corrupt.png"):
        data = tmp_path / f"eval_{name}" / "g"
        data.mkdir(parents=True)
        for i in range(3):
            (data / f"f{i}.png").write_bytes(corpus["plain.png"].read_bytes())
        (data / f"zz{Path(name).suffix}").write_bytes(corpus[name].read_bytes())
        res = runner.run(["evaluate", str(corpus["tiny.onnx"]), "--data", str(data.parent)])
        good = res.is_clean_success() or res.is_clear_error()
        bad_input("images", "clear" if good else "crash", "" if good else res.describe())
        if not good:
            failures.append(res.describe())
    failures = [f for f in failures if f]
    assert not failures, failures


def test_every_image_read_goes_through_read_rgb() -> None:
    """The decompression-bomb guard lives in utils.images.read_rgb: no other code may decode images
    (or unpickle anything) by itself."""
    pattern = re.compile(r"cv2\.imread\(|cv2\.imdecode\(|Image\.open\(|torch\.load\(|pickle\.loads?\(|"
                         r"allow_pickle\s*=\s*True|np\.load\([^)]*\)(?!.*allow_pickle)")
    offenders = []
    # The project's own code only (not virtualenvs or build folders, whatever their names).
    sources = [ROOT / "retrocolor.py"] + [p for pkg in ("capture", "dataset", "models", "realtime", "weights",
                                                       "utils", "scripts") for p in (ROOT / pkg).rglob("*.py")]
    assert len(sources) > 20, "the scan must see the project's modules"
    for p in sorted(sources):
        rel = p.relative_to(ROOT)
        if str(rel) == "utils/images.py":
            continue
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line) and "allow_pickle=False" not in line:
                offenders.append(f"{rel}:{i}: {line.strip()}")
    assert not offenders, offenders


# --------------------------------------------------------------------------- models
def test_hostile_model_files_never_run_code(runner: CliRunner, corpus: dict[str, Path], tmp_path: Path) -> None:
    import torch

    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil"
    evil.mkdir()
    torch.save({"state_dict": _Evil(marker)}, evil / "model.pt")
    for suffix in (".pth", ".ckpt", ".pkl", ".bin"):
        (evil / f"model{suffix}").write_bytes(pickle.dumps(_Evil(marker)))
    (evil / "fake.safetensors").write_bytes(pickle.dumps(_Evil(marker)))
    (evil / "fake.json").write_text(json.dumps({"arch": "v0", "arch_kwargs": {}}))
    (evil / "torchzip.safetensors").write_bytes((evil / "model.pt").read_bytes())
    (evil / "torchzip.json").write_text(json.dumps({"arch": "v0", "arch_kwargs": {}}))
    (evil / "model.onnx").write_bytes(pickle.dumps(_Evil(marker)))

    # positive control: these files really are hostile
    ctl = subprocess.run([sys.executable, "-c", "import pickle,sys; pickle.load(open(sys.argv[1],'rb'))",
                          str(evil / "model.ckpt")], capture_output=True, text=True, check=False)
    assert marker.exists(), f"the hostile pickle did not work as a control: {ctl.stderr}"
    marker.unlink()

    data = corpus["games"]
    run = tmp_path / "run"
    run.mkdir()
    (run / "state.safetensors").write_bytes(pickle.dumps(_Evil(marker)))
    (run / "state.json").write_text("{}")
    cases: list[list[str]] = []
    for f in ("model.pt", "model.pth", "model.ckpt", "model.pkl", "model.bin", "fake.safetensors",
              "torchzip.safetensors", "model.onnx"):
        cases.append(["evaluate", str(evil / f), "--data", str(data)])
        if f.endswith((".pt", ".safetensors", ".ckpt")):
            cases.append(["export", str(evil / f), "-o", str(tmp_path / "x" / f"{f}.onnx")])
        if f.endswith((".pt", ".onnx", ".pkl")):
            cases.append(["colorize", str(corpus["plain.png"]), "-o", str(tmp_path / "x" / f"{f}.png"),
                          "--model", str(evil / f)])
    cases.append(["train", "--arch", "v0", "--data", str(data), "--out", str(run), "--resume", "--epochs", "1",
                  "--cache-dir", "none", "--device", "cpu"])
    failures = []
    for argv in cases:
        res = runner.run(argv)
        left = list((tmp_path / "x").glob("*")) if (tmp_path / "x").exists() else []
        failures.append(_judge("models", res, "error", left))
    # the engine and the loaders, in this process
    from models.checkpoint import load_model
    from models.train import load_state
    from realtime.engine import Colorizer

    for f, fn in [("model.pt", Colorizer), ("model.onnx", Colorizer), ("fake.safetensors", load_model),
                  ("torchzip.safetensors", load_model), ("model.ckpt", load_model)]:
        try:
            fn(str(evil / f))
            bad_input("models", "crash", f"{fn.__name__}({f}) accepted a pickle")
        except UserError:
            bad_input("models", "clear")
    try:
        load_state(run)
        bad_input("models", "crash", "load_state accepted a pickle")
    except UserError:
        bad_input("models", "clear")
    code_executed("models", int(marker.exists()))
    assert not marker.exists(), "a hostile pickle ran code"
    failures = [f for f in failures if f]
    assert not failures, failures


def test_broken_models_are_clear_errors(runner: CliRunner, corpus: dict[str, Path], tmp_path: Path) -> None:
    failures = []
    img, data = corpus["plain.png"], corpus["games"]
    for name in ("wrong_channels.onnx", "wrong_outputs.onnx", "two_inputs.onnx", "int_input.onnx", "truncated.onnx"):
        m = corpus[name]
        dst = tmp_path / f"{name}.png"
        failures.append(_judge("models", runner.run(["colorize", str(img), "-o", str(dst), "--model", str(m)]),
                               "error", [dst] if dst.exists() else []))
        failures.append(_judge("models", runner.run(["evaluate", str(m), "--data", str(data)]), "error", []))
        failures.append(_judge("models", runner.run(["bench", "--model", str(m), "--frames", "3"]), "error", []))
    for argv in (["evaluate", str(corpus["trunc.safetensors"]), "--data", str(data)],
                 ["export", str(corpus["trunc.safetensors"]), "-o", str(tmp_path / "t.onnx")]):
        failures.append(_judge("models", runner.run(argv), "error", list(tmp_path.glob("t.*"))))
    failures = [f for f in failures if f]
    assert not failures, failures


def test_model_card_and_model_name_path_traversal(runner: CliRunner, corpus: dict[str, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import weights

    wdir = tmp_path / "weights"
    wdir.mkdir()
    tiny_onnx(wdir / "good.onnx")
    (wdir / "good.json").write_text(json.dumps({"name": "../../etc/passwd", "description": "hostile card",
                                                "weights": ["../../etc/passwd", "/etc/shadow"],
                                                "onnx": "../../../tmp/evil.onnx"}))
    monkeypatch.setattr(weights, "WEIGHTS_DIR", wdir)
    rows = weights.list_models()
    ok = [r["name"] for r in rows] == ["good"] and all(Path(r["path"]).parent == wdir for r in rows)
    bad_input("models", "clear" if ok else "crash", f"list_models: {rows}")
    assert ok, rows
    # A name is looked up in the weights folder only; a name that is not an existing file (an
    # existing path is the user's own file, by design) must never resolve outside that folder.
    for name in ("../../nonexistent/passwd", "..", "../good", ".good", "good/../../x", "~/x", "C:evil",
                 "../weights/../../good", "good\\..\\..\\x"):
        try:
            p = weights.resolve(name)
            inside = p.resolve().parent == wdir.resolve()
            bad_input("models", "accepted" if inside else "crash", f"resolve({name!r}) -> {p}")
            assert inside, (name, p)
        except UserError:
            bad_input("models", "clear")
    failures = []
    for name in ("../../nonexistent/passwd", "../weights/good", "/etc/passwd"):
        dst = tmp_path / "o.png"
        failures.append(_judge("models", runner.run(["colorize", str(corpus["plain.png"]), "-o", str(dst),
                                                     "--model", name]), "error", [dst] if dst.exists() else []))
    failures = [f for f in failures if f]
    assert not failures, failures


# --------------------------------------------------------------------------- paths and URLs
def test_odd_paths_work_and_urls_never_reach_a_shell(runner: CliRunner, corpus: dict[str, Path],
                                                     tmp_path: Path) -> None:
    failures = []
    work = tmp_path / "wörk dir ☃"
    work.mkdir()
    names = ["my clip ünïcödé ☃.mp4", "-leading-dash.mp4", "$(touch PWNED1);`touch PWNED2`;|&.mp4",
             "spa ce's \"q\".mp4"]
    for name in names:
        (work / name).write_bytes(corpus["good.mp4"].read_bytes())
        out = f"out {name}.d"
        # extract: `--` ends the options, so a leading dash is a file name
        res = runner.run(["extract", "--every-seconds", "0.5", f"--output={out}", "--", name], cwd=work)
        failures.append(_judge("paths", res, "accept", [], len(list((work / out / "frames").glob("*.png"))) > 0))
        stem = name[:-4]
        if name.startswith(("-", "$")):  # colorize hands paths to ffmpeg: the risky names
            res = runner.run(["colorize", f"--output={stem}.colour.mp4", f"--model={corpus['tiny.onnx']}", "--", name],
                             cwd=work)
            failures.append(_judge("paths", res, "accept", [], (work / f"{stem}.colour.mp4").is_file()))
        res = runner.run(["download", "--output=dl", "--", name], cwd=work)
        copied = (work / "dl" / name).is_file() and (work / "dl" / name).read_bytes() == (work / name).read_bytes()
        failures.append(_judge("paths", res, "accept", [], copied))
    # without `--` a leading dash is an option: argparse's usage error, nothing written
    res = runner.run(["extract", "-leading-dash.mp4", "-o", "x"], cwd=work)
    usage = res.rc == 2 and res.err.strip().splitlines()[-1].startswith("retrocolor extract: error:") \
        and "Traceback" not in res.err and not (work / "x").exists()
    bad_input("paths", "clear" if usage else "crash", res.describe())
    failures.append("" if usage else res.describe())
    # URLs with shell metacharacters: refused or failed cleanly, nothing executed
    urls = ["http://127.0.0.1:9/v.mp4;touch PWNED3;", "http://127.0.0.1:9/$(touch PWNED4)",
            "http://127.0.0.1:9/`touch PWNED5`", "file:///nonexistent/$(touch PWNED6).mp4",
            "https://example.invalid/x.mp4 && touch PWNED7", "x.mp4; touch PWNED8", "|touch PWNED9"]
    for url in urls:
        res = run_cli(["download", url, "-o", "dl2"], cwd=work, timeout=60)
        failures.append(_judge("urls", res, "error", list((work / "dl2").glob("*")) if (work / "dl2").exists() else []))
    pwned = sorted(p.name for p in [*work.rglob("PWNED*"), *ROOT.glob("PWNED*"), *tmp_path.glob("PWNED*")])
    code_executed("urls", len(pwned))
    assert not pwned, pwned
    failures = [f for f in failures if f]
    assert not failures, failures


def test_header_size_reads_real_tiff_and_webp(tmp_path: Path) -> None:
    """The bomb guard needs the true size from TIFF and WebP headers too (both byte orders, lossy,
    lossless and extended WebP), and libpng's own error lines must not reach stderr."""
    from PIL import Image

    from utils.images import header_size

    rgb = make_game_frames(1, seed=4, w=96, h=72)[0]
    cv2.imwrite(str(tmp_path / "a.tif"), rgb)
    Image.fromarray(rgb).save(tmp_path / "b.tif", tiffinfo={}, compression="tiff_deflate")
    im = Image.fromarray(rgb)
    im.save(tmp_path / "c_be.tif")  # PIL writes little-endian; make a big-endian one by hand below
    cv2.imwrite(str(tmp_path / "d.webp"), rgb, [cv2.IMWRITE_WEBP_QUALITY, 80])
    cv2.imwrite(str(tmp_path / "e.webp"), rgb, [cv2.IMWRITE_WEBP_QUALITY, 101])  # lossless
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])).save(tmp_path / "f.webp")  # VP8X
    be = b"MM\0*" + struct.pack(">I", 8) + struct.pack(">H", 2) + struct.pack(">HHIHH", 256, 3, 1, 96, 0) + \
        struct.pack(">HHII", 257, 4, 1, 72) + b"\0\0\0\0"
    (tmp_path / "g.tif").write_bytes(be)
    for name in ("a.tif", "b.tif", "c_be.tif", "d.webp", "e.webp", "f.webp", "g.tif"):
        assert header_size(tmp_path / name) == (96, 72), name
        if name != "g.tif":
            assert read_rgb(tmp_path / name).shape == (72, 96, 3), name


def test_corrupt_png_error_is_one_line(tmp_path: Path) -> None:
    """libpng prints "libpng error: ..." itself; read_rgb keeps it off stderr (one line from us)."""
    write_png(tmp_path / "ok.png", make_game_frames(1, seed=1)[0])
    raw = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(raw[: len(raw) // 2])
    res = run_cli(["colorize", str(tmp_path / "cut.png"), "-o", str(tmp_path / "o.png"), "--model", "x.onnx"],
                  cwd=tmp_path)
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from utils.images import read_rgb\n"
              "try:\n    read_rgb(sys.argv[2])\nexcept Exception as e:\n    print(type(e).__name__)")
    p = subprocess.run([sys.executable, "-c", script, str(ROOT), str(tmp_path / "cut.png")], capture_output=True,
                       text=True, check=False)
    assert p.stdout.strip() == "UserError" and p.stderr == "", p.stderr
    assert res.rc == 2 and len(res.err.strip().splitlines()) == 1, res.err
