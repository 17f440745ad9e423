"""Offline colorizing (realtime.offline / `retrocolor colorize`): images, folders, videos with audio."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import GREEN, dmg_frame, tiny_onnx

from dataset import color
from realtime import offline
from realtime.engine import Colorizer
from utils.errors import UserError
from utils.images import read_rgb, write_png


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_onnx(tmp_path_factory.mktemp("m") / "tiny.onnx")


def _chroma(rgb: np.ndarray) -> float:
    return float(np.abs(color.rgb_to_lab(rgb)[..., 1:]).mean())


def test_image(model: Path, tmp_path: Path) -> None:
    frame = cv2.resize(dmg_frame(0, GREEN), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    write_png(tmp_path / "in.png", frame)
    rep = offline.colorize_path(tmp_path / "in.png", tmp_path / "out.png", model=model, log=None)
    out = read_rgb(tmp_path / "out.png")
    assert out.shape == frame.shape and rep["kind"] == "image"
    assert np.array_equal(out, Colorizer(model).colorize(frame))
    # Side by side: input | colour.
    offline.colorize_path(tmp_path / "in.png", tmp_path / "sbs.png", model=model, side_by_side=True, log=None)
    sbs = read_rgb(tmp_path / "sbs.png")
    assert sbs.shape == (288, 640, 3) and np.array_equal(sbs[:, :320], frame) and np.array_equal(sbs[:, 320:], out)


def test_screen_inside_a_canvas_is_found_and_pasted_back(model: Path, tmp_path: Path) -> None:
    canvas = np.zeros((360, 640, 3), np.uint8)
    screen = cv2.resize(dmg_frame(1, GREEN), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    canvas[36:324, 160:480] = screen
    write_png(tmp_path / "canvas.png", canvas)
    rep = offline.colorize_path(tmp_path / "canvas.png", tmp_path / "o.png", model=model, log=None)
    out = read_rgb(tmp_path / "o.png")
    assert rep["screen"] == [160, 36, 320, 288]
    assert np.array_equal(out[36:324, 160:480], Colorizer(model).colorize(screen))
    assert (out[:36] == 0).all() and (out[:, :160] == 0).all()


def test_folder(model: Path, tmp_path: Path) -> None:
    src = tmp_path / "frames"
    src.mkdir()
    for i in range(3):
        write_png(src / f"f{i}.png", np.repeat(dmg_frame(i)[:, :, None], 3, axis=2))
    (src / "notes.txt").write_text("not an image")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    rep = offline.colorize_path(src, tmp_path / "out", model=model, log=None)
    assert rep["images"] == 3 and len(rep["skipped"]) == 1
    outs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert outs == ["f0.png", "f1.png", "f2.png"]
    assert _chroma(read_rgb(tmp_path / "out" / "f0.png")) > 5


def _make_video(path: Path, frames: list[np.ndarray], fps: int = 30, audio: bool = True) -> None:
    ffmpeg = offline.find_ffmpeg()
    if ffmpeg is None:
        pytest.skip("needs an ffmpeg binary")
    h, w = frames[0].shape[:2]
    argv = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s", f"{w}x{h}", "-r", str(fps), "-i", "-"]
    if audio:
        argv += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={len(frames) / fps}", "-c:a", "aac"]
    argv += ["-c:v", "libx264", "-pix_fmt", "yuv444p", "-qp", "0", "-shortest", str(path)]
    subprocess.run(argv, input=b"".join(np.ascontiguousarray(f).tobytes() for f in frames), check=True)


def _read_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return out


def test_video_with_audio_keeps_audio(model: Path, tmp_path: Path) -> None:
    frames = []
    for i in range(12):
        canvas = np.zeros((320, 400, 3), np.uint8)
        canvas[16:304, 40:360] = cv2.resize(dmg_frame(i % 3, GREEN), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
        frames.append(canvas)
    src = tmp_path / "clip.mp4"
    _make_video(src, frames)
    ffmpeg = offline.find_ffmpeg()
    assert ffmpeg is not None and offline.has_audio(ffmpeg, src)
    dst = tmp_path / "out" / "colour.mp4"
    rep = offline.colorize_path(src, dst, model=model, smoothing=0.3, log=None)
    assert rep["frames"] == 12 and rep["screen"] == [40, 16, 320, 288]
    assert rep["audio"].startswith("audio")
    assert offline.has_audio(ffmpeg, dst)
    got = _read_video(dst)
    assert len(got) == 12 and got[0].shape == (320, 400, 3)
    assert _chroma(got[0][16:304, 40:360]) > 5  # the screen got colour ...
    assert got[0][:10].max() < 40  # ... the black border stayed black
    assert [p.name for p in dst.parent.iterdir()] == ["colour.mp4"]  # no temp files left


def test_video_without_ffmpeg_is_written_without_audio(model: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    frames = [cv2.resize(dmg_frame(i), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST) for i in range(5)]
    src = tmp_path / "clip.mp4"
    _make_video(src, [np.repeat(f[:, :, None], 3, axis=2) for f in frames], audio=True)
    monkeypatch.setattr(offline, "find_ffmpeg", lambda: None)
    messages: list[str] = []
    rep = offline.colorize_path(src, tmp_path / "o.mp4", model=model, side_by_side=True, log=messages.append)
    assert "no ffmpeg" in rep["audio"] and "no ffmpeg" in messages[0]
    got = _read_video(tmp_path / "o.mp4")
    assert len(got) == 5 and got[0].shape == (288, 640, 3)


def test_bad_inputs(model: Path, tmp_path: Path) -> None:
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(UserError, match="not an image or a video"):
        offline.colorize_path(txt, tmp_path / "o.png", model=model, log=None)
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"\x00" * 1000)
    with pytest.raises(UserError, match="not a readable video"):
        offline.colorize_path(fake, tmp_path / "o.mp4", model=model, log=None)
    with pytest.raises(UserError, match="input not found"):
        offline.colorize_path(tmp_path / "missing.png", tmp_path / "o.png", model=model, log=None)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no images"):
        offline.colorize_path(empty, tmp_path / "o", model=model, log=None)
    wide = tmp_path / "wide.png"
    write_png(wide, np.full((100, 400, 3), 128, np.uint8))
    with pytest.raises(UserError, match="no Game Boy screen"):
        offline.colorize_path(wide, tmp_path / "o.png", model=model, log=None)
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "o.mp4").exists()


def test_cli_colorize(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import retrocolor

    write_png(tmp_path / "in.png", dmg_frame(2))
    assert retrocolor.main(["colorize", str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"),
                            "--model", str(model)]) == 0
    assert "in.png ->" in capsys.readouterr().out and (tmp_path / "o.png").is_file()
    assert retrocolor.main(["colorize", str(tmp_path / "in.png"), "-o", str(tmp_path / "p.png"),
                            "--model", "no-such-model"]) == 2
    assert "unknown model" in capsys.readouterr().err


@pytest.mark.shared
def test_longplay_first_seconds_keep_the_layout(model: Path, tmp_path: Path) -> None:
    """The first 5 s of a real YouTube-style longplay: the screen is detected where the clip's JSON
    says it is, only that rectangle changes, and the black canvas around it stays black."""
    import json

    from helpers import shared_path

    src = shared_path("longplays", "europa-rescue.mp4")
    meta = json.loads(shared_path("longplays", "europa-rescue.json").read_text())
    dst = tmp_path / "colour.mp4"
    rep = offline.colorize_path(src, dst, model=model, max_seconds=5.0, log=None)
    assert rep["screen"] == meta["screen_rect"] and rep["screen_found_by"].startswith("detected"), rep
    assert rep["frames"] == round(5.0 * meta["fps"])
    got, src_frames = _read_video(dst), _read_video(src)[:rep["frames"]]
    assert len(got) == rep["frames"] and got[0].shape == src_frames[0].shape
    x, y, w, h = meta["screen_rect"]
    inside = np.zeros(got[0].shape[:2], bool)
    inside[y:y + h, x:x + w] = True
    lead = int(meta["lead_in_black_s"] * meta["fps"])
    diff_in, diff_out, border = [], [], []
    for a, b in zip(got[lead + 5::10], src_frames[lead + 5::10], strict=True):
        d = np.abs(a.astype(np.int16) - b).max(axis=2)
        diff_in.append(float(d[inside].mean()))
        diff_out.append(float(d[~inside].mean()))
        border.append(int(a[~inside].max()))
        # the change starts exactly at the rectangle's edges (2 px in vs 2 px out, both sides)
        cols = d[y + 8:y + h - 8].mean(axis=0)
        assert cols[x:x + 2].mean() > 4 * max(cols[x - 3:x - 1].mean(), 1.0)
        assert cols[x + w - 2:x + w].mean() > 4 * max(cols[x + w + 1:x + w + 3].mean(), 1.0)
    assert min(diff_in) > 10, diff_in  # the game screen was recoloured ...
    assert max(diff_out) < 1.5 and max(border) < 40, (diff_out, border)  # ... the black canvas stayed black


def test_image_output_needs_an_image_suffix_and_a_small_image_says_why(model: Path, tmp_path: Path) -> None:
    src = tmp_path / "frame.png"
    write_png(src, dmg_frame())
    with pytest.raises(UserError, match="image output must end in one of"):
        offline.colorize_path(src, tmp_path / "out.xyz", model=model, log=None)
    assert not (tmp_path / "out.xyz").exists()
    small = tmp_path / "small.png"
    write_png(small, np.random.default_rng(0).integers(0, 255, (50, 100, 3)).astype(np.uint8))
    with pytest.raises(UserError, match="no Game Boy screen found in the 100x50") as e:
        offline.colorize_path(small, tmp_path / "o.png", model=model, log=None)
    assert "at least 2 frames" not in str(e.value) and "one image has no motion" in str(e.value)
