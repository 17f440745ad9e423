"""dataset.extract on small synthetic longplays: junk filtering, manifest, resume after SIGKILL, bad input.

The videos are written here with OpenCV's MPEG-4 encoder (no ../shared needed): a black lead-in,
game frames (helpers.make_game_frames) upscaled 2x into a 480x360 canvas, a static title card
held for 2 s, a white flash.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import ROOT, make_game_frames

from dataset.extract import extract, phash
from dataset.manifest import load_manifest
from utils.errors import UserError

FPS = 30
CANVAS = (480, 360)
RECT = (80, 36, 320, 288)


def write_video(path: Path, natives: list[np.ndarray | None], canvas: tuple[int, int] = CANVAS,
                rect: tuple[int, int, int, int] = RECT) -> None:
    """One video frame per entry: a native frame placed at ``rect`` (None: all black)."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, canvas)
    assert w.isOpened()
    x, y, rw, rh = rect
    for nat in natives:
        frame = np.zeros((canvas[1], canvas[0], 3), np.uint8)
        if nat is not None:
            frame[y:y + rh, x:x + rw] = cv2.resize(nat, (rw, rh), interpolation=cv2.INTER_NEAREST)[:, :, ::-1]
        w.write(frame)
    w.release()


def longplay_natives(seconds: float = 8.0) -> list[np.ndarray | None]:
    """Per video frame: lead-in (1 s black), title card (2 s), white flash (3 frames), gameplay."""
    game = make_game_frames(int(seconds * FPS), seed=1)
    title = make_game_frames(1, seed=99)[0]
    out: list[np.ndarray | None] = [None] * FPS
    out += [title] * (2 * FPS)
    out += [np.full((144, 160, 3), 255, np.uint8)] * 3
    i = 0
    while len(out) < seconds * FPS:
        out.append(game[i])
        i += 1
    return out


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray | None]]:
    d = tmp_path_factory.mktemp("clip")
    natives = longplay_natives()
    p = d / "synthetic.mp4"
    write_video(p, natives)
    return p, natives


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def snapshot(d: Path) -> dict[str, bytes]:
    """Every file under ``d`` (relative path -> bytes), for 'same final dataset' comparisons."""
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def run_cli(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "retrocolor.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, **kw)  # type: ignore[call-overload]


# --------------------------------------------------------------------------- behaviour
def test_extract_keeps_game_frames_and_drops_junk(clip: tuple[Path, list], tmp_path: Path) -> None:
    video, natives = clip
    out = tmp_path / "ds"
    rep = extract(video, out, every_seconds=0.25)
    assert tuple(round(v) for v in rep.rect.as_list()) == RECT
    assert rep.sampled == 32 and rep.kept + sum(rep.dropped.values()) == rep.sampled
    assert rep.dropped["blank"] >= 4  # the 1 s lead-in
    assert rep.dropped["duplicate"] >= 7  # the title card held for 2 s: kept once
    assert "screen 80,36,320,288 (scale 2)" in rep.summary()
    m = load_manifest(out / "manifest.jsonl")
    assert len(m.records) == rep.kept == rep.total_kept and not m.torn
    assert sorted(p.name for p in (out / "frames").iterdir()) == sorted(Path(r["file"]).name for r in m.records)
    title_kept = 0
    for r in m.records:
        assert set(r) == {"file", "source", "frame_index", "timestamp", "hash", "crop"}
        assert r["source"] == "synthetic.mp4" and r["crop"] == [80, 36, 320, 288]
        assert abs(r["timestamp"] - r["frame_index"] / FPS) < 1e-3
        img = cv2.imread(str(out / r["file"]))[:, :, ::-1]
        assert img.shape == (144, 160, 3)
        assert f"{phash(img):016x}" == r["hash"]
        truth = natives[r["frame_index"]]
        assert truth is not None
        assert psnr(img, truth) > 26, r  # MPEG-4 at default quality on per-pixel random tiles
        title_kept += int(FPS <= r["frame_index"] < 3 * FPS)
    assert title_kept == 1
    settings = json.loads((out / "extract.json").read_text())
    assert settings["screen"]["rect"] == [80, 36, 320, 288] and settings["every_seconds"] == 0.25


def test_crop_override_and_range(clip: tuple[Path, list], tmp_path: Path) -> None:
    video, natives = clip
    rep = extract(video, tmp_path / "ds", every_seconds=0.5, start=3.0, end=6.0, crop=RECT, dedupe_distance=-1)
    assert rep.rect_source == "--crop" and rep.sampled == 6
    idx = [r["frame_index"] for r in load_manifest(tmp_path / "ds" / "manifest.jsonl").records]
    assert idx and min(idx) >= 90 and max(idx) < 180


def test_rerun_with_other_settings_is_refused(clip: tuple[Path, list], tmp_path: Path) -> None:
    video, _ = clip
    out = tmp_path / "ds"
    extract(video, out, every_seconds=0.5)
    before = snapshot(out)
    rep = extract(video, out, every_seconds=0.5)  # same settings: nothing left to do
    assert rep.sampled == 0 and rep.already_done == rep.planned and "resumed" in rep.summary()
    with pytest.raises(UserError, match="other settings.*every_seconds"):
        extract(video, out, every_seconds=1.0)
    with pytest.raises(UserError, match="other settings.*crop_arg"):
        extract(video, out, every_seconds=0.5, crop=(0, 0, 320, 288))
    assert snapshot(out) == before


def test_resume_repairs_every_kill_state(clip: tuple[Path, list], tmp_path: Path) -> None:
    """A kill can leave: a torn last line, a PNG without its line, a temp file. All are repaired."""
    video, _ = clip
    ref = tmp_path / "ref"
    extract(video, ref, every_seconds=0.25)
    want = snapshot(ref)
    lines = (ref / "manifest.jsonl").read_bytes().split(b"\n")
    assert len(lines) > 6
    for k in (0, 2, 5):
        out = tmp_path / f"killed{k}"
        (out / "frames").mkdir(parents=True)
        (out / "extract.json").write_bytes(want["extract.json"])
        # k complete lines, then half of line k+1 (torn), whose PNG exists (written before its line).
        torn = b"\n".join(lines[:k]) + (b"\n" if k else b"") + lines[k][: len(lines[k]) // 2]
        (out / "manifest.jsonl").write_bytes(torn)
        for rec in lines[:k + 1]:
            name = json.loads(rec)["file"]
            (out / name).write_bytes(want[name])
        (out / "frames" / ".0009999.png.abc.tmp.png").write_bytes(b"partial")
        extract(video, out, every_seconds=0.25)
        assert snapshot(out) == want, k


def test_sigkill_then_rerun_gives_the_same_dataset(clip: tuple[Path, list], tmp_path: Path) -> None:
    video, _ = clip
    ref, out = tmp_path / "ref", tmp_path / "killed"
    args = ["extract", str(video), "--every-seconds", "0.1"]
    assert run_cli(*args, "-o", str(ref)).returncode == 0
    want = snapshot(ref)
    n_ref = len(load_manifest(ref / "manifest.jsonl").records)
    proc = subprocess.Popen([sys.executable, str(ROOT / "retrocolor.py"), *args, "-o", str(out)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / "manifest.jsonl"
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if manifest.exists() and manifest.read_bytes().count(b"\n") >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait()
    killed_mid_run = proc.returncode == -signal.SIGKILL
    if killed_mid_run:
        done = len(load_manifest(manifest).records)
        print(f"killed after {done} of {n_ref} kept frames")
        assert done < n_ref
    res = run_cli(*args, "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert snapshot(out) == want


# --------------------------------------------------------------------------- bad input
def _assert_one_line_error(res: subprocess.CompletedProcess[str], pattern: str) -> None:
    assert res.returncode != 0
    err = res.stderr.strip()
    assert err.count("\n") == 0 and err.startswith("retrocolor: error:"), err
    assert pattern in err, err


def test_missing_file(tmp_path: Path) -> None:
    res = run_cli("extract", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "ds"))
    _assert_one_line_error(res, "no such video file")
    assert not (tmp_path / "ds").exists()


def test_text_file_named_mp4(tmp_path: Path) -> None:
    p = tmp_path / "notes.mp4"
    p.write_text("this is not a video\n" * 50)
    res = run_cli("extract", str(p), "-o", str(tmp_path / "ds"))
    _assert_one_line_error(res, "not a readable video")
    assert not (tmp_path / "ds").exists()


def test_truncated_video(clip: tuple[Path, list], tmp_path: Path) -> None:
    video, _ = clip
    data = video.read_bytes()
    p = tmp_path / "half.mp4"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated"):
        extract(p, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_zero_length_video(tmp_path: Path) -> None:
    p = tmp_path / "empty.mp4"
    write_video(p, [])
    assert p.stat().st_size > 0
    with pytest.raises(UserError, match="zero-length"):
        extract(p, tmp_path / "ds")
    p0 = tmp_path / "zero.mp4"
    p0.write_bytes(b"")
    with pytest.raises(UserError, match="empty file"):
        extract(p0, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_video_without_a_game_screen(tmp_path: Path) -> None:
    """A 'talking head': smooth moving content over the whole canvas, no 10:9 pixel grid."""
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 256, (200, 260, 3)).astype(np.uint8), (0, 0), 5)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX)
    p = tmp_path / "talk.mp4"
    w = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"mp4v"), FPS, CANVAS)
    for i in range(90):
        w.write(cv2.resize(base[i // 2:i // 2 + 90, i:i + 120], CANVAS, interpolation=cv2.INTER_CUBIC))
    w.release()
    res = run_cli("extract", str(p), "-o", str(tmp_path / "ds"))
    _assert_one_line_error(res, "no game screen found")
    assert not (tmp_path / "ds").exists()


def test_output_is_a_file(clip: tuple[Path, list], tmp_path: Path) -> None:
    video, _ = clip
    f = tmp_path / "taken"
    f.write_text("x")
    res = run_cli("extract", str(video), "-o", str(f))
    _assert_one_line_error(res, "not a directory")
    res = run_cli("extract", str(video), "-o", str(f / "sub"))
    _assert_one_line_error(res, "not a directory")
    assert f.read_text() == "x"


def test_read_only_output(clip: tuple[Path, list], tmp_path: Path) -> None:
    video, _ = clip
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = ro / "ds"
    else:
        # root ignores permission bits; sysfs refuses new entries even to root.
        if not Path("/sys/kernel").is_dir():
            pytest.skip("running as root without /sys: no way to make a read-only directory")
        target = Path("/sys/kernel/retrocolor-test-ds")
    res = run_cli("extract", str(video), "-o", str(target))
    _assert_one_line_error(res, "cannot")
    assert not target.exists()


def test_full_disk_mid_run_leaves_a_consistent_dataset(clip: tuple[Path, list], tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes writes past N bytes fail with EFBIG, like a full disk, even for root."""
    video, _ = clip
    out = tmp_path / "ds"

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))  # extract.json fits, a PNG does not

    res = run_cli("extract", str(video), "-o", str(out), preexec_fn=limit)
    _assert_one_line_error(res, "cannot write")
    assert res.returncode == 3
    m = load_manifest(out / "manifest.jsonl")
    names = {p.name for p in (out / "frames").iterdir()}
    assert names == {Path(r["file"]).name for r in m.records}  # no temp file, no orphan PNG
    # With space back, the same command finishes the dataset.
    res = run_cli("extract", str(video), "-o", str(out))
    assert res.returncode == 0, res.stderr
    ref = tmp_path / "ref"
    assert run_cli("extract", str(video), "-o", str(ref)).returncode == 0
    assert snapshot(out) == snapshot(ref)
