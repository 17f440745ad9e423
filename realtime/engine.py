"""The torch-free inference engine: one ONNX model, one onnxruntime session, one frame at a time.

:class:`Colorizer` takes what a screen capture or a video decoder gives -- grey ``(H, W)``, RGB
``(H, W, 3)`` or BGRA ``(H, W, 4)`` uint8, at the Game Boy's native 160x144 or any integer or
near-integer upscale of it -- and returns the colour frame at the *input's* resolution:

1. **preprocess** -- sample the native 160x144 grid (area average of each cell; for non-integer
   scales only the pixels that surely belong to the cell, so 2.5x nearest-neighbour upscales are
   read exactly), turn colours into lightness through lookup tables, and map a DMG palette
   (grey, the green "pea soup" shades, pocket grey, any 4-shade tint) onto the four DMG grey
   levels, so a green-tinted frame feeds the model the L it was trained on.
2. **inference** -- one onnxruntime call at native resolution into preallocated buffers.
3. **postprocess** -- optional temporal smoothing of ``ab``, Lab -> RGB on the native grid only
   (23k pixels, float32 with a gamma lookup table), nearest upsampling to the input's pixel grid,
   and, where the input's own pixels differ from their cell's sample (edges of a non-integer
   upscale, blur in a video), an exact per-pixel recombination of the pixel's own L with its
   cell's ab -- so edges stay as crisp as the input.

Per-stage times of the last frame are in :attr:`Colorizer.timings` (milliseconds) for ``bench``.

The palette rule: a frame whose native grid holds at most 4 distinct lightness values is a
monochrome game; its shades are ranked by lightness onto the DMG levels 0/85/170/255.  With fewer
than 4 shades on screen, the shades must belong to a palette seen in an earlier 4-shade frame or
to a well-known emulator palette; otherwise the frame's own L is used.  Frames with more shades
(colour games, video) always use their own L.  ``palette="off"`` disables the mapping.

This module imports numpy, OpenCV and onnxruntime only -- never torch -- so the player path runs
on the base install.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

from dataset import color
from utils.errors import UserError
from utils.geometry import NATIVE_H, NATIVE_W
from utils.ort import session_options

#: Smoothing's dead band, in Lab ab units at smoothing 1 (scaled by the smoothing weight: 3 at
#: 0.5, about one just-noticeable difference): on a pixel whose lightness did not change, a
#: predicted colour change smaller than this is dropped, not blended.  Measured on europa-rescue's
#: clip, where the model's small one-way drifts made blending alone raise flicker (0.082 -> 0.100).
DEADBAND_AB = 6.0

# ----------------------------------------------------------------------------- lookup tables
# Lightness goes through a 16-bit "luminance code" q = round(Y * _QSCALE): three 256-entry integer
# tables sum to q and one 65536-entry table gives L.  Exact to ~0.01 L (the dataset.color chain
# is the reference; tests check the agreement) and ~10x faster than the float pipeline.
_QSCALE = 65534
_LIN = color.SRGB8_TO_LINEAR  # THE sRGB decode of dataset.color, shared on purpose
_Q_R = np.rint(_LIN * color.RGB_TO_XYZ[1, 0] * _QSCALE).astype(np.int32)
_Q_G = np.rint(_LIN * color.RGB_TO_XYZ[1, 1] * _QSCALE).astype(np.int32)
_Q_B = np.rint(_LIN * color.RGB_TO_XYZ[1, 2] * _QSCALE).astype(np.int32)
_Q_GREY = _Q_R + _Q_G + _Q_B


def _l_of_y(y: np.ndarray) -> np.ndarray:
    y = np.clip(y, 0.0, 1.0)
    f = np.where(y > color.LAB_EPSILON, np.cbrt(y), (color.LAB_KAPPA * y + 16.0) / 116.0)
    return np.clip(116.0 * f - 16.0, 0.0, 100.0)


_L_OF_Q = _l_of_y(np.arange(65536, dtype=np.float64) / _QSCALE).astype(np.float32)

# Linear light -> 8-bit sRGB, 65536 steps (error < 0.03 of a code value).
_LIN_STEPS = 65535
_lin = np.arange(_LIN_STEPS + 1, dtype=np.float64) / _LIN_STEPS
_SRGB8 = np.clip(np.rint(np.where(_lin <= 0.0031308, 12.92 * _lin, 1.055 * np.power(_lin, 1 / 2.4) - 0.055) * 255),
                 0, 255).astype(np.uint8)
del _lin
_M = color.XYZ_TO_RGB.astype(np.float32)
_WX, _WZ = (float(v) for v in color.WHITE_D65[[0, 2]])
_EPS = float(color.LAB_EPSILON)
_KAPPA = float(color.LAB_KAPPA)


def _q_of_rgb(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    q = np.take(_Q_R, r)
    q += np.take(_Q_G, g)
    q += np.take(_Q_B, b)
    return q


def _finv(t: np.ndarray) -> np.ndarray:
    t3 = t * t * t
    return np.where(t3 > _EPS, t3, (116.0 * t - 16.0) / _KAPPA)


def lab_to_rgb_fast(L: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None,
                    order: tuple[int, int, int] = (0, 1, 2)) -> np.ndarray:
    """float32 L, a, b (same shape) -> uint8 colour ``(..., 3)`` (or into ``out``'s channels ``order``).

    The same chain as :func:`dataset.color.lab_to_rgb` (which stays the reference; results agree
    to +-1 code value) in float32 with a lookup table for the sRGB gamma: ~10x faster.
    """
    L = np.asarray(L, np.float32)
    fy = (L + np.float32(16.0)) * np.float32(1 / 116)
    x = _finv(fy + np.asarray(a, np.float32) * np.float32(1 / 500)) * np.float32(_WX)
    y = _finv(fy)
    z = _finv(fy - np.asarray(b, np.float32) * np.float32(1 / 200)) * np.float32(_WZ)
    if out is None:
        out = np.empty((*L.shape, 3), np.uint8)
    for ch, row in zip(order, _M, strict=True):
        lin = x * row[0]
        lin += y * row[1]
        lin += z * row[2]
        np.clip(lin, 0.0, 1.0, out=lin)
        lin *= np.float32(_LIN_STEPS)
        lin += np.float32(0.5)
        out[..., ch] = np.take(_SRGB8, lin.astype(np.int32))
    return out


# ----------------------------------------------------------------------------- DMG palettes
def _palette_q(rgb_hex: Sequence[int]) -> np.ndarray:
    rgb = np.array([[(c >> 16) & 255, (c >> 8) & 255, c & 255] for c in rgb_hex], np.int64)
    return np.sort(_q_of_rgb(rgb[:, 0], rgb[:, 1], rgb[:, 2]))


#: Well-known 4-shade palettes (lightest first), used when a frame shows fewer than 4 shades
#: before any 4-shade frame taught the engine the emulator's palette.
KNOWN_PALETTES: dict[str, tuple[int, int, int, int]] = {
    "dmg-grey": (0xFFFFFF, 0xAAAAAA, 0x555555, 0x000000),
    "pyboy": (0xFFFFFF, 0x999999, 0x555555, 0x000000),
    "mgba-grey": (0xF8F8F8, 0xA8A8A8, 0x505050, 0x000000),
    "dmg-green": (0x9BBC0F, 0x8BAC0F, 0x306230, 0x0F380F),
    "bgb-green": (0xE0F8D0, 0x88C070, 0x346856, 0x081820),
    "sameboy-dmg": (0xC6DE8C, 0x84A563, 0x396139, 0x081810),
    "pocket": (0xC4CFA1, 0x8B956D, 0x4D533C, 0x1F1F1F),
}
_KNOWN_Q = [_palette_q(p) for p in KNOWN_PALETTES.values()]
#: Midpoints between the DMG levels' L: ``searchsorted`` gives a mapped frame's shade (0 = black).
_DMG_MIDS = ((color.DMG_LEVELS_L[:-1] + color.DMG_LEVELS_L[1:]) / 2).astype(np.float32)


def _distinct_upto(values: np.ndarray, k: int) -> np.ndarray | None:
    """The sorted distinct values if there are at most ``k``, else None -- in O(k n), no sort."""
    rest = values.ravel()
    found = []
    while rest.size:
        v = rest[0]
        found.append(v)
        if len(found) > k:
            return None
        rest = rest[rest != v]
    return np.sort(np.array(found, dtype=values.dtype))


def _palette_table(pal: np.ndarray) -> np.ndarray:
    """q -> L table ranking the palette's shades onto the DMG levels (nearest shade in between)."""
    mids = (pal[:-1].astype(np.float64) + pal[1:]) / 2.0
    idx = np.searchsorted(mids, np.arange(65536), side="right")
    levels = color.DMG_LEVELS_L[len(color.DMG_LEVELS_L) - len(pal):]
    return levels[idx].astype(np.float32)


# ----------------------------------------------------------------------------- native grid
def _axis_core(n_in: int, n_native: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Per native cell along one axis: source indices (n_native, k) and weights (n_native, k).

    Integer scales average the whole cell.  Other scales keep only pixels lying at least half a
    pixel inside the cell, because emulators and scalers disagree by one pixel about which cell
    a boundary pixel belongs to; a cell with no such pixel takes the pixel under its centre.
    """
    s = n_in / n_native
    integer = abs(s - round(s)) < 1e-9
    margin = 0.0 if integer else 0.5
    cells: list[list[int]] = []
    for i in range(n_native):
        lo = int(np.ceil(i * s + margin - 1e-9))
        hi = int(np.floor((i + 1) * s - margin + 1e-9))  # exclusive end
        idx = list(range(lo, hi))
        if not idx:
            idx = [min(int((i + 0.5) * s), n_in - 1)]
        cells.append(idx)
    k = max(len(c) for c in cells)
    ind = np.zeros((n_native, k), np.intp)
    w = np.zeros((n_native, k), np.float32)
    for i, c in enumerate(cells):
        ind[i, : len(c)] = c
        ind[i, len(c):] = c[0]
        w[i, : len(c)] = 1.0 / len(c)
    return ind, w, integer


class _Grid:
    """Everything precomputed for one input size: how to sample the native grid and map back."""

    def __init__(self, h: int, w: int, nh: int, nw: int) -> None:
        self.h, self.w, self.nh, self.nw = h, w, nh, nw
        self.native = (h, w) == (nh, nw)
        self.iy, self.wy, iy_int = _axis_core(h, nh)
        self.ix, self.wx, ix_int = _axis_core(w, nw)
        self.integer = iy_int and ix_int
        # Full-res pixel -> the cell its centre falls in.
        self.row_map = np.minimum(((np.arange(h) + 0.5) * nh / h).astype(np.intp), nh - 1)
        self.col_map = np.minimum(((np.arange(w) + 0.5) * nw / w).astype(np.intp), nw - 1)

    def clean_upscale(self, frame: np.ndarray) -> np.ndarray | None:
        """For an integer grid: the native frame if ``frame`` is an exact nearest upscale, else None.

        Emulator windows are exactly that, and then each cell is one colour: checking it costs one
        compare per pixel and makes area sampling and the per-pixel recombination unnecessary.
        """
        if not self.integer or self.native:
            return None
        sy, sx = self.h // self.nh, self.w // self.nw
        c = frame.shape[2]
        if c == 4:
            v = frame.view(np.uint32).reshape(self.nh, sy, self.nw, sx)
            ok = np.array_equal(v, np.broadcast_to(v[:, :1, :, :1], v.shape))
        else:
            v = frame.reshape(self.nh, sy, self.nw, sx, c)
            ok = np.array_equal(v, np.broadcast_to(v[:, :1, :, :1], v.shape))
        return np.ascontiguousarray(frame[::sy, ::sx]) if ok else None

    def sample(self, frame: np.ndarray) -> np.ndarray:
        """``(H, W, C)`` uint8 -> ``(nh, nw, C)`` uint8 cell averages."""
        if self.native:
            return frame
        if self.integer:
            out = cv2.resize(frame, (self.nw, self.nh), interpolation=cv2.INTER_AREA)
            return out.reshape(self.nh, self.nw, frame.shape[2])
        c = frame.shape[2]
        rows = frame[self.iy.ravel()].reshape(self.nh, self.iy.shape[1], self.w, c).astype(np.float32)
        rows = np.einsum("hkwc,hk->hwc", rows, self.wy)
        cols = rows[:, self.ix.ravel()].reshape(self.nh, self.nw, self.ix.shape[1], c)
        avg = np.einsum("hwkc,wk->hwc", cols, self.wx)
        return np.clip(np.rint(avg), 0, 255).astype(np.uint8)

    def upsample(self, native: np.ndarray) -> np.ndarray:
        """Nearest-neighbour ``(nh, nw, C)`` -> ``(H, W, C)``: pixel centre -> the cell it falls in.

        Integer scales use OpenCV (exact there and fastest); other scales use the precomputed
        maps, because OpenCV's fixed-point rounding moves some boundaries by a pixel.
        """
        if self.native:
            return native
        if self.integer:
            out = cv2.resize(native, (self.w, self.h), interpolation=cv2.INTER_NEAREST)
            return out.reshape(self.h, self.w, native.shape[2]) if out.ndim == 2 else out
        return np.take(np.take(native, self.row_map, axis=0), self.col_map, axis=1)


# ----------------------------------------------------------------------------- the engine
def _first_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:160] if text else type(e).__name__


def _dim(d: Any) -> int | None:
    return d if isinstance(d, int) and d > 0 else None


class Colorizer:
    """Colorize Game Boy frames with an ONNX model on onnxruntime (see the module docstring).

    ``model`` is a path to an ``.onnx`` file or a shipped model name (:func:`weights.resolve`).
    ``threads`` is onnxruntime's intra-op thread count: 1 gives the lowest and steadiest latency
    for these small nets on a 2-core machine (measured by ``retrocolor bench``).  ``smoothing``
    in [0, 1) is the weight of the previous frame's colour on pixels whose lightness did not
    change (0: off).  ``providers`` defaults to the CPU provider.
    """

    def __init__(self, model: str | os.PathLike[str] = "default", *, threads: int = 1, smoothing: float = 0.0,
                 providers: Sequence[str] | None = None, palette: str = "auto", scheme: int | None = None,
                 schemes: str | os.PathLike[str] | None = None) -> None:
        import weights  # the shipped-model folder; imported here so tests can monkeypatch it

        if not isinstance(threads, int) or threads < 1:
            raise UserError(f"threads must be a positive integer, got {threads!r}")
        if palette not in ("auto", "off"):
            raise UserError(f"palette must be 'auto' or 'off', got {palette!r}")
        self.path = weights.resolve(model)
        self.name = self.path.name[: -len(".onnx")] if self.path.name.endswith(".onnx") else self.path.stem
        self.threads = threads
        self.palette_mode = palette
        self.smoothing = smoothing
        self.providers = list(providers) if providers else ["CPUExecutionProvider"]

        so = session_options(threads)
        try:
            head = self.path.read_bytes()[:64]
        except OSError as e:
            raise UserError(f"cannot read model {self.path}: {e.strerror or e}") from None
        if not head:
            raise UserError(f"{self.path}: empty file, not an ONNX model")
        try:
            self.session = ort.InferenceSession(str(self.path), so, providers=self.providers)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises pybind classes deriving from Exception
            raise UserError(f"{self.path}: not a loadable ONNX model ({_first_line(e)})") from None
        self.meta = self._read_meta()
        self._check_signature()
        self._in = np.zeros((1, 1, self.native_h, self.native_w), np.float32)
        self._feed = {self.input_name: self._in}
        self._grids: dict[tuple[int, int], _Grid] = {}
        self._palette_tables: dict[bytes, np.ndarray] = {}
        self._learned: list[np.ndarray] = []
        self.active_palette: np.ndarray | None = None
        self.timings: dict[str, float] = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0, "total": 0.0}
        self.schemes_path = schemes
        self._schemes: dict[str, Any] | None = None
        # (number, its a/b (2, 4) by shade) or None, replaced whole: live's window thread may set a
        # scheme while the worker colorizes, and one attribute store is atomic
        self._scheme_state: tuple[int, np.ndarray] | None = None
        self.scheme = scheme
        self.reset()
        self._probe()

    # ------------------------------------------------------------------ loading
    def _read_meta(self) -> dict[str, Any]:
        try:
            raw = dict(self.session.get_modelmeta().custom_metadata_map)
        except Exception:  # noqa: BLE001 - metadata is optional; a model without it still runs
            return {}
        if "retrocolor" in raw:
            try:
                meta = json.loads(raw["retrocolor"])
                if isinstance(meta, dict):
                    return meta
            except json.JSONDecodeError:
                pass
        out: dict[str, Any] = {}
        for k, v in raw.items():
            try:
                out[k] = json.loads(v)
            except json.JSONDecodeError:
                out[k] = v
        return out

    def _check_signature(self) -> None:
        ins, outs = self.session.get_inputs(), self.session.get_outputs()
        where = str(self.path)
        if len(ins) != 1:
            raise UserError(f"{where}: model has {len(ins)} inputs; a colorizer takes one (L, shape B,1,H,W)")
        i = ins[0]
        if i.type != "tensor(float)":
            raise UserError(f"{where}: model input {i.name!r} is {i.type}, expected tensor(float) L/100")
        if len(i.shape) != 4 or (isinstance(i.shape[1], int) and i.shape[1] != 1):
            raise UserError(f"{where}: model input {i.name!r} has shape {i.shape}, expected (B, 1, H, W) lightness")
        if _dim(i.shape[0]) not in (None, 1):
            raise UserError(f"{where}: model input has a fixed batch of {i.shape[0]}; expected 1 or dynamic")
        self.input_name = i.name
        named = [o for o in outs if o.name == "ab"]
        o = named[0] if named else outs[0]
        if len(o.shape) != 4 or (isinstance(o.shape[1], int) and o.shape[1] != 2):
            raise UserError(f"{where}: model output {o.name!r} has shape {o.shape}, expected (B, 2, H, W) ab")
        self.output_name = o.name
        h, w = _dim(i.shape[2]), _dim(i.shape[3])
        self.native_h, self.native_w = NATIVE_H, NATIVE_W
        if (h is not None and h != NATIVE_H) or (w is not None and w != NATIVE_W):
            raise UserError(f"{where}: model input is fixed at {w}x{h}; the engine runs at the native "
                            f"{NATIVE_W}x{NATIVE_H} (export with dynamic height/width)")
        self.dynamic_size = h is None and w is None

    def _probe(self) -> None:
        """One run on a blank frame: catches models whose declared shapes lie, before the first frame."""
        try:
            out = self.session.run([self.output_name], self._feed)[0]
        except Exception as e:  # noqa: BLE001 - any runtime failure means the file is not usable here
            raise UserError(f"{self.path}: model fails on a {NATIVE_W}x{NATIVE_H} frame ({_first_line(e)})") from None
        want = (1, 2, self.native_h, self.native_w)
        if tuple(out.shape) != want:
            raise UserError(f"{self.path}: model output has shape {tuple(out.shape)} for a (1, 1, {self.native_h}, "
                            f"{self.native_w}) input; expected {want} (ab at the input's size)")
        if out.dtype != np.float32 or not np.all(np.isfinite(out)):
            raise UserError(f"{self.path}: model output is not finite float32 ab")

    # ------------------------------------------------------------------ options and state
    @property
    def smoothing(self) -> float:
        """Temporal smoothing weight in [0, 1); 0 disables it."""
        return self._smoothing

    @smoothing.setter
    def smoothing(self, value: float) -> None:
        v = float(value)
        if not 0.0 <= v < 1.0:
            raise UserError(f"smoothing must be in [0, 1), got {value!r}")
        self._smoothing = v

    # ------------------------------------------------------------------ colour schemes
    @property
    def schemes(self) -> dict[str, Any]:
        """The schemes document (``weights/schemes.json`` unless ``schemes=`` named another), loaded once."""
        if self._schemes is None:
            from dataset.schemes import load

            if self.schemes_path is not None:
                path = self.schemes_path
            else:
                import weights

                path = weights.WEIGHTS_DIR / "schemes.json"
            self._schemes = load(path)
        return self._schemes

    @property
    def scheme_count(self) -> int:
        """How many schemes there are to pick from."""
        return len(self.schemes["schemes"])

    @property
    def scheme(self) -> int | None:
        """The colour scheme painting monochrome frames (1-based), or None: the model paints them.

        A scheme is a game's 4-colour palette (:mod:`dataset.schemes`), one colour per shade: for a
        monochrome game the model never saw, a player's pick is closer to the game's own colours
        than the model's guess (README).  Frames that are not monochrome always go to the model.
        """
        state = self._scheme_state
        return None if state is None else state[0]

    @scheme.setter
    def scheme(self, value: int | None) -> None:
        if value is None or (not isinstance(value, bool) and value == 0):  # 0 is the model, as --scheme 0
            self._scheme_state = None
            return
        from dataset.schemes import check_number, scheme_ab

        n = check_number(self.schemes, value)
        ab = scheme_ab(self.schemes)[n - 1]                                 # (4, 2), shade 0 = black
        self._scheme_state = (n, np.ascontiguousarray(ab.T, dtype=np.float32))  # (2, 4) by shade

    def last_shades(self) -> np.ndarray | None:
        """The last frame's native shade picture, (h, w) uint8, 0 = black .. 3 = white, if it was a
        monochrome frame (None for a colour one): what tells one game from another (``realtime.picks``)."""
        if self.active_palette is None or self._prev_l is None:
            return None
        return np.searchsorted(_DMG_MIDS, self._prev_l).astype(np.uint8)

    def scheme_info(self) -> dict[str, Any] | None:
        """The active scheme's entry of the schemes document (preview colours, source game), or None."""
        n = self.scheme
        return None if n is None else dict(self.schemes["schemes"][n - 1])

    def reset(self) -> None:
        """Forget the previous frame (smoothing) and learned palettes: call between unrelated clips."""
        self._prev_l: np.ndarray | None = None
        self._prev_ab: np.ndarray | None = None
        self._learned = []
        self.active_palette = None

    def predict_ab(self, l_norm: np.ndarray) -> np.ndarray:
        """Raw model call: ``L/100`` float32 ``(B, 1, H, W)`` -> ``ab/128`` ``(B, 2, H, W)``.

        H and W must suit the model (multiples of 8 for the shipped archs); for parity checks and
        evaluation, not the live path.
        """
        x = np.ascontiguousarray(l_norm, dtype=np.float32)
        return self.session.run([self.output_name], {self.input_name: x})[0]

    # ------------------------------------------------------------------ per frame
    def _grid(self, h: int, w: int) -> _Grid:
        g = self._grids.get((h, w))
        if g is None:
            if h < self.native_h or w < self.native_w:
                raise UserError(f"frame is {w}x{h}, smaller than the Game Boy's {self.native_w}x{self.native_h} screen")
            sx, sy = w / self.native_w, h / self.native_h
            if abs(sx / sy - 1.0) > 0.1:
                raise UserError(f"frame is {w}x{h}, not the Game Boy's 10:9 screen shape (scale {sx:.2f} x {sy:.2f}); "
                                "crop it to the game screen")
            if len(self._grids) > 16:
                self._grids.clear()
            g = self._grids[(h, w)] = _Grid(h, w, self.native_h, self.native_w)
        return g

    def _l_table(self, q_native: np.ndarray) -> np.ndarray:
        """The q -> L table for this frame: the DMG ranking of its palette, or plain L."""
        self.active_palette = None
        if self.palette_mode == "off":
            return _L_OF_Q
        shades = _distinct_upto(q_native, 4)
        if shades is None:
            return _L_OF_Q
        pal = None
        if len(shades) == 4:
            pal = shades
            if not any(np.array_equal(pal, p) for p in self._learned):
                self._learned = [pal, *self._learned][:8]
        else:
            for p in (*self._learned, *_KNOWN_Q):
                if np.isin(shades, p).all():
                    pal = p
                    break
        if pal is None:
            return _L_OF_Q
        self.active_palette = pal
        key = pal.tobytes()
        table = self._palette_tables.get(key)
        if table is None:
            if len(self._palette_tables) > 32:
                self._palette_tables.clear()
            table = self._palette_tables[key] = _palette_table(pal)
        return table

    def colorize(self, frame: np.ndarray, *, bgra: bool | None = None, output: str = "rgb") -> np.ndarray:
        """Colorize one frame; returns a new uint8 array at the input's size.

        ``frame``: uint8 grey ``(H, W)`` / ``(H, W, 1)``, 3-channel or 4-channel.  Channel order:
        ``bgra=None`` (default) reads 3 channels as RGB and 4 channels as BGRA (what ``mss``
        grabs); ``bgra=True`` reads BGR/BGRA, ``bgra=False`` reads RGB/RGBA.  Alpha is ignored.
        ``output``: ``"rgb"`` -> ``(H, W, 3)`` RGB; ``"bgra"`` -> ``(H, W, 4)`` BGRA with opaque
        alpha, the layout display surfaces and ``cv2`` writers take without another copy.
        """
        t0 = time.perf_counter()
        if output not in ("rgb", "bgra"):
            raise UserError(f"output must be 'rgb' or 'bgra', got {output!r}")
        arr = np.asarray(frame)
        if arr.dtype != np.uint8:
            raise UserError(f"frame must be uint8, got {arr.dtype}")
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
            raise UserError(f"frame must be (H, W), (H, W, 3) or (H, W, 4), got shape {arr.shape}")
        arr = np.ascontiguousarray(arr)
        c = arr.shape[2]
        if c == 1:
            order = (0, 0, 0)
        elif (c == 4 and bgra is not False) or (c == 3 and bgra is True):
            order = (2, 1, 0)
        else:
            order = (0, 1, 2)
        h, w = arr.shape[:2]
        grid = self._grid(h, w)

        # ---- preprocess: native samples -> luminance code -> (palette) -> L
        clean = grid.clean_upscale(arr)
        nat = clean if clean is not None else grid.sample(arr)
        if c == 1:
            q_nat = np.take(_Q_GREY, nat[:, :, 0])
        else:
            q_nat = _q_of_rgb(nat[:, :, order[0]], nat[:, :, order[1]], nat[:, :, order[2]])
        table = self._l_table(q_nat)
        l_nat = np.take(table, q_nat)
        np.multiply(l_nat, np.float32(1.0 / color.L_SCALE), out=self._in[0, 0])
        t1 = time.perf_counter()

        # ---- inference (a scheme paints a monochrome frame by shade: no model to run)
        state = self._scheme_state  # read once: another thread may set another scheme meanwhile
        if state is not None and self.active_palette is not None:
            shade = np.searchsorted(_DMG_MIDS, l_nat)
            ab = np.take(state[1], shade, axis=1)
            t2 = time.perf_counter()
        else:
            ab = self.session.run([self.output_name], self._feed)[0][0]
            t2 = time.perf_counter()
            ab = ab * np.float32(color.AB_SCALE)

        # ---- postprocess
        if self._smoothing > 0.0 and self._prev_l is not None:
            prev = self._prev_ab
            still = np.abs(l_nat - self._prev_l) < 0.5
            k = np.float32(self._smoothing)
            blend = k * prev + (1 - k) * ab
            # Hold (not just damp) small changes: an exponential blend spreads a change over
            # frames but moves the colour by the same total, so on its own it cannot calm a
            # pixel that drifts in one direction; a change below the dead band is dropped.
            hold = still & (np.abs(ab - prev).max(axis=0) < np.float32(DEADBAND_AB * self._smoothing))
            ab = np.where(hold[None], prev, np.where(still[None], blend, ab)).astype(np.float32)
        self._prev_l, self._prev_ab = l_nat, ab
        nch = 4 if output == "bgra" else 3
        out_order = (2, 1, 0) if output == "bgra" else (0, 1, 2)
        native_out = np.empty((grid.nh, grid.nw, nch), np.uint8)
        if nch == 4:
            native_out[:, :, 3] = 255
        lab_to_rgb_fast(l_nat, ab[0], ab[1], out=native_out, order=out_order)
        if grid.native:
            result = native_out
        else:
            result = grid.upsample(native_out)
            if clean is None:
                self._recombine(arr, nat, grid, table, ab, order, out_order, result)
        t3 = time.perf_counter()
        self.timings = {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3,
                        "postprocess": (t3 - t2) * 1e3, "total": (t3 - t0) * 1e3}
        return result

    @staticmethod
    def _recombine(arr: np.ndarray, nat: np.ndarray, grid: _Grid, table: np.ndarray, ab: np.ndarray,
                   order: tuple[int, int, int], out_order: tuple[int, int, int], result: np.ndarray) -> None:
        """Give pixels that differ from their cell's sample their own L (in place on ``result``).

        A clean integer upscale has none (one cheap whole-frame check); edges of a non-integer
        upscale have a few (exact per-pixel colour); a blurred video has most (whole-frame path).
        """
        h, w, c = arr.shape
        d = cv2.absdiff(arr, grid.upsample(np.ascontiguousarray(nat))).reshape(h, w, c)
        if not cv2.countNonZero(d.reshape(h, -1)):
            return
        if c == 1:
            diff = d[:, :, 0] != 0
        else:
            if c == 3:
                d = cv2.cvtColor(d, cv2.COLOR_RGB2RGBA)
            diff = (d.view(np.uint32)[:, :, 0] & np.uint32(0xFFFFFF)) != 0
        n = int(np.count_nonzero(diff))
        if n == 0:
            return
        if n > 0.3 * h * w:
            if c == 1:
                q = np.take(_Q_GREY, arr[:, :, 0])
            else:
                q = _q_of_rgb(arr[:, :, order[0]], arr[:, :, order[1]], arr[:, :, order[2]])
            ab_up = grid.upsample(np.ascontiguousarray(ab.transpose(1, 2, 0)))
            lab_to_rgb_fast(np.take(table, q), ab_up[:, :, 0], ab_up[:, :, 1], out=result, order=out_order)
            return
        ys, xs = np.nonzero(diff)
        px = arr[ys, xs]
        if c == 1:
            q = np.take(_Q_GREY, px[:, 0])
        else:
            q = _q_of_rgb(px[:, order[0]], px[:, order[1]], px[:, order[2]])
        cy, cx = grid.row_map[ys], grid.col_map[xs]
        fix = lab_to_rgb_fast(np.take(table, q), ab[0][cy, cx], ab[1][cy, cx])
        for src, dst in enumerate(out_order):
            result[ys, xs, dst] = fix[:, src]

    def __repr__(self) -> str:
        return f"Colorizer({str(self.path)!r}, threads={self.threads}, smoothing={self._smoothing})"


# ----------------------------------------------------------------------------- flicker metric
def _frame_l(frame: np.ndarray) -> np.ndarray:
    arr = np.asarray(frame)
    if arr.ndim == 2 or arr.shape[2] == 1:
        return color.gray_to_l(arr.reshape(arr.shape[0], arr.shape[1]))
    return color.rgb_to_l(arr[:, :, :3])


def flicker(inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> float:
    """Mean |delta ab| (Lab units) between consecutive outputs over pixels whose input L is unchanged.

    ``inputs``: the frames fed to the colorizer (grey or RGB uint8); ``outputs``: its RGB results.
    On a static part of the scene the colour should not change, so any change there is flicker
    the eye sees.  Returns 0.0 when no pixel stays unchanged.
    """
    if len(inputs) != len(outputs):
        raise ValueError("inputs and outputs must have the same length")
    total, count = 0.0, 0
    prev_l = prev_ab = None
    for fin, fout in zip(inputs, outputs, strict=True):
        lum = _frame_l(fin)
        ab = color.rgb_to_lab(np.asarray(fout)[:, :, :3])[:, :, 1:]
        if prev_l is not None and prev_ab is not None:
            still = np.abs(lum - prev_l) < 1e-3
            n = int(still.sum())
            if n:
                total += float(np.abs(ab - prev_ab)[still].sum()) / 2.0
                count += n
        prev_l, prev_ab = lum, ab
    return total / count if count else 0.0

