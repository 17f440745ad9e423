"""End to end on the real longplay clips: loopback HTTP download -> extract -> frame-by-frame truth check.

``../shared/longplays/GAME.mp4`` are YouTube-style uploads (H.264, 4:2:0, black canvas) with the
true native frame of every 15th video frame beside them.  Extracting every 0.5 s at 30 fps samples
exactly those frames, so each kept frame is compared with its own truth.  The PSNR thresholds are
set between what the aligned grid reaches and what a grid off by a fraction of a native pixel (or
one with the wrong scale) gives, and the misaligned extractions are run too, to prove the
thresholds can fail.  Only the first 20 s of each clip are used, to keep the test fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import RangeServer, range_server, shared_path

from capture.download import download
from dataset.extract import extract
from dataset.manifest import load_manifest
from utils.images import read_rgb

END_S = 20.0
#: (clip, upscaler extraction must find, aligned mean PSNR must exceed, every frame must exceed).
#: Measured on the first 20 s, all sampled frames (no dedupe): aevilia (2x, nearest) 40.3 dB mean
#: (min 31.6); europa-rescue (2.5x, bilinear upscale, 4:2:0 chroma smeared across cells), with
#: the bilinear upscale inverted, 29.9 dB (min 27.4; cell averages gave 26.7, min 23.8).  Off
#: by ~half a native pixel (1 source pixel): 23.9 / 24.1 dB; one native pixel too narrow:
#: 18.9 / 20.8 dB.  The thresholds sit ~4 dB below aligned and >= 3.4 dB above misaligned.
CLIPS = [("aevilia", "nearest", 36.0, 28.0), ("europa-rescue", "bilinear", 27.5, 25.5)]


@pytest.fixture(scope="module")
def http_base() -> Iterator[tuple[RangeServer, str]]:
    with range_server() as srv:
        yield srv, srv.url


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def truth_frames(game: str) -> dict[int, Path]:
    """Video frame index -> true native frame (``vNNNNNN_tT.png``)."""
    folder = shared_path("longplays", f"{game}_truth")
    return {int(p.name[1:7]): p for p in folder.glob("v*.png")}


def frame_psnrs(out: Path, truth: dict[int, Path], fps: float) -> list[float]:
    """PSNR of every kept frame against the true frame nearest in time."""
    keys = np.array(sorted(truth))
    vals = []
    for r in load_manifest(out / "manifest.jsonl").records:
        nearest = int(keys[np.argmin(np.abs(keys / fps - r["timestamp"]))])
        assert abs(nearest - r["frame_index"]) == 0, "every 0.5 s at 30 fps must hit the truth frames exactly"
        vals.append(psnr(read_rgb(out / r["file"]), read_rgb(truth[nearest])))
    return vals


@pytest.mark.shared
@pytest.mark.parametrize("game,kernel,min_mean,min_frame", CLIPS)
def test_download_extract_matches_truth(game: str, kernel: str, min_mean: float, min_frame: float,
                                        http_base: tuple[RangeServer, str], tmp_path: Path) -> None:
    src = shared_path("longplays", f"{game}.mp4")
    meta = json.loads(shared_path("longplays", f"{game}.json").read_text())
    srv, base = http_base
    srv.files[f"/{game}.mp4"] = (src.read_bytes(), "video/mp4")
    paths = download(f"{base}/{game}.mp4", tmp_path / "dl")
    assert len(paths) == 1 and paths[0].read_bytes() == src.read_bytes()

    out = tmp_path / "ds"
    rep = extract(paths[0], out, every_seconds=0.5, end=END_S)
    print(rep.summary())
    # The detected screen is the true one, to within a source pixel.
    for got, want in zip(rep.rect.as_list(), meta["screen_rect"], strict=True):
        assert abs(got - want) <= 1.0, (rep.rect, meta["screen_rect"])
    assert rep.dropped["blank"] >= 4  # the 2 s black lead-in
    # The upscaler was told apart, and recorded so that a resumed run samples identically.
    assert rep.rect.kernel == kernel
    assert json.loads((out / "extract.json").read_text())["screen"]["kernel"] == kernel
    truth = truth_frames(game)
    vals = frame_psnrs(out, truth, meta["fps"])
    assert len(vals) >= 5
    print(f"{game}: {len(vals)} frames, PSNR mean {np.mean(vals):.2f} dB, min {np.min(vals):.2f} dB")
    assert np.mean(vals) > min_mean and np.min(vals) > min_frame

    # Misaligned grids must fail the same thresholds: shifted by about half a native pixel, and a
    # scale off by one native pixel over the width/height.
    x, y, w, h = (int(round(v)) for v in meta["screen_rect"])
    d = int(round(w / 160))
    runs = {"aligned (detected)": None,
            "half-pixel shift": (x + max(1, int(round(w / 320))), y, w, h),
            "scale -1 native px": (x, y, w - d, h - d)}
    # All sampled frames (no dedupe) for each grid, so the figures compare the same frames.
    for i, (label, crop) in enumerate(runs.items()):
        run_out = tmp_path / f"run{i}"
        extract(paths[0], run_out, every_seconds=0.5, end=END_S, crop=crop, dedupe_distance=-1)
        rvals = frame_psnrs(run_out, truth, meta["fps"])
        print(f"{game} {label} crop {crop}: {len(rvals)} frames, PSNR mean {np.mean(rvals):.2f} dB, "
              f"min {np.min(rvals):.2f} dB")
        if crop is None:
            assert np.mean(rvals) > min_mean and np.min(rvals) > min_frame
        else:
            assert np.mean(rvals) < min_mean, label
