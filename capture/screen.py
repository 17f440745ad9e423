"""Find the Game Boy screen inside a video frame and resample it onto the native 160x144 grid.

A longplay shows the console's 160x144 screen upscaled by some factor ``s`` (often not an
integer after YouTube's rescale: 2.5, 7.5, ...), placed in a larger canvas with black bars,
borders or overlays, then chroma-subsampled and compressed.  Two problems are solved here:

* :func:`detect_screen` finds the rectangle ``(x, y, w, h)`` in source pixels (floats: the
  placement is often sub-pixel) from a handful of frames spread over the video:

  1. the *changing* region: per-pixel temporal std over the frames, thresholded; the row and
     column profiles of that mask give a bounding box (gaps bridged, so static parts of the
     game such as a HUD do not split it; a static logo or frame in the border never changes and
     is ignored);
  2. the *pixel grid*: an upscaled Game Boy picture is piecewise constant on cells of size ``s``,
     so the mean absolute horizontal (vertical) gradient is concentrated on the cell boundaries
     ``x0 + k*s``.  The Fourier coefficient of that gradient profile at period ``s`` is large
     only for the right ``s``; its phase gives ``x0 mod s`` to a fraction of a pixel, using all
     161 grid lines rather than two fuzzy outer edges;
  3. the integer number of cells is fixed by centring the 160x144-cell grid on the changing
     region.

  The grid test is also what tells a game screen from a "talking head": natural video has no
  periodic cell structure, and a full-canvas 16:9 region cannot be a 10:9 screen.

* :class:`NativeSampler` maps a frame to 160x144: each native pixel is the average of the
  *central* part of its source cell (``inner`` of the cell's width and height), because cell
  edges are smeared by the upscaler, by 4:2:0 chroma and by compression.  It works for any
  non-integer scale (area-weighted partial pixels) and is a precomputed separable gather, fast
  enough for the live filter (well under 1 ms at 640x576).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from utils.errors import UserError

NATIVE_W, NATIVE_H = 160, 144

#: Temporal std (grey levels) above which a pixel counts as "changing"; compression noise in a
#: static black bar or logo stays well below it.
CHANGE_THRESHOLD = 4.0
#: Minimum periodicity score (|Fourier coefficient| / total gradient) of a real pixel grid.
#: Upscaled Game Boy frames score 0.2 (bilinear 2.5x) to 0.9 (nearest 2x); natural video or smooth noise
#: scores < 0.01.
MIN_GRID_SCORE = 0.04
#: Below this scale the cell grid cannot be measured; the changing region's box is used as is.
MIN_GRID_SCALE = 1.5


@dataclass(frozen=True)
class ScreenRect:
    """The game screen in source pixels: top-left ``(x, y)`` and size ``(w, h)``, floats.

    Pixel ``i`` of the source covers ``[i, i+1)``; native column ``c`` covers
    ``[x + c*w/160, x + (c+1)*w/160)``.
    """

    x: float
    y: float
    w: float
    h: float
    #: periodicity score of the detected grid (0 where given by the user or not measurable)
    score: float = 0.0

    @property
    def scale(self) -> float:
        """Source pixels per native pixel, horizontally (``w / 160``)."""
        return self.w / NATIVE_W

    @property
    def scale_y(self) -> float:
        """Source pixels per native pixel, vertically (``h / 144``)."""
        return self.h / NATIVE_H

    def as_list(self) -> list[float]:
        """``[x, y, w, h]`` rounded to 1/100 pixel (what manifests and extract.json store)."""
        return [_r2(self.x), _r2(self.y), _r2(self.w), _r2(self.h)]

    def describe(self) -> str:
        """Human-readable ``x,y,w,h (scale s)`` for summaries."""
        x, y, w, h = (f"{v:g}" for v in self.as_list())
        return f"{x},{y},{w},{h} (scale {_r2(self.scale):g})"

    @classmethod
    def from_crop(cls, crop: Sequence[float]) -> ScreenRect:
        """A rectangle given by the user (``--crop X,Y,W,H``)."""
        x, y, w, h = (float(v) for v in crop)
        if w <= 0 or h <= 0:
            raise UserError(f"crop must have a positive size, got {crop}")
        return cls(x, y, w, h)


def _r2(v: float) -> float:
    """Round to 1/100 px; whole numbers become ints, so JSON shows ``160`` rather than ``160.0``."""
    r = round(float(v), 2)
    return int(r) if r == int(r) else r


# --------------------------------------------------------------------------- detection
def _snap(v: float, tol: float = 0.05) -> float:
    r = round(float(v))
    return float(r) if abs(float(v) - r) <= tol else float(v)


def _gray(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return frame.astype(np.float32)
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY).astype(np.float32)


def _longest_run(mask: np.ndarray, gap: int) -> tuple[int, int] | None:
    """``[start, end)`` of the longest run of True in ``mask``, bridging gaps up to ``gap``."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return None
    breaks = np.flatnonzero(np.diff(idx) > gap + 1)
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], [idx[-1]]]) + 1
    best = int(np.argmax(ends - starts))
    return int(starts[best]), int(ends[best])


def _changing_box(std: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box ``(x0, y0, x1, y1)`` (exclusive ends) of the region that changes over time."""
    h, w = std.shape
    active = std > CHANGE_THRESHOLD
    if active.sum() < 64:
        return None
    gap = max(2, min(h, w) // 25)
    colp = active.sum(0)
    cols = _longest_run(colp >= max(2, 0.02 * colp.max()), gap)
    if cols is None:
        return None
    rowp = active[:, cols[0]:cols[1]].sum(1)
    rows = _longest_run(rowp >= max(2, 0.02 * rowp.max()), gap)
    if rows is None:
        return None
    # Re-derive the columns inside the chosen rows (an overlay above/below no longer counts).
    colp = active[rows[0]:rows[1]].sum(0)
    cols = _longest_run(colp >= max(2, 0.02 * colp.max()), gap) or cols
    return cols[0], rows[0], cols[1], rows[1]


def _grid_fourier(profile: np.ndarray, offset: float, scales: np.ndarray) -> np.ndarray:
    """Complex Fourier coefficients of a boundary-gradient profile at period ``scale``.

    ``profile[i]`` is the gradient between source pixels ``offset+i`` and ``offset+i+1``, i.e.
    at boundary coordinate ``offset + i + 1``.
    """
    pos = offset + np.arange(profile.size, dtype=np.float64) + 1.0
    phase = np.exp(-2j * np.pi * pos[None, :] / scales[:, None])
    return phase @ profile.astype(np.float64)


def detect_screen(frames: Sequence[np.ndarray], native: tuple[int, int] = (NATIVE_W, NATIVE_H)) -> ScreenRect:
    """Find the game screen in ``frames`` (RGB or grey uint8 arrays of one size, spread in time).

    Raises :class:`UserError` when no 10:9 region with a native pixel grid is found (a
    "talking head", a static picture, a blank video).
    """
    frames = [f for f in frames if f is not None]
    if len(frames) < 2:
        raise UserError("need at least 2 frames to find the game screen")
    shape = frames[0].shape[:2]
    if any(f.shape[:2] != shape for f in frames):
        raise ValueError("frames must all have the same size")
    nw, nh = native
    H, W = shape

    # 1. Changing region (Welford-free: sums in float64 are exact enough for <= 1000 frames).
    grays = [_gray(f) for f in frames]
    s1 = np.zeros(shape, np.float64)
    s2 = np.zeros(shape, np.float64)
    for g in grays:
        s1 += g
        s2 += g.astype(np.float64) ** 2
    n = len(grays)
    std = np.sqrt(np.maximum(s2 / n - (s1 / n) ** 2, 0.0)).astype(np.float32)
    box = _changing_box(std)
    if box is None:
        raise UserError("no game screen found: nothing changes in the sampled frames (a still image or a blank video?)")
    ax0, ay0, ax1, ay1 = box
    bw, bh = ax1 - ax0, ay1 - ay0
    s0 = max(bw / nw, bh / nh)  # static edges can only shrink one side of the box
    if s0 * nw > W * 1.04 + 2 or s0 * nh > H * 1.04 + 2:
        raise UserError(
            f"no game screen found: the changing region is {bw}x{bh} pixels (aspect {bw / bh:.2f}), which is "
            f"not a 10:9 Game Boy screen inside the {W}x{H} frame; pass --crop X,Y,W,H if the screen is there"
        )

    colmass = std[ay0:ay1].sum(0).astype(np.float64)
    rowmass = std[:, ax0:ax1].sum(1).astype(np.float64)

    if s0 < MIN_GRID_SCALE:
        # Near-native video: no measurable cell grid.  A 1x capture is by far the common case.
        s = 1.0 if abs(s0 - 1.0) < 0.15 else s0
        x0 = _place(colmass, 0.0, s, nw, ax0, ax1)
        y0 = _place(rowmass, 0.0, s, nh, ay0, ay1)
        return ScreenRect(x0, y0, s * nw, s * nh, 0.0)

    # 2. Scale: Fourier magnitude of |1st| and |2nd| difference profiles across the region.  A
    #    nearest-neighbour upscale puts |d1| on the cell boundaries; a bilinear one spreads d1
    #    evenly (no period at integer scales!) but puts its kinks, |d2|, on the cell centres.
    mx = int(np.ceil(s0)) + 1
    lx0, lx1 = max(0, ax0 - mx), min(W, ax1 + mx)
    ly0, ly1 = max(0, ay0 - mx), min(H, ay1 + mx)
    profiles: dict[str, list[np.ndarray]] = {"x1": [], "x2": [], "y1": [], "y2": []}
    for g in grays:
        rows = g[ay0:ay1, lx0:lx1]
        cols = g[ly0:ly1, ax0:ax1]
        profiles["x1"].append(np.abs(np.diff(rows, axis=1)).sum(0))
        profiles["x2"].append(np.abs(np.diff(rows, 2, axis=1)).sum(0))
        profiles["y1"].append(np.abs(np.diff(cols, axis=0)).sum(1))
        profiles["y2"].append(np.abs(np.diff(cols, 2, axis=0)).sum(1))
    scales = np.linspace(s0 * 0.95, s0 * 1.08, 1500)

    def periodicity(key: str, offset: int) -> tuple[np.ndarray, np.ndarray]:
        prof = np.sum(profiles[key], axis=0)
        f = _grid_fourier(prof, offset, scales)
        return np.abs(f) / max(float(prof.sum()), 1e-9), f

    (x1, fx1), (x2, _) = periodicity("x1", lx0), periodicity("x2", lx0)
    (y1, fy1), (y2, _) = periodicity("y1", ly0), periodicity("y2", ly0)
    sx, sy = np.maximum(x1, x2), np.maximum(y1, y2)
    best = int(np.argmax(sx + sy))
    s = float(scales[best])
    grid_score = float(min(sx[best], sy[best]))
    if grid_score < MIN_GRID_SCORE:
        raise UserError(
            f"no game screen found: the changing region {bw}x{bh} at ({ax0},{ay0}) has no native pixel grid "
            f"(grid score {grid_score:.3f} < {MIN_GRID_SCORE}); it does not look like an upscaled Game Boy screen "
            "(pass --crop X,Y,W,H to force one)"
        )
    # Sub-pixel estimates within 0.05 px of a whole number are snapped to it: uploads are almost
    # always placed and sized on whole pixels, and round numbers are easier to read and reuse.
    w = _snap(s * nw)
    s_fit, s = s, w / nw

    # 3. Phase.  Where the boundaries carry the gradient (|d1| periodic: nearest-like upscales),
    #    the Fourier phase puts them at x0 + k*s to ~0.01 px.  Otherwise (bilinear-like), take
    #    the grid offset whose cell centres give the sharpest native picture.
    step = max(1, len(grays) // 8)

    def phase(p1: np.ndarray, p2: np.ndarray, f1: np.ndarray, lines: np.ndarray, a0: int, a1: int) -> float:
        if p1[best] >= p2[best]:
            return float((-np.angle(f1[best]) / (2 * np.pi) * s_fit) % s_fit)
        return _best_phase(lines, s, a0, a1)

    phx = phase(x1, x2, fx1, np.concatenate([g[ay0:ay1:2] for g in grays[::step]], axis=0), ax0, ax1)
    phy = phase(y1, y2, fy1, np.concatenate([g[:, ax0:ax1:2].T for g in grays[::step]], axis=0), ay0, ay1)

    # 4. Whole cells: the 160x144-cell window holding the most temporal change.
    x0 = _snap(_place(colmass, phx, s, nw, ax0, ax1))
    y0 = _snap(_place(rowmass, phy, s, nh, ay0, ay1))
    rect = ScreenRect(x0, y0, w, _snap(s * nh), grid_score)
    tol = 0.5 * s + 1
    if x0 < -tol or y0 < -tol or x0 + rect.w > W + tol or y0 + rect.h > H + tol:
        raise UserError(
            f"no game screen found: the best 10:9 grid ({rect.describe()}) does not fit inside the {W}x{H} frame"
        )
    return rect


def _best_phase(lines: np.ndarray, s: float, a0: int, a1: int, steps: int = 48) -> float:
    """Grid offset in ``[0, s)`` maximising the contrast between neighbouring cell-centre samples.

    Sampling at the true cell centres reads the native values; any other offset reads blends of
    two cells (whatever the upscaler), so neighbouring samples differ less.
    """
    size = lines.shape[1]
    k0 = int(np.ceil(a0 / s)) + 1
    k1 = int(np.floor(a1 / s)) - 2
    contrast = np.zeros(steps)
    for j in range(steps):
        phase = j * s / steps
        centres = phase + (np.arange(k0, k1) + 0.5) * s - 0.5  # array coordinates
        centres = centres[(centres >= 0) & (centres <= size - 1.001)]
        i = np.floor(centres).astype(np.int64)
        f = (centres - i).astype(np.float32)
        samples = lines[:, i] * (1 - f) + lines[:, i + 1] * f
        contrast[j] = float(np.abs(np.diff(samples, axis=1)).mean())
    # Nearest-neighbour upscales give a plateau (every offset inside the cell's flat middle reads
    # the same values): take the circular centroid of the top of the curve, which is the peak
    # of a sharp (bilinear) curve and the middle of a plateau.
    lo, hi = float(contrast.min()), float(contrast.max())
    top = contrast >= lo + 0.9 * (hi - lo)
    angles = 2 * np.pi * np.arange(steps) / steps
    weights = (contrast - lo) * top
    mean = np.angle(np.sum(weights * np.exp(1j * angles)))
    return float((mean / (2 * np.pi) * s) % s)


def _place(mass: np.ndarray, phase: float, s: float, cells: int, a0: int, a1: int) -> float:
    """Start ``phase + k*s`` of the ``cells``-cell window that holds the most change ``mass``.

    Ties (a game whose outer cells never change) go to the window centred on the region.
    """
    size = mass.size
    cum = np.concatenate([[0.0], np.cumsum(mass)])
    k_centre = round(((a0 + a1) / 2.0 - cells * s / 2.0 - phase) / s)
    best_k, best_m = k_centre, -1.0
    total = float(cum[-1]) or 1.0
    for k in sorted(range(k_centre - 4, k_centre + 5), key=lambda v: abs(v - k_centre)):
        x0 = phase + k * s
        lo, hi = int(np.clip(round(x0), 0, size)), int(np.clip(round(x0 + cells * s), 0, size))
        m = float(cum[hi] - cum[lo])
        if m > best_m + 1e-4 * total:
            best_k, best_m = k, m
    return phase + best_k * s


# --------------------------------------------------------------------------- resampling
def _axis_weights(start: float, cell: float, n: int, size: int, inner: float) -> tuple[np.ndarray, np.ndarray]:
    """Per native index: source indices (n, k) and area weights (n, k) of the cell's central part."""
    centre = start + (np.arange(n, dtype=np.float64) + 0.5) * cell
    r = max(inner * cell / 2.0, 0.5)  # never narrower than one source pixel
    lo, hi = centre - r, centre + r
    k = int(np.ceil(2 * r)) + 1
    first = np.floor(lo).astype(np.int64)
    idx = first[:, None] + np.arange(k)[None, :]
    w = np.minimum(idx + 1, hi[:, None]) - np.maximum(idx, lo[:, None])
    w = np.clip(w, 0.0, None)
    # Cells that stick out of the frame (a sub-pixel rect at the canvas edge) reuse edge pixels.
    idx = np.clip(idx, 0, size - 1)
    w /= np.maximum(w.sum(1, keepdims=True), 1e-12)
    keep = w.max(0) > 0  # drop all-zero tap columns
    return idx[:, keep], w[:, keep].astype(np.float32)


class NativeSampler:
    """Precomputed resampler from one source geometry to the native grid.

    ``sampler = NativeSampler(rect, frame.shape)``; ``native = sampler(frame)`` -> uint8
    ``(144, 160, C)``.  ``inner`` is the fraction of each cell (per axis) that is averaged: 0.5
    keeps the middle half, away from edges smeared by scaling, chroma subsampling and
    compression, while still averaging several pixels against noise at large scales.
    """

    def __init__(self, rect: ScreenRect, src_shape: Sequence[int], size: tuple[int, int] = (NATIVE_W, NATIVE_H),
                 inner: float = 0.5) -> None:
        if not 0.0 < inner <= 1.0:
            raise ValueError("inner must be in (0, 1]")
        self.rect = rect
        self.src_shape = tuple(int(v) for v in src_shape[:2])
        self.size = size
        h, w = self.src_shape
        nw, nh = size
        self.ix, self.wx = _axis_weights(rect.x, rect.w / nw, nw, w, inner)
        self.iy, self.wy = _axis_weights(rect.y, rect.h / nh, nh, h, inner)
        # One gather of the (nh*ky, nw*kx) tap pixels with cv2.remap (nearest, exact integer
        # maps), a multiply by the outer product of the axis weights (times ky*kx), and an exact
        # ky x kx box sum done by cv2's integer-factor INTER_AREA: ~0.5 ms at 640x576.
        ky, kx = self.wy.shape[1], self.wx.shape[1]
        self._mapx, self._mapy = np.meshgrid(self.ix.ravel().astype(np.float32), self.iy.ravel().astype(np.float32))
        w = self.wy[:, :, None, None] * self.wx[None, None, :, :] * float(ky * kx)
        self._wimg = np.ascontiguousarray(w.reshape(nh * ky, nw * kx).astype(np.float32))
        self._wimg_c: dict[int, np.ndarray] = {}

    def _weights(self, channels: int) -> np.ndarray:
        if channels not in self._wimg_c:
            self._wimg_c[channels] = np.ascontiguousarray(np.repeat(self._wimg[:, :, None], channels, axis=2))
        return self._wimg_c[channels]

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Resample one frame (uint8 ``(H, W)`` or ``(H, W, C)`` of ``src_shape``) to the native grid."""
        if tuple(frame.shape[:2]) != self.src_shape:
            raise ValueError(f"frame is {frame.shape[:2]}, sampler was built for {self.src_shape}")
        if frame.dtype != np.uint8:
            raise ValueError(f"expected a uint8 frame, got {frame.dtype}")
        nw, nh = self.size
        taps = cv2.remap(np.ascontiguousarray(frame), self._mapx, self._mapy, cv2.INTER_NEAREST)
        weights = self._wimg if taps.ndim == 2 else self._weights(taps.shape[2])
        weighted = cv2.multiply(taps, weights, dtype=cv2.CV_32F)
        out = cv2.resize(weighted, (nw, nh), interpolation=cv2.INTER_AREA)
        return cv2.convertScaleAbs(out)  # round + saturate to uint8


@functools.lru_cache(maxsize=8)
def _cached_sampler(rect: ScreenRect, shape: tuple[int, int], size: tuple[int, int]) -> NativeSampler:
    return NativeSampler(rect, shape, size)


def resample_to_native(frame_rgb: np.ndarray, rect: ScreenRect,
                       size: tuple[int, int] = (NATIVE_W, NATIVE_H)) -> np.ndarray:
    """One-shot :class:`NativeSampler` call (the sampler is cached per rect and frame size)."""
    return _cached_sampler(rect, tuple(frame_rgb.shape[:2]), tuple(size))(frame_rgb)
