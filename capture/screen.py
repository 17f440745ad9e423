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

* :func:`fit_kernel` tells *how* the screen was upscaled: each candidate upscaler (nearest,
  area, bilinear, bicubic) gives a model ``frame = A_y @ native @ A_x.T``; the one whose best
  fit leaves the smallest residual on a few frames wins (simplest first on ties).  Emulator
  windows and sharp uploads are nearest; YouTube-style rescales are bilinear-like.
  :func:`detect_screen` stores it in :attr:`ScreenRect.kernel`.

* :class:`NativeSampler` maps a frame to 160x144 by inverting that upscaler:

  - ``nearest``: each native pixel is the average of the *central* part of its source cell
    (``inner`` of the cell's width and height), because cell edges are smeared by the
    upscaler, by 4:2:0 chroma and by compression;
  - smooth kernels: a bilinear upscale mixes every cell with its neighbours, so a plain cell
    average is blurred (and a grid half a cell off is hardly worse).  The whole-cell averages
    ``b = P @ frame`` are a known mix of the native values, ``b = (P A) native``, so
    ``native = (P A)^-1 b`` per axis: two tiny (144x144, 160x160) matrices.  This is, within
    0.1 dB on the europa-rescue longplay, the full least-squares inverse of the upscale
    (``pinv(A_y) @ frame @ pinv(A_x).T``), at a fraction of its cost (+3.5 dB over cell
    averages there).

  Both work for any non-integer scale (area-weighted partial pixels) as precomputed separable
  gathers.  Measured per 640x576 RGB frame on a busy 2-core machine: nearest 0.26-0.4 ms;
  bilinear 1.2 ms (the unmixing is ~0.6 of it); a non-integer 576x518 bilinear window ~2 ms.
  (The live filter hands integer-scale crops straight to the engine: 0.12 ms.)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from utils.errors import UserError
from utils.geometry import NATIVE_H, NATIVE_W

#: Temporal std (grey levels) above which a pixel counts as "changing"; compression noise in a
#: static black bar or logo stays well below it.
CHANGE_THRESHOLD = 4.0
#: Minimum periodicity score (|Fourier coefficient| / total gradient) of a real pixel grid.
#: Upscaled Game Boy frames score 0.2 (bilinear 2.5x) to 0.9 (nearest 2x); natural video or smooth noise
#: scores < 0.01.
MIN_GRID_SCORE = 0.04
#: Below this scale the cell grid cannot be measured; the changing region's box is used as is.
MIN_GRID_SCALE = 1.5
#: Upscalers :class:`NativeSampler` can invert, simplest first.  ``nearest``: pixel replication
#: (emulators, integer "sharp" uploads); ``area``: box overlap (boundary pixels blend two cells);
#: ``bilinear``: triangle kernel (ffmpeg/YouTube rescales); ``bicubic``: Keys cubic, a = -0.5.
KERNELS = ("nearest", "area", "bilinear", "bicubic")
#: A more complex kernel must cut the fit residual by this fraction to beat a simpler one (the
#: more flexible kernels always fit compression noise a little better).
KERNEL_MARGIN = 0.05


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
    #: the upscaler that drew the screen (one of :data:`KERNELS`; see :func:`fit_kernel`).
    #: ``nearest`` (the default) reproduces the sampling of datasets made before it existed.
    kernel: str = "nearest"

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise UserError(f"unknown upscale kernel {self.kernel!r} (expected one of {', '.join(KERNELS)})")

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
        """Human-readable ``x,y,w,h (scale s), K upscale`` for summaries."""
        x, y, w, h = (f"{v:g}" for v in self.as_list())
        return f"{x},{y},{w},{h} (scale {_r2(self.scale):g}), {self.kernel} upscale"

    def with_kernel(self, kernel: str) -> ScreenRect:
        """The same rectangle drawn by another upscaler."""
        return dataclasses.replace(self, kernel=kernel)

    @classmethod
    def from_crop(cls, crop: Sequence[float], kernel: str = "nearest") -> ScreenRect:
        """A rectangle given by the user (``--crop X,Y,W,H``)."""
        x, y, w, h = (float(v) for v in crop)
        if w <= 0 or h <= 0:
            raise UserError(f"crop must have a positive size, got {crop}")
        return cls(x, y, w, h, kernel=kernel)


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
    frames = [np.asarray(f) for f in frames if f is not None]
    if len(frames) < 2:
        raise UserError("need at least 2 frames to find the game screen")
    for f in frames:
        # The capture contract: uint8 grey, RGB or RGBA/BGRA images.  Anything else (a bool
        # mask, int64, 5 channels, a stack) is refused here, not deep inside OpenCV.
        if f.dtype != np.uint8 or f.ndim not in (2, 3) or (f.ndim == 3 and f.shape[2] not in (1, 3, 4)):
            raise UserError(f"cannot look for a game screen in a {f.dtype} array of shape {f.shape} "
                            "(expected uint8 grey, RGB or RGBA frames)")
        if min(f.shape[:2]) < 8:
            raise UserError(f"frame of {f.shape[1]}x{f.shape[0]} pixels is too small to hold a game screen")
    shape = frames[0].shape[:2]
    if any(f.shape[:2] != shape for f in frames):
        raise UserError("the sampled frames differ in size; a video's frames must all have one size")
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
    # 5. How it was upscaled, and (for blurred upscales) the phase that fits that upscaler best.
    kernel, _ = fit_kernel(grays, rect)
    return refine_phase(grays, rect.with_kernel(kernel))


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


# --------------------------------------------------------------------------- upscale models
def _cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    t = np.abs(t)
    return np.where(t <= 1, (a + 2) * t**3 - (a + 3) * t**2 + 1,
                    np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0))


def upscale_matrix(kernel: str, start: float, size: float, n: int, length: int) -> np.ndarray:
    """How ``kernel`` draws ``n`` native pixels over ``[start, start+size)`` of a ``length``-pixel axis.

    Returns ``A`` of shape ``(length, n)``: source pixel ``i`` = ``A[i] @ native``.  Rows of pixels
    whose centre lies outside the rectangle are zero (the canvas there is not the screen).  The
    conventions are those of cv2/ffmpeg: pixel centres at ``i + 0.5``; interpolating kernels
    sample native pixel centres and replicate the edge cells.
    """
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}")
    cell = size / n
    p = np.arange(length, dtype=np.float64) + 0.5
    u = (p - start) / cell  # native coordinate: cell c covers [c, c+1)
    rows = np.flatnonzero((u >= 0) & (u < n))
    u = u[rows]
    a = np.zeros((length, n))
    if kernel == "nearest":
        a[rows, np.clip(np.floor(u).astype(np.int64), 0, n - 1)] = 1.0
        return a
    if kernel == "area":
        lo, hi = u - 0.5 / cell, u + 0.5 / cell
        c0 = np.floor(lo).astype(np.int64)
        for k in range(int(np.ceil(1.0 / cell)) + 2):
            c = c0 + k
            w = np.clip(np.minimum(hi, c + 1) - np.maximum(lo, c), 0.0, None)
            np.add.at(a, (rows, np.clip(c, 0, n - 1)), w)
    else:
        v = u - 0.5  # in native pixel-centre coordinates
        taps, fn = ((0, 1), lambda t: np.clip(1.0 - np.abs(t), 0.0, None)) if kernel == "bilinear" \
            else ((-1, 0, 1, 2), _cubic)
        base = np.floor(v).astype(np.int64)
        for k in taps:
            c = base + k
            np.add.at(a, (rows, np.clip(c, 0, n - 1)), fn(v - c))
    a[rows] /= a[rows].sum(1, keepdims=True)
    return a


def _pinv(m: np.ndarray, rcond: float = 1e-3) -> np.ndarray:
    """Pseudo-inverse by OpenCV's SVD (single-threaded: NumPy's OpenBLAS threads crawl on a busy machine)."""
    w, u, vt = cv2.SVDecomp(np.ascontiguousarray(m, dtype=np.float64))
    w = w.ravel()
    inv = np.where(w > rcond * w.max(), 1.0 / np.maximum(w, 1e-300), 0.0)
    return cv2.gemm(np.ascontiguousarray(vt.T * inv[None, :]), u, 1.0, None, 0.0, flags=cv2.GEMM_2_T)


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Matrix product by cv2.gemm (steady single-threaded speed, see :func:`_pinv`)."""
    return cv2.gemm(a, b, 1.0, None, 0.0)


def _fit_setup(frames: Sequence[np.ndarray], rect: ScreenRect,
               max_frames: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray] | None:
    """Grey float32 frames with the most detail in the screen, and the interior rows/columns to fit."""
    grays = [_gray(f) for f in frames if f is not None]
    if not grays:
        raise ValueError("fitting the upscaler needs at least one frame")
    h, w = grays[0].shape
    ys = np.flatnonzero(upscale_matrix("nearest", rect.y, rect.h, NATIVE_H, h).any(1))[1:-1]
    xs = np.flatnonzero(upscale_matrix("nearest", rect.x, rect.w, NATIVE_W, w).any(1))[1:-1]
    if ys.size < 4 or xs.size < 4:
        return None
    # The frames with the most detail inside the screen (black or faded ones tell nothing).
    spread = [float(g[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1].std()) for g in grays]
    order = np.argsort(spread)[::-1][:max_frames]
    picked = [grays[i] for i in order if spread[i] > 2.0] or [grays[int(order[0])]]
    return picked, ys, xs


def _residual(grays: Sequence[np.ndarray], rect: ScreenRect, kernel: str, ys: np.ndarray, xs: np.ndarray) -> float:
    """RMS of ``frame - A_y @ solve(frame) @ A_x.T`` over rows ``ys`` x columns ``xs`` (grey levels)."""
    h, w = grays[0].shape
    sampler = NativeSampler(rect.with_kernel(kernel), (h, w))
    ay = np.ascontiguousarray(upscale_matrix(kernel, rect.y, rect.h, NATIVE_H, h)[ys], dtype=np.float32)
    ax_t = np.ascontiguousarray(upscale_matrix(kernel, rect.x, rect.w, NATIVE_W, w)[xs].T, dtype=np.float32)
    sq, count = 0.0, 0
    for g in grays:
        native = np.clip(sampler.solve(g), 0, 255)
        err = _mm(_mm(ay, native), ax_t) - g[np.ix_(ys, xs)]
        sq += float(np.square(err, dtype=np.float64).sum())
        count += err.size
    return float(np.sqrt(sq / count))


def fit_kernel(frames: Sequence[np.ndarray], rect: ScreenRect, kernels: Sequence[str] = KERNELS,
               max_frames: int = 8) -> tuple[str, dict[str, float]]:
    """The upscaler that drew the screen in ``frames``, and each candidate's fit residual.

    For each kernel the native frame is solved for (as :class:`NativeSampler` does) and drawn
    again with that kernel; the RMS difference from the source inside the rectangle (grey
    levels, one pixel in from its edges) is the residual.  The right kernel reproduces the
    frame up to compression noise; a wrong one leaves edges wrong everywhere (on the
    longplays: bilinear 2.9 vs nearest 15 on a 2.5x YouTube-style rescale, nearest 2.2 vs
    bilinear 18 on a 2x pixel-sharp one).  A later (more flexible) kernel must beat an earlier
    one by :data:`KERNEL_MARGIN`.  At scales below 1.05 every kernel is the same: ``nearest``.
    """
    if rect.scale < 1.05 and rect.scale_y < 1.05:
        return "nearest", {}
    setup = _fit_setup(frames, rect, max_frames)
    if setup is None:
        return "nearest", {}
    picked, ys, xs = setup
    residual = {k: _residual(picked, rect, k, ys, xs) for k in kernels}
    best = kernels[0]
    for k in kernels[1:]:
        if residual[k] < residual[best] * (1.0 - KERNEL_MARGIN):
            best = k
    return best, residual


def refine_phase(frames: Sequence[np.ndarray], rect: ScreenRect, span: float = 0.3, max_frames: int = 6) -> ScreenRect:
    """Shift ``rect`` by up to ``span`` source pixels per axis to minimise the fit residual.

    For smooth kernels only: the grid phase of a blurred upscale is measured to ~0.1-0.2 px by
    :func:`detect_screen`, and each 0.1 px costs ~0.2 dB (europa-rescue: residual 3.2 at
    0.13 px off, 2.9 aligned).  A nearest upscale's residual is flat inside the cell, and its
    phase comes from the sharp cell boundaries already.  Results within 0.05 px of a whole
    pixel are snapped to it, like :func:`detect_screen` does.
    """
    if rect.kernel == "nearest":
        return rect
    setup = _fit_setup(frames, rect, max_frames)
    if setup is None:
        return rect
    picked, ys, xs = setup
    steps = np.linspace(-span, span, 7)
    for axis in ("x", "y"):
        base = float(getattr(rect, axis))
        res = np.array([_residual(picked, dataclasses.replace(rect, **{axis: base + d}), rect.kernel, ys, xs)
                        for d in steps])
        i = int(np.argmin(res))
        d = float(steps[i])
        if 0 < i < len(steps) - 1:  # parabola through the minimum and its neighbours
            den = res[i - 1] - 2 * res[i] + res[i + 1]
            if den > 0:
                d += float(np.clip(0.5 * (res[i - 1] - res[i + 1]) / den, -0.5, 0.5)) * (steps[1] - steps[0])
        rect = dataclasses.replace(rect, **{axis: _snap(base + d)})
    return rect


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


def _dense(idx: np.ndarray, w: np.ndarray, size: int) -> np.ndarray:
    """The gather ``(idx, w)`` as a dense ``(n, size)`` matrix."""
    p = np.zeros((idx.shape[0], size))
    np.add.at(p, (np.repeat(np.arange(idx.shape[0]), idx.shape[1]), idx.ravel()), w.ravel().astype(np.float64))
    return p


def _whole(v: float) -> bool:
    return abs(v - round(v)) < 1e-6


class NativeSampler:
    """Precomputed resampler from one source geometry to the native grid.

    ``sampler = NativeSampler(rect, frame.shape)``; ``native = sampler(frame)`` -> uint8
    ``(144, 160, C)``.  ``kernel`` (default ``rect.kernel``) is the upscaler to invert (see the
    module docstring).  ``inner`` is the fraction of each cell (per axis) that is averaged;
    default 0.5 for ``nearest`` (the middle half, away from edges smeared by scaling, chroma
    subsampling and compression, still averaging several pixels against noise at large
    scales) and 1.0 for the smooth kernels (every pixel counts; the unmixing undoes the blur).
    """

    def __init__(self, rect: ScreenRect, src_shape: Sequence[int], size: tuple[int, int] = (NATIVE_W, NATIVE_H),
                 inner: float | None = None, kernel: str | None = None) -> None:
        kernel = kernel or rect.kernel
        if kernel not in KERNELS:
            raise ValueError(f"unknown kernel {kernel!r}")
        if inner is None:
            inner = 0.5 if kernel == "nearest" else 1.0
        if not 0.0 < inner <= 1.0:
            raise ValueError("inner must be in (0, 1]")
        self.rect = rect
        self.kernel = kernel
        self.src_shape = tuple(int(v) for v in src_shape[:2])
        self.size = size
        h, w = self.src_shape
        nw, nh = size
        self.ix, self.wx = _axis_weights(rect.x, rect.w / nw, nw, w, inner)
        self.iy, self.wy = _axis_weights(rect.y, rect.h / nh, nh, h, inner)
        # Whole cells on a rectangle of whole pixels inside the frame: the cell averages are one
        # INTER_AREA resize of the crop (exact area weights at any scale; ~0.25 ms at 640x576).
        self._crop: tuple[int, int, int, int] | None = None
        if inner == 1.0 and all(_whole(v) for v in (rect.x, rect.y, rect.w, rect.h)) \
                and rect.x >= 0 and rect.y >= 0 and rect.x + rect.w <= w and rect.y + rect.h <= h:
            self._crop = (round(rect.x), round(rect.y), round(rect.x + rect.w), round(rect.y + rect.h))
        else:
            # One gather of the (nh*ky, nw*kx) tap pixels with cv2.remap (nearest, exact integer
            # maps), a multiply by the outer product of the axis weights (times ky*kx), and an
            # exact ky x kx box sum done by cv2's integer-factor INTER_AREA: ~0.5 ms at 640x576.
            ky, kx = self.wy.shape[1], self.wx.shape[1]
            self._mapx, self._mapy = np.meshgrid(self.ix.ravel().astype(np.float32),
                                                 self.iy.ravel().astype(np.float32))
            wimg = self.wy[:, :, None, None] * self.wx[None, None, :, :] * float(ky * kx)
            self._wimg = np.ascontiguousarray(wimg.reshape(nh * ky, nw * kx).astype(np.float32))
            self._wimg_c: dict[int, np.ndarray] = {}
        # Smooth kernels: the cell averages are b = (P A) native per axis; undo that mix.  pinv
        # (rather than inv) keeps a rect hanging out of the frame (duplicate edge taps) finite.
        self._my: np.ndarray | None = None
        self._mx: np.ndarray | None = None
        if kernel != "nearest":
            my = _pinv(_mm(_dense(self.iy, self.wy, h), upscale_matrix(kernel, rect.y, rect.h, nh, h)))
            mx = _pinv(_mm(_dense(self.ix, self.wx, w), upscale_matrix(kernel, rect.x, rect.w, nw, w)))
            self._my = np.ascontiguousarray(my.astype(np.float32))
            self._mx = np.ascontiguousarray(mx.astype(np.float32))

    def _weights(self, channels: int) -> np.ndarray:
        if channels not in self._wimg_c:
            self._wimg_c[channels] = np.ascontiguousarray(np.repeat(self._wimg[:, :, None], channels, axis=2))
        return self._wimg_c[channels]

    def _check(self, frame: np.ndarray) -> None:
        if tuple(frame.shape[:2]) != self.src_shape:
            raise ValueError(f"frame is {frame.shape[:2]}, sampler was built for {self.src_shape}")
        if frame.dtype not in (np.uint8, np.float32):
            raise ValueError(f"expected a uint8 frame, got {frame.dtype}")

    def _averages(self, frame: np.ndarray) -> np.ndarray:
        """Cell averages ``(nh, nw[, C])``: float32 (whole-pixel cells: the input's dtype)."""
        nw, nh = self.size
        if self._crop is not None:
            x0, y0, x1, y1 = self._crop
            # uint8 INTER_AREA rounds the averages (<= 0.5 grey level): noise far below the
            # codec's, and it saves a float copy of the whole frame.
            return cv2.resize(frame[y0:y1, x0:x1], (nw, nh), interpolation=cv2.INTER_AREA)
        taps = cv2.remap(np.ascontiguousarray(frame), self._mapx, self._mapy, cv2.INTER_NEAREST)
        weights = self._wimg if taps.ndim == 2 else self._weights(taps.shape[2])
        weighted = cv2.multiply(taps, weights, dtype=cv2.CV_32F)
        return cv2.resize(weighted, (nw, nh), interpolation=cv2.INTER_AREA)

    def _unmix(self, plane: np.ndarray) -> np.ndarray:
        assert self._my is not None and self._mx is not None
        return cv2.gemm(_mm(self._my, plane), self._mx, 1.0, None, 0.0, flags=cv2.GEMM_2_T)

    def solve(self, frame: np.ndarray) -> np.ndarray:
        """The native frame as float32, unrounded and unclipped (for fitting and analysis)."""
        self._check(frame)
        avg = self._averages(frame).astype(np.float32, copy=False)
        if self._my is None:
            return avg
        # Per channel plane two small matmuls, My @ plane @ Mx.T (~0.5 ms for 3 planes).
        if avg.ndim == 2:
            return self._unmix(avg)
        return cv2.merge([self._unmix(p) for p in cv2.split(avg)]).reshape(avg.shape)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Resample one frame (uint8 ``(H, W)`` or ``(H, W, C)`` of ``src_shape``) to the native grid."""
        self._check(frame)
        if frame.dtype != np.uint8:
            raise ValueError(f"expected a uint8 frame, got {frame.dtype}")
        if self._my is None:
            return cv2.convertScaleAbs(self._averages(frame))  # round + saturate to uint8
        out = self.solve(frame)
        np.clip(out, 0.0, 255.0, out=out)  # the unmixing overshoots a little at hard edges
        return cv2.convertScaleAbs(out)


@functools.lru_cache(maxsize=8)
def _cached_sampler(rect: ScreenRect, shape: tuple[int, int], size: tuple[int, int]) -> NativeSampler:
    return NativeSampler(rect, shape, size)


def resample_to_native(frame_rgb: np.ndarray, rect: ScreenRect,
                       size: tuple[int, int] = (NATIVE_W, NATIVE_H)) -> np.ndarray:
    """One-shot :class:`NativeSampler` call (the sampler is cached per rect and frame size)."""
    return _cached_sampler(rect, tuple(frame_rgb.shape[:2]), tuple(size))(frame_rgb)


# --------------------------------------------------------------------------- one still frame
#: Grey-level step that counts as an edge between two neighbouring pixels of an emulator window
#: (emulators draw exact palette colours; this only ignores dithering of a few levels).
STILL_EDGE = 6
#: Largest share of a candidate's edges that may fall *inside* its cells (an emulator's nearest
#: upscale has none; an on-screen message or a cursor drawn over the picture has a few).
STILL_MAX_INSIDE = 0.02
#: Least number of cell-boundary edges a candidate must explain: a blank screen is no evidence.
STILL_MIN_EDGES = 40
#: How much an edge *outside* a candidate, or inside one of its cells, counts against it,
#: relative to one it explains (on a cell boundary).  A
#: grid shifted by whole cells into a uniform border gains the picture's outline against the
#: border (a full line of edges) and leaves picture, or that outline, outside it.
STILL_RING_WEIGHT = 16
#: Candidates per grid phase that get the (slower, per-rect) border-band check.
STILL_TOP = 24


def _edge_maps(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where neighbouring pixels differ, in any channel (two palette colours can share a grey)."""
    f = frame.astype(np.int16)
    if f.ndim == 2:
        f = f[:, :, None]
    ex = (np.abs(np.diff(f, axis=1)) > STILL_EDGE).any(axis=2)  # (H, W-1): between x and x+1
    ey = (np.abs(np.diff(f, axis=0)) > STILL_EDGE).any(axis=2)  # (H-1, W): between y and y+1
    return ex, ey


def _integral(m: np.ndarray) -> np.ndarray:
    out = np.zeros((m.shape[0] + 1, m.shape[1] + 1), np.int32)
    np.cumsum(np.cumsum(m, axis=0, dtype=np.int32), axis=1, out=out[1:, 1:])
    return out


def _box(ii: np.ndarray, y0: np.ndarray, y1: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    """Sums of the boxes ``[y0, y1) x [x0, x1)`` (broadcast) from an integral image."""
    return ii[y1, x1] - ii[y0, x1] - ii[y1, x0] + ii[y0, x0]


def _outside(Ex: np.ndarray, Ey: np.ndarray, x0: np.ndarray, y0: np.ndarray, w: int, h: int,
             H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges outside the rects not counting those across their boundary, and those across it.

    Edges outside a rect mean it cut off part of the picture: a grid shifted by whole cells into
    a uniform border still fits, but leaves picture (or the picture's outline against the
    border) outside it.  Edges across the boundary are the outline of the right rect and count
    for nothing.  Whatever else lies outside (a menu bar's text) is the same for every candidate.
    """
    total = Ex[-1, -1] + Ey[-1, -1]
    inner = _box(Ex, y0, y0 + h, x0, x0 + w - 1) + _box(Ey, y0, y0 + h - 1, x0, x0 + w)
    # pairs across the rect's four sides (pair i joins pixel i and i+1)
    lx, rx = np.maximum(x0 - 1, 0), np.minimum(x0 + w - 1, W - 2)
    ty, by = np.maximum(y0 - 1, 0), np.minimum(y0 + h - 1, H - 2)
    cut = (np.where(x0 > 0, _box(Ex, y0, y0 + h, lx, lx + 1), 0)
           + np.where(x0 + w < W, _box(Ex, y0, y0 + h, rx, rx + 1), 0)
           + np.where(y0 > 0, _box(Ey, ty, ty + 1, x0, x0 + w), 0)
           + np.where(y0 + h < H, _box(Ey, by, by + 1, x0, x0 + w), 0))
    return total - inner - cut, cut


def _border_bands(ex: np.ndarray, ey: np.ndarray, x0: int, y0: int, w: int, h: int) -> int:
    """Pixels of the rect that look like border: edge-free bands along its sides that continue
    outside it (nothing across the side), counted as band depth times side length.

    A grid shifted by whole cells into a uniform border takes in rows of that border; the right
    rect ends where the border begins.  (A side on the frame's edge has no outside: no band.)
    """
    H, W = ey.shape[0] + 1, ex.shape[1] + 1
    total = 0
    # rows: edges within each pixel row of the rect's columns, and to the row below
    rows = ex[y0:y0 + h, x0:x0 + w - 1].sum(1) + np.concatenate([ey[y0:y0 + h - 1, x0:x0 + w].sum(1), [0]])
    cols = ey[y0:y0 + h - 1, x0:x0 + w].sum(0) + np.concatenate([ex[y0:y0 + h, x0:x0 + w - 1].sum(0), [0]])
    for prof, lo_open, hi_open, across_lo, across_hi, side in (
            (rows, y0 > 0, y0 + h < H,
             lambda: ey[y0 - 1, x0:x0 + w].any(), lambda: ey[y0 + h - 1, x0:x0 + w].any(), w),
            (cols, x0 > 0, x0 + w < W,
             lambda: ex[y0:y0 + h, x0 - 1].any(), lambda: ex[y0:y0 + h, x0 + w - 1].any(), h)):
        busy = np.flatnonzero(prof > 0)
        if busy.size == 0:
            return h * w  # nothing at all inside: all border
        if lo_open and not across_lo():
            total += int(busy[0]) * side
        if hi_open and not across_hi():
            total += int(prof.size - 1 - busy[-1]) * side
    return total


def _still_integer(ex: np.ndarray, ey: np.ndarray, Ex: np.ndarray, Ey: np.ndarray, s: int,
                   native: tuple[int, int]) -> tuple[float, float, float] | None:
    """The best rect at integer scale ``s`` over all grid phases and offsets: ``(key, x0, y0)``."""
    nw, nh = native
    H, W = ey.shape[0] + 1, ex.shape[1] + 1
    w, h = nw * s, nh * s
    if w > W or h > H:
        return None
    xs, ys = np.arange(W - 1), np.arange(H - 1)
    cols = [_integral(ex & (((xs + 1 - p) % s) != 0)[None]) for p in range(s)]  # inside-cell pairs
    rows = [_integral(ey & (((ys + 1 - p) % s) != 0)[:, None]) for p in range(s)]
    best: tuple[float, float, float] | None = None
    for px in range(s):
        x0s = np.arange(px, W - w + 1, s)
        for py in range(s):
            y0s = np.arange(py, H - h + 1, s)
            if x0s.size == 0 or y0s.size == 0:
                continue
            Y0, X0 = y0s[:, None], x0s[None, :]
            total = _box(Ex, Y0, Y0 + h, X0, X0 + w - 1) + _box(Ey, Y0, Y0 + h - 1, X0, X0 + w)
            inside = _box(cols[px], Y0, Y0 + h, X0, X0 + w - 1) + _box(rows[py], Y0, Y0 + h - 1, X0, X0 + w)
            on = total - inside
            ring, cut = _outside(Ex, Ey, X0, Y0, w, h, H, W)
            ok = (inside <= STILL_MAX_INSIDE * np.maximum(total, 1)) & (on >= STILL_MIN_EDGES)
            if not ok.any():
                continue
            dist = np.abs(X0 + w / 2 - W / 2) + np.abs(Y0 + h / 2 - H / 2)
            base = np.where(ok, on + cut - STILL_RING_WEIGHT * (ring + inside), -np.inf)
            # Shifts into a uniform border tie on ``base``; the border bands inside them decide.
            for flat in np.argsort(base, axis=None)[::-1][:STILL_TOP]:
                iy, ix = np.unravel_index(int(flat), base.shape)
                if not np.isfinite(base[iy, ix]):
                    break
                x0, y0 = int(x0s[ix]), int(y0s[iy])
                k = (float(base[iy, ix]) - _border_bands(ex, ey, x0, y0, w, h)) * 4096.0 - float(dist[iy, ix])
                if best is None or k > best[0]:
                    best = (k, float(x0), float(y0))
    return best


def _still_fractional(ex: np.ndarray, ey: np.ndarray, Ex: np.ndarray, Ey: np.ndarray, x0: float, y0: float,
                      s: float, native: tuple[int, int]) -> float | None:
    """The key of one rect at a non-integer scale (None if it fails), for the better of the two
    rounding conventions nearest-neighbour scalers use (``floor(x / s)`` or ``floor((x+.5) / s)``)."""
    nw, nh = native
    H, W = ey.shape[0] + 1, ex.shape[1] + 1
    ix0, iy0 = int(round(x0)), int(round(y0))
    x1, y1 = min(int(round(x0 + nw * s)), W), min(int(round(y0 + nh * s)), H)
    sx = ex[iy0:y1, ix0:x1 - 1]
    sy = ey[iy0:y1 - 1, ix0:x1]
    total = int(sx.sum() + sy.sum())
    best = None
    for off in (0.0, 0.5):
        bx = np.diff(np.floor((np.arange(ix0, x1) + off - x0) / s)) != 0  # pairs across a cell boundary
        by = np.diff(np.floor((np.arange(iy0, y1) + off - y0) / s)) != 0
        on = int(sx[:, bx].sum() + sy[by].sum())
        if total - on <= STILL_MAX_INSIDE * max(total, 1) and on >= STILL_MIN_EDGES:
            best = max(best or -np.inf, on - STILL_RING_WEIGHT * (total - on))
    if best is None:
        return None
    ring, cut = _outside(Ex, Ey, np.array(ix0), np.array(iy0), x1 - ix0, y1 - iy0, H, W)
    dist = abs(x0 + nw * s / 2 - W / 2) + abs(y0 + nh * s / 2 - H / 2)
    bands = _border_bands(ex, ey, ix0, iy0, x1 - ix0, y1 - iy0)
    return float((best + int(cut) - STILL_RING_WEIGHT * int(ring) - bands) * 4096.0 - dist)


def detect_screen_still(frame: np.ndarray, native: tuple[int, int] = (NATIVE_W, NATIVE_H),
                        max_scale: int = 8) -> ScreenRect | None:
    """Find an emulator's nearest-neighbour-upscaled screen in *one* frame; None if there is none.

    :func:`detect_screen` needs motion, which a paused game, a menu or a title screen does not
    give, and a live filter cannot wait for.  An emulator draws each native pixel as an exact
    ``s x s`` block (or, at a non-integer scale, blocks of ``floor``/``ceil(s)`` pixels), so a
    candidate rectangle is right when the frame's edges fall on its cell boundaries and almost
    none inside its cells.  Candidates: every integer scale and grid phase (all offsets at once
    through integral images), and the non-integer scales that make the screen span the frame's
    width or height.  Of those that pass, the largest scale wins; then the one explaining the
    most edges; then the one nearest the frame's centre (a uniform border is ambiguous by whole
    cells).  Returns None for blank frames, smooth (bilinear) upscales and anything not pixel art.
    """
    f = np.asarray(frame)
    if f.dtype != np.uint8 or f.ndim not in (2, 3) or min(f.shape[:2]) < 8:
        return None
    if f.ndim == 3 and f.shape[2] == 4:
        f = f[:, :, :3]
    nw, nh = native
    H, W = f.shape[:2]
    ex, ey = _edge_maps(f)
    Ex, Ey = _integral(ex), _integral(ey)
    found: list[tuple[float, float, float, float]] = []  # (scale, key, x0, y0)
    for s in range(max_scale, 0, -1):
        if s == 1 and (W > nw + 32 or H > nh + 32):
            continue  # at 1x every grid fits: only a frame that is (nearly) the bare screen says so
        got = _still_integer(ex, ey, Ex, Ey, s, native)
        if got is not None:
            found.append((float(s), *got))
            break  # the largest scale that fits wins: a 3x screen also fits a 1x grid
    # Non-integer: the screen spans the width (slack in y) or the height (slack in x).
    for s, along_x in ((W / nw, False), (H / nh, True)):
        if s < 1 or abs(s - round(s)) < 1e-6 or nw * s > W + 1e-6 or nh * s > H + 1e-6:
            continue
        if found and found[0][0] > s:
            continue
        slack = (W - nw * s) if along_x else (H - nh * s)
        steps = np.unique(np.round(np.linspace(0, slack, min(int(slack) + 1, 64)))) if slack >= 1 else [0.0]
        for p in steps:
            x0, y0 = (float(p), 0.0) if along_x else (0.0, float(p))
            key = _still_fractional(ex, ey, Ex, Ey, x0, y0, s, native)
            if key is not None:
                found.append((s, key, x0, y0))
    if not found:
        return None
    s, key, x0, y0 = max(found)
    return ScreenRect(x0, y0, nw * s, nh * s, 1.0)  # score 1: an exact grid, not a periodicity estimate
