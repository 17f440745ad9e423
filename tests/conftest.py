"""Shared fixtures: where ../shared is, and small synthetic frames for tests that need no data."""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RETROCOLOR_SHARED", ROOT.parent / "shared"))

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def shared_path(*parts: str) -> Path:
    """Path inside ../shared, skipping the calling test if it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs ../shared data ({p} not found)")
    return p


@pytest.fixture
def shared() -> Path:
    """The ../shared folder; tests using it are skipped where it is absent."""
    return shared_path()


@pytest.fixture
def one_torch_thread():
    """torch on one intra-op thread for the test: two OpenMP threads on a shared 2-core runner
    spin against each other (~50x slower)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def make_game_frames(n: int, seed: int = 0, w: int = 160, h: int = 144) -> np.ndarray:
    """Synthetic Game-Boy-like frames: 8x8 tiles from a small palette, sprites that move.

    Colours depend on lightness in a learnable way, so a tiny model can fit them.
    """
    rng = np.random.default_rng(seed)
    palette = np.array([[20, 30, 60], [40, 140, 60], [200, 160, 80], [240, 240, 220]], np.uint8)
    tiles = rng.integers(0, 4, size=(8, 8, 8))
    frames = np.empty((n, h, w, 3), np.uint8)
    tilemap = rng.integers(0, 8, size=(h // 8 + 2, w // 8 + 2))
    for i in range(n):
        sx = i % 8
        idx = np.zeros((h, w), np.int64)
        for ty in range(h // 8):
            for tx in range(w // 8 + 1):
                t = tiles[tilemap[ty, (tx + i // 8) % tilemap.shape[1]]]
                x0 = tx * 8 - sx
                xs = slice(max(x0, 0), min(x0 + 8, w))
                idx[ty * 8:(ty + 1) * 8, xs] = t[:, max(0, -x0):max(0, -x0) + (xs.stop - xs.start)]
        sy, sxp = 40 + (i * 3) % 60, 20 + (i * 5) % 120
        idx[sy:sy + 16, sxp:sxp + 16] = 3
        frames[i] = palette[idx]
    return frames


# --------------------------------------------------------------------------- robustness group (appended)
def pytest_configure(config: pytest.Config) -> None:
    """Register the ``robustness`` marker (tests/test_robustness_*.py: faults, hostile inputs, fuzz)."""
    config.addinivalue_line("markers", "robustness: fault injection, hostile inputs and fuzzing (tests/robustness.py)")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the robustness tally (faults injected / survived / data lost, bad inputs / crashes)."""
    import sys

    mod = sys.modules.get("robustness")
    if mod is None or not mod.TALLY:
        return
    terminalreporter.section("robustness")
    for line in mod.summary_lines():
        terminalreporter.write_line(line)
    if os.environ.get("RETROCOLOR_ROBUSTNESS_JSON"):
        mod.write_json(os.environ["RETROCOLOR_ROBUSTNESS_JSON"])


def tiny_lightness_onnx(path: Path) -> Path:
    """A 1x1 conv (1 -> 2 channels) + tanh, written without torch: a stand-in model whose colours
    depend on lightness, like a real model's output (for the player-side tests)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = np.array([[[[1.2]]], [[[-0.9]]]], np.float32)
    b = np.array([-0.5, 0.45], np.float32)
    g = helper.make_graph(
        [helper.make_node("Conv", ["L", "W", "B"], ["c"], kernel_shape=[1, 1]),
         helper.make_node("Tanh", ["c"], ["ab"])],
        "tiny", [helper.make_tensor_value_info("L", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        [helper.make_tensor_value_info("ab", TensorProto.FLOAT, ["N", 2, "H", "W"])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def twin_of(rgb: np.ndarray) -> np.ndarray:
    """A fake monochrome twin: the frame's luma posterised to the four DMG shades."""
    y = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return (np.clip(np.rint(y / 85.0), 0, 3) * 85).astype(np.uint8)


def write_game(d: Path, n: int, seed: int = 0, twins: int = 0, w: int = 160, h: int = 144) -> np.ndarray:
    """``n`` synthetic frames named in play order in ``d``, the first ``twins`` with a DMG twin."""
    from utils.images import write_png

    frames = make_game_frames(n, seed, w=w, h=h)
    d.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        write_png(d / f"s1_{i:07d}.png", f)
        if i < twins:
            write_png(d / "dmg" / f"s1_{i:07d}.png", twin_of(f))
    return frames


# --------------------------------------------------------------------------- loopback HTTP server
class RangeServer(http.server.ThreadingHTTPServer):
    """A loopback HTTP server for the download tests (yt-dlp cannot reach the internet here).

    ``files`` maps URL paths to ``(bytes, content type)``.  GET/HEAD honour single
    ``bytes=a-b`` ranges (206/416), unknown paths are 404.  ``ranges`` logs each GET's Range
    header; ``sent`` counts body bytes written.  ``chunk``/``delay`` trickle the body (0: one
    write), so a test can kill a client mid-download; with ``cut`` every body stops at half the
    file and the connection drops although the whole body was announced.
    """

    daemon_threads = True

    def __init__(self, files: dict[str, tuple[bytes, str]] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _RangeHandler)
        self.files: dict[str, tuple[bytes, str]] = dict(files or {})
        self.ranges: list[str | None] = []
        self.cut = False
        self.chunk = 0
        self.delay = 0.0
        self.sent = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    server: RangeServer

    def log_message(self, *args: object) -> None:
        pass

    def _serve(self, body: bool) -> None:
        entry = self.server.files.get(self.path)
        if entry is None:
            self.send_error(404, "Not Found")
            return
        data, ctype = entry
        start, end = 0, len(data) - 1
        rng = self.headers.get("Range")
        if body:
            self.server.ranges.append(rng)
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
        if m:
            start = int(m.group(1))
            end = min(int(m.group(2)), end) if m.group(2) else end
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if not body:
            return
        stop = end + 1
        if self.server.cut:
            stop = min(stop, len(data) // 2)
        step = self.server.chunk or max(1, stop - start)
        with contextlib.suppress(OSError):  # the client may hang up early (yt-dlp's probe request does)
            for i in range(start, stop, step):
                self.wfile.write(data[i:min(i + step, stop)])
                self.server.sent += min(step, stop - i)
                if self.server.delay:
                    self.wfile.flush()
                    time.sleep(self.server.delay)
            if stop <= end:  # announced more than we sent: drop the connection mid-body
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(body=False)


@contextlib.contextmanager
def range_server(files: dict[str, tuple[bytes, str]] | None = None) -> Iterator[RangeServer]:
    """A running :class:`RangeServer`, shut down on exit."""
    srv = RangeServer(files)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
