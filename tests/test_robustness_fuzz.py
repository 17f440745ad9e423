"""Robustness, fuzzing (hypothesis, bounded): the game-screen detector and the manifest reader.

* ``capture.screen.detect_screen`` on random frames (sizes from 1x1 up, grey/RGB/RGBA, noise,
  flat, boxes, tiles) must return a :class:`ScreenRect` inside the frame or raise
  :class:`UserError` -- never anything else.
* ``dataset.manifest.load_manifest`` on random bytes, random JSON and mutated real records must
  return records or raise :class:`UserError`, and never return a record whose ``file`` points
  outside ``DATASET/frames/`` (a re-run of ``extract`` reads those files back).

Every example is counted in the robustness tally.  ``max_examples`` keeps each test to a few
seconds on a 2-core runner; ``derandomize`` makes failures reproducible.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from robustness import bad_input, run_cli

from capture.screen import NativeSampler, ScreenRect, detect_screen
from dataset.manifest import load_manifest, make_record, repair_manifest
from utils.errors import UserError

pytestmark = pytest.mark.robustness

FUZZ = settings(max_examples=int(os.environ.get("RETROCOLOR_FUZZ_EXAMPLES", "120")), deadline=None,
                derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                database=None)


# --------------------------------------------------------------------------- detect_screen
@st.composite
def frame_lists(draw: st.DrawFn) -> list[np.ndarray]:
    """2-5 frames of one size, as a capture or a video decoder gives them (uint8 grey/RGB/RGBA)."""
    h = draw(st.integers(1, 200))
    w = draw(st.integers(1, 240))
    ch = draw(st.sampled_from([None, 3, 4]))
    n = draw(st.integers(2, 5))
    kind = draw(st.sampled_from(["noise", "flat", "box", "tiles", "moving"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    shape = (h, w) if ch is None else (h, w, ch)
    frames = []
    for i in range(n):
        if kind == "noise":
            f = rng.integers(0, 256, shape, dtype=np.uint8)
        elif kind == "flat":
            f = np.full(shape, int(rng.integers(0, 256)), np.uint8)
        elif kind == "tiles":  # a native-looking grid upscaled by a random integer factor
            k = int(rng.integers(1, 5))
            small = rng.integers(0, 4, ((h + k - 1) // k, (w + k - 1) // k), dtype=np.uint8) * 85
            f = np.repeat(np.repeat(small, k, 0), k, 1)[:h, :w]
            f = f if ch is None else np.repeat(f[:, :, None], ch, 2)
        else:  # a changing rectangle inside a static frame, like a game screen in a canvas
            f = np.zeros(shape, np.uint8)
            y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
            y1, x1 = int(rng.integers(y0, h)) + 1, int(rng.integers(x0, w)) + 1
            f[y0:y1, x0:x1] = rng.integers(0, 256, f[y0:y1, x0:x1].shape, dtype=np.uint8) if kind == "moving" else \
                (i * 60) % 256
        frames.append(np.ascontiguousarray(f))
    return frames


@FUZZ
@given(frames=frame_lists())
def test_fuzz_detect_screen(frames: list[np.ndarray]) -> None:
    h, w = frames[0].shape[:2]
    try:
        rect = detect_screen(frames)
    except UserError as e:
        assert str(e) and "\n" not in str(e)
        bad_input("fuzz detect_screen", "clear")
        return
    except Exception as e:
        bad_input("fuzz detect_screen", "crash", f"{frames[0].shape} x{len(frames)}: {type(e).__name__}: {e}")
        raise
    # What extract does next with it: a finite rectangle centred in the frame that the native
    # sampler turns into 160x144 frames (a sub-pixel overhang at the edge is clipped there).
    ok = isinstance(rect, ScreenRect) and all(np.isfinite(v) for v in rect.as_list()) and rect.w > 0 and \
        rect.h > 0 and 0 <= rect.x + rect.w / 2 <= w and 0 <= rect.y + rect.h / 2 <= h
    if ok:
        native = NativeSampler(rect, (h, w), (160, 144))(frames[0] if frames[0].ndim == 3 else
                                                         np.repeat(frames[0][:, :, None], 3, 2))
        ok = native.shape[:2] == (144, 160) and native.dtype == np.uint8
    bad_input("fuzz detect_screen", "accepted" if ok else "crash", f"{frames[0].shape}: {rect}")
    assert ok, (frames[0].shape, rect)


ODD_ARRAYS = [
    ("empty frames", [np.zeros((0, 5, 3), np.uint8)] * 2),
    ("bool", [np.zeros((50, 50, 3), bool), np.ones((50, 50, 3), bool)]),
    ("int64", [np.zeros((60, 60, 3), np.int64), np.full((60, 60, 3), 300, np.int64)]),
    ("5 channels", [np.zeros((50, 50, 5), np.uint8), np.full((50, 50, 5), 9, np.uint8)]),
    ("4-d", [np.zeros((2, 50, 50, 3), np.uint8)] * 2),
    ("1-d", [np.zeros(30, np.uint8)] * 2),
    ("mixed sizes", [np.zeros((50, 50, 3), np.uint8), np.zeros((60, 50, 3), np.uint8)]),
]


def test_detect_screen_refuses_arrays_no_capture_gives() -> None:
    """Outside the capture contract (uint8 grey/RGB/RGBA of one size): must still be one UserError."""
    escaped = []
    for label, frames in ODD_ARRAYS:
        try:
            detect_screen(frames)
            bad_input("fuzz detect_screen (odd arrays)", "accepted")
        except UserError:
            bad_input("fuzz detect_screen (odd arrays)", "clear")
        except Exception as e:  # noqa: BLE001 - the finding
            bad_input("fuzz detect_screen (odd arrays)", "crash", f"{label}: {type(e).__name__}")
            escaped.append(f"{label}: {type(e).__name__}: {' '.join(str(e).split())[:80]}")
    assert not escaped, escaped


# --------------------------------------------------------------------------- manifest
GOOD = make_record(file="frames/0000015.png", source="clip.mp4", frame_index=15, timestamp=0.5,
                   phash="00ff00ff00ff00ff", crop=[80.0, 36.0, 320.0, 288.0])
HOSTILE_FILES = ["../../etc/passwd", "/etc/passwd", "frames/../../x.png", "frames/../extract.json",
                 "frames/.hidden.png", "frames/a/b.png", "frames\\..\\x.png", "frames/x.png\n", "", "frames/",
                 "C:/x.png", "frames/x.png\0.txt", "~/x.png"]

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                         st.text(max_size=30))
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                                           max_size=4), max_leaves=12)


@st.composite
def manifest_bytes(draw: st.DrawFn) -> bytes:
    """Raw bytes, JSON lines with random values, and real records with one field mutated."""
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["good", "mutated", "hostile", "json", "bytes", "deep"]))
        if kind == "good":
            parts.append(json.dumps(GOOD).encode())
        elif kind == "mutated":
            rec = dict(GOOD)
            rec[draw(st.sampled_from(sorted(rec)))] = draw(json_values)
            parts.append(json.dumps(rec).encode())
        elif kind == "hostile":
            parts.append(json.dumps({**GOOD, "file": draw(st.sampled_from(HOSTILE_FILES))}).encode())
        elif kind == "json":
            parts.append(json.dumps(draw(json_values)).encode())
        elif kind == "deep":
            parts.append(b"[" * draw(st.integers(1000, 100_000)))
        else:
            parts.append(draw(st.binary(max_size=200)))
    tail = draw(st.sampled_from([b"\n", b"", b"\n\n", b"\x00\x00"]))
    return b"\n".join(parts) + tail


@FUZZ
@given(data=manifest_bytes())
def test_fuzz_load_manifest(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    d = tmp_path_factory.mktemp("m", numbered=True)
    path = d / "manifest.jsonl"
    path.write_bytes(data)
    try:
        m = load_manifest(path)
    except UserError as e:
        assert "\n" not in str(e)
        bad_input("fuzz load_manifest", "clear")
        return
    except Exception as e:
        bad_input("fuzz load_manifest", "crash", f"{type(e).__name__}: {e}")
        raise
    frames = (d / "frames").resolve()
    escapes = [r["file"] for r in m.records if not isinstance(r["file"], str)
               or (d / r["file"]).resolve().parent != frames]
    bad_input("fuzz load_manifest", "crash" if escapes else "accepted", f"records point outside: {escapes}")
    assert not escapes, escapes
    assert 0 <= m.good_bytes <= len(data)
    for r in m.records:  # what extract does with every record on resume must not crash
        int(r["frame_index"]), int(r["hash"], 16), float(r["timestamp"]), [float(v) for v in r["crop"]]
    repair_manifest(path)
    assert load_manifest(path).records == m.records and not load_manifest(path).torn


def test_extract_refuses_a_manifest_pointing_outside(tmp_path: Path) -> None:
    """A dataset whose manifest names ../../secret.png: the resuming extract must refuse it, not read
    (or delete) anything outside the dataset."""
    import cv2
    from helpers import make_game_frames

    frames = make_game_frames(30, seed=2)
    video = tmp_path / "v.mp4"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 288))
    for f in frames:
        vw.write(cv2.resize(f, (320, 288), interpolation=cv2.INTER_NEAREST)[:, :, ::-1])
    vw.release()
    out = tmp_path / "ds"
    res = run_cli(["extract", str(video), "-o", str(out), "--every-seconds", "1", "--end", "2"])
    assert res.is_clean_success(), res.describe()
    secret = tmp_path / "secret.png"
    secret.write_bytes((next((out / "frames").iterdir())).read_bytes())
    lines = (out / "manifest.jsonl").read_text().splitlines()
    rec = json.loads(lines[-1])
    rec["file"], rec["frame_index"] = "frames/../../secret.png", rec["frame_index"] + 1
    (out / "manifest.jsonl").write_text("\n".join([*lines, json.dumps(rec), json.dumps(GOOD)]) + "\n")
    before = secret.read_bytes()
    res = run_cli(["extract", str(video), "-o", str(out), "--every-seconds", "1", "--end", "2"])
    clear = res.is_clear_error() and "not a valid manifest record" in res.err
    bad_input("fuzz load_manifest", "clear" if clear else "crash", res.describe())
    assert clear, res.describe()
    assert secret.read_bytes() == before
