"""Helpers the tests share: synthetic Game Boy frames and game folders, tiny ONNX colorizers
built without torch, 4-shade frames, the ../shared data location, a loopback HTTP server, and
the window lookup of the X11 tests.

Tests import these from here (``from helpers import ...``), never from ``conftest.py`` or from
other test files; ``conftest.py`` keeps only fixtures (a private Xvfb among them) and hooks.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from dataset import color

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RETROCOLOR_SHARED", ROOT.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """Path inside ../shared, skipping the calling test if it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs ../shared data ({p} not found)")
    return p


# --------------------------------------------------------------------------- frames and game folders
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


def twin_of(rgb: np.ndarray) -> np.ndarray:
    """A fake monochrome twin: the frame's luma posterised to the four DMG shades."""
    y = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return (np.clip(np.rint(y / 85.0), 0, 3) * 85).astype(np.uint8)


def lightness_twin(rgb: np.ndarray) -> np.ndarray:
    """A fake monochrome twin from CIE L thresholds 25/50/75 (the posterize_l bands)."""
    from dataset.color import rgb_to_l

    shade = np.digitize(rgb_to_l(rgb), [25, 50, 75])
    return np.array([0, 85, 170, 255], np.uint8)[shade]


def write_game(d: Path, n: int, seed: int = 0, twins: int = 0, w: int = 160, h: int = 144,
               twin: Callable[[np.ndarray], np.ndarray] = twin_of, name: str = "s1_{:07d}.png") -> np.ndarray:
    """``n`` synthetic frames named in play order in ``d``, the first ``twins`` with a DMG twin
    (made by ``twin``) in ``d/dmg``; returns the frames."""
    from utils.images import write_png

    frames = make_game_frames(n, seed, w=w, h=h)
    d.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        write_png(d / name.format(i), f)
        if i < twins:
            write_png(d / "dmg" / name.format(i), twin(f))
    return frames


# --------------------------------------------------------------------------- 4-shade frames
GREEN = np.array([[0x9B, 0xBC, 0x0F], [0x8B, 0xAC, 0x0F], [0x30, 0x62, 0x30], [0x0F, 0x38, 0x0F]], np.uint8)
BGB = np.array([[0xE0, 0xF8, 0xD0], [0x88, 0xC0, 0x70], [0x34, 0x68, 0x56], [0x08, 0x18, 0x20]], np.uint8)
GREYS = np.array([255, 170, 85, 0], np.uint8)


def dmg_index(seed: int = 0) -> np.ndarray:
    """A Game-Boy-like frame as shade indices 0 (lightest) .. 3 (darkest), all four present."""
    rgb = make_game_frames(1, seed)[0]
    lum = color.rgb_to_l(rgb)
    idx = 3 - np.digitize(lum, np.unique(lum)[1:]).clip(0, 3)
    idx[:8, :8] = np.arange(4).repeat(16).reshape(8, 8)  # make sure every shade appears
    return idx


def dmg_frame(seed: int = 0, palette: np.ndarray = GREYS) -> np.ndarray:
    """A 160x144 frame in a 4-shade palette (grey levels -> (H, W); RGB palette -> (H, W, 3))."""
    return palette[dmg_index(seed)]


# --------------------------------------------------------------------------- tiny ONNX colorizers (no torch)
def _save_onnx(path: Path, nodes: list, inputs: list, outputs: list, inits: list,
               props: dict[str, str] | None = None) -> Path:
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, "tiny", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if props:
        helper.set_model_props(model, props)
    onnx.save(model, str(path))
    return path


def conv1x1_onnx(path: Path, weight: np.ndarray, bias: np.ndarray, *, inputs: int = 1,
                 in_type: int | None = None) -> Path:
    """``tanh(conv1x1(L))`` with ``weight`` of shape (out, in): a colorizer whose colours follow
    lightness.  ``inputs=2`` adds a second input passed through; ``in_type`` changes the input's
    element type (wrong variants for the robustness tests)."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    weight = np.asarray(weight, np.float32)
    out_ch, in_ch = weight.shape
    nodes = [helper.make_node("Conv", ["L", "W", "B"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Tanh", ["c"], ["ab"])]
    ins = [helper.make_tensor_value_info("L", in_type or TensorProto.FLOAT, ["N", in_ch, "H", "W"])]
    outs = [helper.make_tensor_value_info("ab", TensorProto.FLOAT, ["N", out_ch, "H", "W"])]
    if inputs == 2:
        ins.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, ["N", 1, "H", "W"]))
        nodes.append(helper.make_node("Identity", ["extra"], ["extra_out"]))
        outs.append(helper.make_tensor_value_info("extra_out", TensorProto.FLOAT, ["N", 1, "H", "W"]))
    inits = [numpy_helper.from_array(weight.reshape(out_ch, in_ch, 1, 1), "W"),
             numpy_helper.from_array(np.asarray(bias, np.float32), "B")]
    return _save_onnx(path, nodes, ins, outs, inits)


def tiny_lightness_onnx(path: Path) -> Path:
    """A 1x1 conv (1 -> 2 channels) + tanh, written without torch: a stand-in model whose colours
    depend on lightness, like a real model's output (for the player-side tests)."""
    return conv1x1_onnx(path, np.array([[1.2], [-0.9]]), np.array([-0.5, 0.45]))


def tiny_onnx(path: Path, *, in_ch: int = 1, out_ch: int = 2, seed: int = 0, size: tuple[int, int] | None = None,
              hidden: int = 8, global_mix: float = 0.0) -> Path:
    """A 2-conv L -> ab net (dynamic B/H/W unless ``size``), written with onnx.helper (no torch).

    ``global_mix`` adds a global-average branch, so (like a real net with a large receptive field)
    a change anywhere in the frame shifts the colours everywhere a little.
    """
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((hidden, in_ch, 3, 3)) * 0.8).astype(np.float32)
    b1 = (rng.standard_normal(hidden) * 0.2).astype(np.float32)
    w2 = (rng.standard_normal((out_ch, hidden, 3, 3)) * 0.06).astype(np.float32)
    b2 = (rng.standard_normal(out_ch) * 0.05).astype(np.float32)
    h, w = size if size else ("H", "W")
    # Global branch: ab += global_mix * (mean(L) - 0.5), one sign per output channel.
    wg = (np.sign(rng.standard_normal((out_ch, in_ch, 1, 1))) * global_mix).astype(np.float32)
    half = np.array([0.5], np.float32)
    nodes = [helper.make_node("Conv", ["L", "w1", "b1"], ["h1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["h1"], ["h2"]),
             helper.make_node("Conv", ["h2", "w2", "b2"], ["h3"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["L"], ["g0"]),
             helper.make_node("Sub", ["g0", "half"], ["g1"]),
             helper.make_node("Conv", ["g1", "wg"], ["g2"]),
             helper.make_node("Add", ["h3", "g2"], ["h4"]),
             helper.make_node("Tanh", ["h4"], ["ab"])]
    inits = ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"), (wg, "wg"), (half, "half"))
    ins = [helper.make_tensor_value_info("L", TensorProto.FLOAT, ["B", in_ch, h, w])]
    outs = [helper.make_tensor_value_info("ab", TensorProto.FLOAT, ["B", out_ch, h, w])]
    return _save_onnx(path, nodes, ins, outs, [numpy_helper.from_array(a, n) for a, n in inits],
                      props={"retrocolor": json.dumps({"arch": "tiny", "games": ["test"]})})


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


def x_window_rect(env: dict, title: str):
    """The window titled exactly ``title`` on ``env``'s X display, as a ``capture.window.Rect``
    with absolute geometry, or None (xwininfo: xdotool search misses SDL windows)."""
    import subprocess

    from capture.window import parse_tree

    tree = subprocess.run(["xwininfo", "-root", "-tree"], env=env, capture_output=True, text=True).stdout
    hits = [w for w in parse_tree(tree) if w.title == title]
    return hits[0].rect if hits else None
