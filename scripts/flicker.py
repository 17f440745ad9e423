"""Measure colour flicker on static parts of real footage, with and without temporal smoothing.

    python scripts/flicker.py ../shared/longplays/europa-rescue.mp4 --seconds 20

Every video frame (30 fps) is resampled to the native grid (as ``extract`` and ``colorize`` do)
and colorized by the shipped default model through the player's engine, once per smoothing
setting.  Flicker = mean |delta ab| (Lab units) between consecutive outputs over pixels whose
input lightness did not change (``realtime.engine.flicker``): on a static pixel any colour change
is flicker the eye sees.  The built-in demo cartridge (real PyBoy output) is measured too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capture.screen import NativeSampler, detect_screen  # noqa: E402
from capture.video import VideoReader  # noqa: E402
from realtime.engine import Colorizer, flicker  # noqa: E402


def video_frames(path: Path, seconds: float) -> list[np.ndarray]:
    with VideoReader(path) as v:
        rect = detect_screen([f for _, _, f in v.frames(v.sample_indices(2.0, None, None))])
        idx = [i for i in range(v.frame_count) if i / v.fps < seconds]
        sampler = NativeSampler(rect, (v.height, v.width))
        frames = [sampler(f) for _, _, f in v.frames(idx)]
    # Drop the black lead-in: flicker on black says nothing.
    return [f for f in frames if f.mean() > 8]


def demo_frames(n: int) -> list[np.ndarray]:
    import tempfile
    import warnings

    from realtime.demo import write_demo_rom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pyboy import PyBoy
    with tempfile.TemporaryDirectory() as d:
        rom = Path(d) / "demo.gb"
        write_demo_rom(rom)
        pb = PyBoy(str(rom), window="null", sound_emulated=False, cgb=False)
        out = []
        for i in range(n + 80):
            pb.tick()
            if i >= 80:  # after the boot animation
                out.append(np.asarray(pb.screen.ndarray)[:, :, :3].copy())
        pb.stop(save=False)
    return out


def measure(frames: list[np.ndarray], model: str, settings: list[float]) -> dict[float, float]:
    res = {}
    for s in settings:
        col = Colorizer(model, smoothing=s)
        outs = [col.colorize(f) for f in frames]
        res[s] = flicker(frames, outs)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", type=Path)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--model", default="default")
    ap.add_argument("--smoothing", type=float, nargs="+", default=[0.0, 0.5, 0.8])
    a = ap.parse_args()
    for name, frames in ((a.video.name, video_frames(a.video, a.seconds)), ("demo cartridge", demo_frames(600))):
        res = measure(frames, a.model, a.smoothing)
        figures = ", ".join(f"smoothing {s:g}: {v:.3f}" for s, v in res.items())
        print(f"{name} ({len(frames)} frames): flicker (mean |delta ab| on static pixels) {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
