"""Colorization metrics and the two baselines every model is compared with, in pure numpy.

Pure numpy on purpose: evaluation of ONNX files, the live tools and notebooks can reuse these
without torch, and one definition serves training (validation) and ``retrocolor evaluate``.

Definitions (all per frame, then averaged over frames; "overall" = mean over *all frames*, so a
game with more frames weighs more):

* ``mse_ab``  = mean over pixels and both channels of ``((ab_pred - ab_true) / 128) ** 2``, the
  case study's metric (ab/128 is the network's output scale).
* ``delta_e`` = mean over pixels of ``sqrt(da**2 + db**2)`` in Lab units: CIE76 restricted to
  a/b, because L is the input's own and never predicted.
* ``acc10``   = share of pixels with that a/b delta E below 10 (a colour a player would call
  "the same").
* ``psnr``    = ``10 * log10(255**2 / MSE)`` in dB, where MSE is over all pixels and the three
  channels of the uint8 sRGB image rebuilt from the *true* L plus the *predicted* ab
  (``dataset.color.l_ab_to_rgb``) against the true uint8 RGB frame; capped at
  :data:`PSNR_CAP` dB when the rebuilt frame is exact.

Baselines: ``gray`` predicts ab = 0 everywhere; ``lut`` predicts the mean training ab of the
input's lightness bin (:class:`LutBaseline`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from dataset.color import AB_SCALE, l_ab_to_rgb, rgb_to_lab

METRIC_KEYS = ("mse_ab", "delta_e", "acc10", "psnr")
#: PSNR of a perfect reconstruction (MSE 0) is infinite; it is reported as this many dB.
PSNR_CAP = 100.0
#: Threshold (a/b delta E, Lab units) for ``acc10``.
ACC_THRESHOLD = 10.0


def rgb_to_lab_fast(rgb: np.ndarray) -> np.ndarray:
    """``dataset.color.rgb_to_lab`` evaluated once per *distinct colour*, then gathered.

    Game frames hold a few dozen colours, so this is ~10x faster than converting every pixel and
    bit-identical (the conversion is per pixel; we only skip repeats).
    """
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    key = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    uniq, inv = np.unique(key.ravel(), return_inverse=True)
    urgb = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], -1).astype(np.uint8)
    return rgb_to_lab(urgb)[inv.ravel()].reshape(rgb.shape)


def frame_metrics(ab_pred: np.ndarray, ab_true: np.ndarray, L_true: np.ndarray | None = None,
                  rgb_true: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-frame metrics for a batch: arrays ``(N,)`` keyed by :data:`METRIC_KEYS`.

    ``ab_pred``/``ab_true`` are ``(N, H, W, 2)`` in Lab units.  PSNR needs ``L_true`` ``(N, H, W)``
    and ``rgb_true`` ``(N, H, W, 3)`` uint8; without them it is NaN (validation skips it: the
    Lab -> RGB rebuild is the slowest part of evaluation).
    """
    ab_pred = np.asarray(ab_pred, dtype=np.float32)
    ab_true = np.asarray(ab_true, dtype=np.float32)
    if ab_pred.shape != ab_true.shape or ab_pred.ndim != 4 or ab_pred.shape[-1] != 2:
        raise ValueError(f"ab arrays must both be (N, H, W, 2), got {ab_pred.shape} and {ab_true.shape}")
    d = ab_pred.astype(np.float64) - ab_true  # float64: sums over ~10^8 pixels stay exact enough
    n = d.shape[0]
    mse_ab = ((d / AB_SCALE) ** 2).reshape(n, -1).mean(1)
    de = np.sqrt((d**2).sum(-1)).reshape(n, -1)
    out = {
        "mse_ab": mse_ab,
        "delta_e": de.mean(1),
        "acc10": (de < ACC_THRESHOLD).mean(1),
        "psnr": np.full(n, np.nan),
    }
    if L_true is not None and rgb_true is not None:
        for i in range(n):
            rebuilt = l_ab_to_rgb(L_true[i], ab_pred[i]).astype(np.float64)
            mse = ((rebuilt - rgb_true[i].astype(np.float64)) ** 2).mean()
            out["psnr"][i] = PSNR_CAP if mse == 0 else min(PSNR_CAP, 10.0 * np.log10(255.0**2 / mse))
    return out


class MetricAccumulator:
    """Collects per-frame metrics with a group label (the game) and averages them over frames."""

    def __init__(self) -> None:
        self._vals: dict[str, list[np.ndarray]] = {k: [] for k in METRIC_KEYS}
        self._groups: list[np.ndarray] = []

    def add(self, metrics: dict[str, np.ndarray], groups: Iterable[int] | np.ndarray) -> None:
        """Add one batch of :func:`frame_metrics` output with each frame's group index."""
        g = np.asarray(list(groups) if not isinstance(groups, np.ndarray) else groups, dtype=np.int64)
        for k in METRIC_KEYS:
            self._vals[k].append(np.asarray(metrics[k], dtype=np.float64))
        self._groups.append(g)

    def _cat(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        vals = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in self._vals.items()}
        groups = np.concatenate(self._groups) if self._groups else np.zeros(0, np.int64)
        return vals, groups

    @staticmethod
    def _summary(vals: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, float | int]:
        n = int(mask.sum())
        out: dict[str, float | int] = {}
        for k in METRIC_KEYS:
            v = vals[k][mask]
            v = v[~np.isnan(v)]
            out[k] = float(v.mean()) if v.size else float("nan")
        out["n_frames"] = n
        return out

    def overall(self) -> dict[str, float | int]:
        """Means over all frames added (frame-weighted), plus ``n_frames``."""
        vals, groups = self._cat()
        return self._summary(vals, np.ones(groups.shape, bool))

    def per_group(self) -> dict[int, dict[str, float | int]]:
        """``{group: means over that group's frames}`` for every group seen."""
        vals, groups = self._cat()
        return {int(g): self._summary(vals, groups == g) for g in np.unique(groups)}


class LutBaseline:
    """Mean training ab per bin of input lightness: the "luminance lookup table" baseline.

    ``bins`` equal-width bins over L in [0, 100].  Bins never seen in training fall back to the
    global mean ab.  When the input is posterised (``dmg``/``dmg4``) only 4 bins are ever filled,
    which is exactly the fair 4-entry table such an input allows.
    """

    def __init__(self, bins: int = 256) -> None:
        self.bins = int(bins)
        self._sum = np.zeros((self.bins, 2), np.float64)
        self._count = np.zeros(self.bins, np.float64)
        self.table: np.ndarray | None = None

    def _bin(self, L: np.ndarray) -> np.ndarray:
        return np.clip((np.asarray(L, dtype=np.float32) * (self.bins / 100.0)).astype(np.int64), 0, self.bins - 1)

    def update(self, L_in: np.ndarray, ab: np.ndarray) -> None:
        """Accumulate input lightness ``(..., )`` against true ab ``(..., 2)`` in Lab units."""
        idx = self._bin(L_in).ravel()
        ab = np.asarray(ab, dtype=np.float64).reshape(-1, 2)
        if idx.size != ab.shape[0]:
            raise ValueError("L_in and ab must cover the same pixels")
        self._count += np.bincount(idx, minlength=self.bins)
        self._sum[:, 0] += np.bincount(idx, weights=ab[:, 0], minlength=self.bins)
        self._sum[:, 1] += np.bincount(idx, weights=ab[:, 1], minlength=self.bins)
        self.table = None

    def fit_done(self) -> np.ndarray:
        """Finalise and return the ``(bins, 2)`` table (Lab units)."""
        total = self._count.sum()
        if total == 0:
            raise ValueError("LUT baseline fitted on no pixels")
        glob = self._sum.sum(0) / total
        table = np.where(self._count[:, None] > 0, self._sum / np.maximum(self._count, 1)[:, None], glob[None, :])
        self.table = table.astype(np.float32)
        return self.table

    @property
    def filled_bins(self) -> int:
        """How many bins saw at least one training pixel."""
        return int((self._count > 0).sum())

    def predict(self, L_in: np.ndarray) -> np.ndarray:
        """ab ``(..., 2)`` in Lab units for input lightness ``(...)``."""
        table = self.table if self.table is not None else self.fit_done()
        return table[self._bin(L_in)]


def gray_predict(L_in: np.ndarray) -> np.ndarray:
    """The gray baseline: ab = 0 for every pixel, ``(..., 2)``."""
    return np.zeros(np.asarray(L_in).shape + (2,), np.float32)


def frame_metrics_weighted(frame: np.ndarray, count: np.ndarray, ab_pred: np.ndarray, ab_true: np.ndarray,
                           L_true: np.ndarray, rgb_true: np.ndarray, n_frames: int) -> dict[str, np.ndarray]:
    """:func:`frame_metrics` (PSNR included) from *distinct pixels* with multiplicities.

    Row ``i`` stands for ``count[i]`` identical pixels of frame ``frame[i]``: true colour
    ``rgb_true[i]`` (uint8, (3,)), its ``L_true``/``ab_true`` and a prediction ``ab_pred`` that
    is the same for all of them.  A baseline's prediction depends only on the pixel's colour
    (and twin shade), so a frame's few dozen distinct colours give the exact per-pixel
    metrics (up to float summation order) at a tiny fraction of the cost.
    """
    frame = np.asarray(frame, np.int64)
    w = np.asarray(count, np.float64)
    d = np.asarray(ab_pred, np.float64) - np.asarray(ab_true, np.float64)
    npix = np.bincount(frame, weights=w, minlength=n_frames)
    sq = ((d / AB_SCALE) ** 2).sum(-1) / 2.0
    de = np.sqrt((d**2).sum(-1))
    rebuilt = l_ab_to_rgb(np.asarray(L_true)[:, None], np.asarray(ab_pred)[:, None])[:, 0].astype(np.float64)
    err = ((rebuilt - np.asarray(rgb_true, np.float64)) ** 2).sum(-1) / 3.0
    with np.errstate(invalid="ignore", divide="ignore"):
        mse_rgb = np.bincount(frame, weights=w * err, minlength=n_frames) / npix
        psnr = np.where(mse_rgb == 0, PSNR_CAP, 10.0 * np.log10(255.0**2 / mse_rgb))
        return {
            "mse_ab": np.bincount(frame, weights=w * sq, minlength=n_frames) / npix,
            "delta_e": np.bincount(frame, weights=w * de, minlength=n_frames) / npix,
            "acc10": np.bincount(frame, weights=w * (de < ACC_THRESHOLD), minlength=n_frames) / npix,
            "psnr": np.minimum(psnr, PSNR_CAP),
        }


# ----------------------------------------------------------------------------- the look of a game
# mse_ab says how far each pixel is from the truth.  A model can lower it by painting grey, which
# no player wants; these say whether a game's output *looks* like a Color game (step 7's targets).

#: a/b histogram bins per axis, over [-AB_RANGE, AB_RANGE] (sRGB's a/b lie within about +-110),
#: 11 Lab units wide.  An odd count puts grey (a = b = 0) in the middle of a bin: with a bin edge
#: at 0, a grey pixel's a/b of +-1e-6 from float rounding fell on either side of it, so the same
#: frames scored a histogram JS of 1.07 or 0.99 x grey's on two machines.
AB_BINS = 21
AB_RANGE = 115.5
#: A (tile, input shade) group is "uniform" when the output's per-channel RGB std is below this.
TILE_STD = 8.0


def colourfulness(rgb: np.ndarray) -> np.ndarray:
    """Hasler & Suesstrunk's colourfulness ``M`` per frame of uint8 RGB ``(N, H, W, 3)`` -> ``(N,)``.

    ``rg = R - G``, ``yb = (R + G) / 2 - B``; ``M = sqrt(sd_rg^2 + sd_yb^2) + 0.3 sqrt(mu_rg^2 + mu_yb^2)``.
    0 for a grey frame; about 100+ for a saturated one.
    """
    x = np.asarray(rgb, np.float64).reshape(len(rgb), -1, 3)
    rg = x[..., 0] - x[..., 1]
    yb = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    return np.sqrt(rg.std(1) ** 2 + yb.std(1) ** 2) + 0.3 * np.sqrt(rg.mean(1) ** 2 + yb.mean(1) ** 2)


def tile_uniformity(rgb: np.ndarray, shade: np.ndarray, tile: int = 8) -> tuple[int, int]:
    """(uniform groups, groups) over the (8x8 tile, input shade) groups of frames ``(N, H, W, 3)``.

    Real Color art gives each 8x8 background tile one 4-colour palette, so the pixels of one
    tile that share an input shade share one colour; a watercolour output does not.  Groups of a
    single pixel are not counted.  Tiles are aligned to the screen (a scrolled background puts
    the truth's own tile edges elsewhere, which is why the truth scores ~0.97, not 1).
    """
    rgb = np.asarray(rgb, np.float64)
    n, h, w, _ = rgb.shape
    th, tw = h // tile, w // tile
    x = rgb[:, :th * tile, :tw * tile].reshape(n, th, tile, tw, tile, 3).transpose(0, 1, 3, 2, 4, 5)
    s = np.asarray(shade)[:, :th * tile, :tw * tile].reshape(n, th, tile, tw, tile).transpose(0, 1, 3, 2, 4)
    x = x.reshape(-1, tile * tile, 3)
    s = s.reshape(-1, tile * tile).astype(np.int64)
    levels, s = np.unique(s, return_inverse=True)
    s = s.reshape(-1, tile * tile)
    k = len(levels)
    group = (np.arange(len(x))[:, None] * k + s).ravel()
    flat = x.reshape(-1, 3)
    cnt = np.bincount(group, minlength=len(x) * k)
    sums = np.stack([np.bincount(group, flat[:, c], len(x) * k) for c in range(3)], -1)
    sq = np.stack([np.bincount(group, flat[:, c] ** 2, len(x) * k) for c in range(3)], -1)
    real = cnt >= 2
    mean = sums[real] / cnt[real, None]
    var = np.maximum(sq[real] / cnt[real, None] - mean**2, 0.0)
    uniform = (np.sqrt(var) < TILE_STD).all(-1)
    return int(uniform.sum()), int(real.sum())


def ab_histogram(ab: np.ndarray) -> np.ndarray:
    """Counts of a/b ``(..., 2)`` (Lab units) in an ``AB_BINS x AB_BINS`` grid, flattened."""
    ab = np.asarray(ab, np.float64).reshape(-1, 2)
    idx = np.clip(((ab + AB_RANGE) * (AB_BINS / (2 * AB_RANGE))).astype(np.int64), 0, AB_BINS - 1)
    return np.bincount(idx[:, 0] * AB_BINS + idx[:, 1], minlength=AB_BINS * AB_BINS).astype(np.float64)


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2: 0 = same, 1 = disjoint) between two histograms."""
    p = np.asarray(p, np.float64)
    q = np.asarray(q, np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        nz = a > 0
        return float((a[nz] * np.log2(a[nz] / b[nz])).sum())

    return float(np.sqrt(max(0.0, 0.5 * kl(p, m) + 0.5 * kl(q, m))))


class LookAccumulator:
    """Per game: colourfulness of output and truth, tile uniformity, a/b histograms of both."""

    def __init__(self) -> None:
        self.games: dict[int, dict[str, Any]] = {}

    def add(self, groups: np.ndarray, rgb_out: np.ndarray, ab_out: np.ndarray, rgb_true: np.ndarray,
            ab_true: np.ndarray, shade: np.ndarray) -> None:
        """One batch: output and true RGB ``(N, H, W, 3)``, their ab, the input shade per pixel."""
        groups = np.asarray(groups)
        c_out, c_true = colourfulness(rgb_out), colourfulness(rgb_true)
        for g in np.unique(groups):
            m = groups == g
            st = self.games.setdefault(int(g), {"colour_out": 0.0, "colour_true": 0.0, "uniform": 0, "groups": 0,
                                                "uniform_true": 0, "groups_true": 0, "frames": 0,
                                                "hist_out": np.zeros(AB_BINS * AB_BINS),
                                                "hist_true": np.zeros(AB_BINS * AB_BINS)})
            st["colour_out"] += float(c_out[m].sum())
            st["colour_true"] += float(c_true[m].sum())
            u, t = tile_uniformity(rgb_out[m], shade[m])
            st["uniform"] += u
            st["groups"] += t
            u, t = tile_uniformity(rgb_true[m], shade[m])
            st["uniform_true"] += u
            st["groups_true"] += t
            st["frames"] += int(m.sum())
            st["hist_out"] += ab_histogram(ab_out[m])
            st["hist_true"] += ab_histogram(ab_true[m])

    def summary(self, g: int) -> dict[str, float | None]:
        """The look of game ``g``: ratios to the truth, and the grey baseline's histogram distance."""
        st = self.games[g]
        grey_hist = ab_histogram(np.zeros((1, 2)))
        js, js_grey = js_distance(st["hist_out"], st["hist_true"]), js_distance(grey_hist, st["hist_true"])
        return {
            "colourfulness": st["colour_out"] / st["frames"],
            "colourfulness_truth": st["colour_true"] / st["frames"],
            "colourfulness_ratio": (st["colour_out"] / st["colour_true"]) if st["colour_true"] > 0 else None,
            "hist_js": js,
            "hist_js_gray": js_grey,
            "hist_js_ratio": js / js_grey if js_grey > 0 else None,
            "tile_uniformity": st["uniform"] / st["groups"] if st["groups"] else None,
            "tile_uniformity_truth": st["uniform_true"] / st["groups_true"] if st["groups_true"] else None,
        }


# ----------------------------------------------------------------------------- the boot ROM's palettes
def _hex_palette(*colours: int) -> np.ndarray:
    return np.array([[(c >> 16) & 255, (c >> 8) & 255, c & 255] for c in colours], np.uint8)


#: Background palettes the Game Boy Color's boot ROM gives a monochrome game (colour per shade,
#: lightest first): the 12 a player picks with a button held at power-on, then 4 more of its
#: title table.  ``right+a`` is what every non-Nintendo game (all homebrew) gets by default.
#: Values as documented by The Cutting Room Floor and used by open emulators.
BOOT_PALETTES: dict[str, np.ndarray] = {
    "right+a (default)": _hex_palette(0xFFFFFF, 0x7BFF31, 0x0063C5, 0x000000),
    "up": _hex_palette(0xFFFFFF, 0xFFAD63, 0x843100, 0x000000),
    "up+a": _hex_palette(0xFFFFFF, 0xFF8484, 0x943A3A, 0x000000),
    "up+b": _hex_palette(0xFFE6C5, 0xCE9C84, 0x846B29, 0x5A3108),
    "left": _hex_palette(0xFFFFFF, 0x63A5FF, 0x0000FF, 0x000000),
    "left+a": _hex_palette(0xFFFFFF, 0x8C8CDE, 0x52528C, 0x000000),
    "left+b": _hex_palette(0xFFFFFF, 0xA5A5A5, 0x525252, 0x000000),
    "down": _hex_palette(0xFFFFA5, 0xFF9494, 0x9494FF, 0x000000),
    "down+a": _hex_palette(0xFFFFFF, 0xFFFF00, 0xFF0000, 0x000000),
    "down+b": _hex_palette(0xFFFFFF, 0xFFFF00, 0x7B4A00, 0x000000),
    "right": _hex_palette(0xFFFFFF, 0x52FF00, 0xFF4200, 0x000000),
    "right+b": _hex_palette(0x000000, 0x008484, 0xFFDE00, 0xFFFFFF),
    "title 0x05": _hex_palette(0xFFFFFF, 0xFF9C00, 0xFF0000, 0x000000),
    "title 0x08": _hex_palette(0xA59CFF, 0xFFFF00, 0x006300, 0x000000),
    "title 0x1B": _hex_palette(0xFFFFFF, 0xFFCE00, 0x9C6300, 0x000000),
    "title 0x100": _hex_palette(0xFFFFFF, 0xADAD84, 0x42737B, 0x000000),
}
BOOT_DEFAULT = "right+a (default)"


def dmg_shade(L_in: np.ndarray) -> np.ndarray:
    """Shade index 0 (lightest) .. 3 (black) of 4-level input lightness (a twin or ``dmg4``)."""
    from dataset.color import DMG_LEVELS_L

    k = np.abs(np.asarray(L_in, np.float32)[..., None] - DMG_LEVELS_L).argmin(-1)  # 0 = black
    return (3 - k).astype(np.uint8)


def boot_palette_ab() -> dict[str, np.ndarray]:
    """a/b (Lab units) of each boot palette's 4 colours: ``{name: (4, 2)}``."""
    return {name: rgb_to_lab(p)[:, 1:] for name, p in BOOT_PALETTES.items()}
