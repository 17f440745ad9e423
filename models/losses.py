"""Losses for the colorization nets: regression (MSE / L1 / Huber) and classification over ab bins.

Why classification: a regression loss on ab rewards the *mean* of all plausible colours, which is
a greyish brown for anything ambiguous.  Pixel-art games paint a tile one flat, saturated colour,
so we follow Zhang et al. ("Colorful Image Colorization", 2016): quantise ab into bins, predict a
distribution over the bins, train it with cross-entropy, and re-weight rare (saturated) bins so
the net is not rewarded for always answering "grey".  The net decodes the distribution back to
one ab in its own graph (annealed mean), so export and inference never see the bins.

Everything here works in the network's normalised units: ``ab / 128`` (see ``dataset.color``).

    >>> bins = ABBins()                                  # ~10 Lab-unit grid, in-gamut bins only
    >>> w = class_rebalance_weights(train_ab, bins)      # once, from the training set's ab
    >>> loss, parts = compute_loss(model.forward_train(x), target_ab, kind="ce+l1", class_weights=w)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import numpy as np
import torch
from torch.nn import functional as F

from dataset.color import AB_SCALE, normalize_ab, rgb_to_lab

LOSS_KINDS = ("mse", "l1", "huber", "ce", "ce+l1")

#: Zhang et al.'s soft-encoding width, 5 Lab units, in ab/128 units.
ZHANG_SIGMA = 5.0 / AB_SCALE


# ----------------------------------------------------------------------------------- the ab bins
@functools.lru_cache(maxsize=8)
def _gamut_mask(size: float, k: int) -> np.ndarray:
    """Boolean (2k+1, 2k+1) grid: which ab bins hold at least one 8-bit sRGB colour.

    The ab projection of the RGB cube is bounded by the cube's surface, so the surface is sampled
    at full 8-bit resolution (where the thin edge bins live) and the interior on a coarse lattice.
    Cached: every model and loss with the same bin size shares one computation (~0.1 s).
    """
    v = np.arange(256, dtype=np.uint8)
    a, b = np.meshgrid(v, v, indexing="ij")
    faces = []
    for fixed in (0, 255):
        c = np.full_like(a, fixed)
        faces += [np.stack([c, a, b], -1), np.stack([a, c, b], -1), np.stack([a, b, c], -1)]
    inner = np.arange(0, 256, 5, dtype=np.uint8)
    cube = np.stack(np.meshgrid(inner, inner, inner, indexing="ij"), -1)
    rgb = np.concatenate([f.reshape(-1, 3) for f in faces] + [cube.reshape(-1, 3)])
    ab = normalize_ab(rgb_to_lab(rgb)[:, 1:])
    idx = np.clip(np.rint(ab / size).astype(np.int64), -k, k) + k
    mask = np.zeros((2 * k + 1, 2 * k + 1), bool)
    mask[idx[:, 0], idx[:, 1]] = True
    return mask


class ABBins:
    """A square grid of ab bins (in ab/128 units), optionally restricted to the sRGB gamut.

    Bin ``(i, j)`` is centred on ``(i * size, j * size)`` for ``|i|, |j| <= k`` with
    ``k = floor(1 / size)``; values beyond the grid are clipped into the edge bins.  With
    ``gamut=True`` (the default) only bins that contain some sRGB colour become classes (313 for
    Zhang's 10-unit grid; here ``size=0.08`` is 10.24 units), so the net never spends logits on
    colours no screen can show.  A grid cell outside the gamut maps to the nearest class.

    Encoding is O(1) per pixel (rounding plus a lookup table), never a search over all bins,
    so full training batches can be encoded at full resolution.
    """

    def __init__(self, size: float = 0.08, gamut: bool = True, centers: torch.Tensor | None = None) -> None:
        if not 0.01 <= size <= 1.0:
            raise ValueError(f"bin size must be in [0.01, 1] (ab/128 units), got {size}")
        self.size = float(size)
        self.k = int(math.floor(1.0 / size + 1e-6))
        n = 2 * self.k + 1
        if centers is not None:
            cell = torch.round(centers.double().cpu() / self.size).long() + self.k
            if cell.min() < 0 or cell.max() >= n:
                raise ValueError("bin centres do not lie on the grid of this bin size")
            mask = np.zeros((n, n), bool)
            mask[cell[:, 0].numpy(), cell[:, 1].numpy()] = True
            order = cell[:, 0] * n + cell[:, 1]
            if not torch.equal(order, torch.sort(order).values):
                raise ValueError("bin centres must be in row-major grid order")
        else:
            mask = _gamut_mask(self.size, self.k) if gamut else np.ones((n, n), bool)
        self.mask = mask
        ii, jj = np.nonzero(mask)  # row-major: class order is the grid order
        grid = np.arange(-self.k, self.k + 1, dtype=np.float64) * self.size
        self.centers = torch.tensor(np.stack([grid[ii], grid[jj]], 1), dtype=torch.float32)
        # Lookup table grid cell -> class: a cell's own class, else the nearest class centre.
        gi, gj = np.meshgrid(grid, grid, indexing="ij")
        cells = np.stack([gi.ravel(), gj.ravel()], 1)
        d = ((cells[:, None, :] - self.centers.numpy()[None].astype(np.float64)) ** 2).sum(-1)
        self.lut = torch.from_numpy(d.argmin(1).reshape(n, n).astype(np.int64))

    @classmethod
    def from_centers(cls, centers: torch.Tensor) -> ABBins:
        """Rebuild the bins from a model's ``ab_bins`` buffer (Q, 2), inferring the grid size."""
        c = centers.detach().double().cpu()
        steps = torch.cat([c[:, 0], c[:, 1]]).unique()
        size = float(torch.diff(steps).min()) if steps.numel() > 1 else 1.0
        return cls(size=round(size, 6), centers=c.float())

    @property
    def num_bins(self) -> int:
        """Q, the number of classes."""
        return int(self.centers.shape[0])

    def _cell(self, ab: torch.Tensor) -> torch.Tensor:
        """(B, 2, H, W) ab -> (B, 2, H, W) integer grid coordinates in [0, 2k]."""
        return (torch.round(ab / self.size).long().clamp(-self.k, self.k) + self.k)

    def encode(self, ab: torch.Tensor) -> torch.Tensor:
        """Hard targets: (B, 2, H, W) ab/128 -> (B, H, W) class indices (nearest in-gamut bin)."""
        cell = self._cell(ab)
        n = 2 * self.k + 1
        return self.lut.to(ab.device).view(-1)[cell[:, 0] * n + cell[:, 1]]

    def decode(self, idx: torch.Tensor) -> torch.Tensor:
        """Class indices (B, H, W) -> bin centres (B, 2, H, W)."""
        return self.centers.to(idx.device)[idx].permute(0, 3, 1, 2).contiguous()

    def soft_encode(self, ab: torch.Tensor, sigma: float = ZHANG_SIGMA) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft targets as Zhang et al.: Gaussian weights on the bins around each pixel's ab.

        Returns ``(idx, wts)``, both (B, 9, H, W): the classes of the 3x3 grid neighbourhood of
        the nearest cell (Zhang's 5 nearest neighbours always lie in it) and their normalised
        Gaussian weights.  Sparse on purpose: a dense (B, Q, H, W) target at full resolution
        would need gigabytes for a training batch.
        """
        cell = self._cell(ab)
        n = 2 * self.k + 1
        lut = self.lut.to(ab.device).view(-1)
        centers = self.centers.to(ab.device)
        idxs, d2s = [], []
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                ci = (cell[:, 0] + di).clamp(0, n - 1)
                cj = (cell[:, 1] + dj).clamp(0, n - 1)
                q = lut[ci * n + cj]
                c = centers[q].permute(0, 3, 1, 2)
                idxs.append(q)
                d2s.append(((c - ab) ** 2).sum(1))
        idx = torch.stack(idxs, 1)
        logw = -torch.stack(d2s, 1) / (2.0 * sigma * sigma)
        # Neighbours clamped at the grid edge or mapped to the same class would be counted
        # twice; keep each class once (the first occurrence) so the weights stay a distribution.
        dup = torch.zeros_like(idx, dtype=torch.bool)
        for a in range(1, 9):
            dup[:, a] = (idx[:, a:a + 1] == idx[:, :a]).any(1)
        logw = logw.masked_fill(dup, float("-inf"))
        return idx, torch.softmax(logw, dim=1)

    def group_distribution(self, ab: torch.Tensor, group: torch.Tensor, n_groups: int, soft: bool = True,
                           sigma: float = ZHANG_SIGMA) -> tuple[torch.Tensor, torch.Tensor]:
        """Target distribution (B, Q, G) for logits over groups of pixels, and each group's pixel count (B, G).

        ``group`` (B, H, W) names each pixel's group (e.g. a tile-palette net's (8x8 tile, shade)
        groups).  As :meth:`target_distribution`, a group's target is the average of its pixels'
        distributions; groups with no pixels get an all-zero row and a count of 0.
        """
        B = ab.shape[0]
        if soft:
            idx, wts = self.soft_encode(ab, sigma)
        else:
            idx, wts = self.encode(ab)[:, None], torch.ones_like(ab[:, :1])
        g = group.long().reshape(B, 1, -1)
        flat = (idx.reshape(B, idx.shape[1], -1) * n_groups + g).reshape(B, -1)
        out = torch.zeros(B, self.num_bins * n_groups, device=ab.device, dtype=wts.dtype)
        out.scatter_add_(1, flat, wts.reshape(B, -1))
        count = torch.zeros(B, n_groups, device=ab.device, dtype=wts.dtype)
        count.scatter_add_(1, g.reshape(B, -1), torch.ones_like(g.reshape(B, -1), dtype=wts.dtype))
        out = out.view(B, self.num_bins, n_groups) / count.clamp_min(1.0)[:, None]
        return out, count

    def target_distribution(self, ab: torch.Tensor, out_hw: tuple[int, int], soft: bool = True,
                            sigma: float = ZHANG_SIGMA) -> torch.Tensor:
        """Dense target distribution (B, Q, h, w) for logits at ``out_hw``, from full-res ab.

        Each low-resolution cell gets the *average of its pixels' distributions* (not the
        distribution of their average colour): a 4x4 block straddling a red/blue edge becomes
        "half red, half blue", never purple, which is what hard-edged pixel art needs.
        """
        B, _, H, W = ab.shape
        h, w = out_hw
        if H % h or W % w:
            # Non-integer factor: resample the colours themselves (rare; only odd sizes).
            ab = F.interpolate(ab, size=(h, w), mode="area")
            H, W = h, w
        sy, sx = H // h, W // w
        if soft:
            idx, wts = self.soft_encode(ab, sigma)
        else:
            idx, wts = self.encode(ab)[:, None], torch.ones_like(ab[:, :1])
        ys = torch.arange(H, device=ab.device) // sy
        xs = torch.arange(W, device=ab.device) // sx
        pos = (ys[:, None] * w + xs[None, :]).view(1, 1, H, W)
        flat = (idx * (h * w) + pos).reshape(B, -1)
        out = torch.zeros(B, self.num_bins * h * w, device=ab.device, dtype=wts.dtype)
        out.scatter_add_(1, flat, wts.reshape(B, -1) / (sy * sx))
        return out.view(B, self.num_bins, h, w)


def class_rebalance_weights(ab: np.ndarray | torch.Tensor, bins: ABBins | torch.Tensor | None = None,
                            lam: float = 0.5, sigma: float = ZHANG_SIGMA) -> torch.Tensor:
    """Zhang et al.'s class-rebalancing weights (Q,) from the training set's ab/128 values.

    ``ab`` is (N, 2) or (B, 2, H, W) (a random subset of training pixels is plenty).  The bin
    histogram is smoothed with a Gaussian of ``sigma`` (5 Lab units), mixed with a uniform
    distribution (``lam`` = 0.5 as the paper), inverted, and normalised so the *expected* weight
    under the data distribution is 1: the loss keeps its scale while rare saturated colours count
    as much as the dominant background greys.  ``bins`` may be an :class:`ABBins` or a model's
    ``ab_bins`` centres tensor; ``None`` means the default ``ABBins()``.
    """
    if bins is None:
        bins = ABBins()
    elif isinstance(bins, torch.Tensor):
        bins = ABBins.from_centers(bins)
    t = torch.as_tensor(np.asarray(ab, dtype=np.float32) if not isinstance(ab, torch.Tensor) else ab)
    t = t.detach().float().cpu()
    if t.ndim == 4:
        t = t.permute(0, 2, 3, 1).reshape(-1, 2)
    if t.ndim != 2 or t.shape[1] != 2 or t.shape[0] == 0:
        raise ValueError(f"ab must be (N, 2) or (B, 2, H, W) and non-empty, got {tuple(t.shape)}")
    q = bins.encode(t.T.reshape(1, 2, -1, 1)).view(-1)
    n = 2 * bins.k + 1
    hist = torch.bincount(q, minlength=bins.num_bins).double()
    # Smooth on the 2-D grid (separable Gaussian), then read back the in-gamut cells.
    grid = torch.zeros(n * n, dtype=torch.float64)
    ii, jj = np.nonzero(bins.mask)
    cells = torch.from_numpy(ii * n + jj)
    grid[cells] = hist
    s = sigma / bins.size
    r = max(1, int(math.ceil(3 * s)))
    g = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float64) ** 2 / (2 * s * s))
    g = g / g.sum()
    img = grid.view(1, 1, n, n)
    img = F.conv2d(F.pad(img, (r, r, 0, 0)), g.view(1, 1, 1, -1))
    img = F.conv2d(F.pad(img, (0, 0, r, r)), g.view(1, 1, -1, 1))
    p = img.view(-1)[cells]
    p = p / p.sum()
    w = 1.0 / ((1.0 - lam) * p + lam / bins.num_bins)
    w = w / (p * w).sum()
    return w.float()


# ----------------------------------------------------------------------------------- the loss
@functools.lru_cache(maxsize=8)
def _bins_for(key: tuple[float, ...]) -> ABBins:
    return ABBins.from_centers(torch.tensor(key, dtype=torch.float32).view(-1, 2))


def _resolve_bins(out: Mapping[str, torch.Tensor], bins: ABBins | None, q: int) -> ABBins:
    if bins is None:
        centers = out.get("ab_bins")
        if centers is None:
            bins = ABBins()
        else:
            bins = _bins_for(tuple(centers.detach().cpu().reshape(-1).tolist()))
    if bins.num_bins != q:
        raise ValueError(f"ab_logits have {q} classes but the bins have {bins.num_bins}")
    return bins


def compute_loss(out: Mapping[str, torch.Tensor], target_ab: torch.Tensor, game: torch.Tensor | None = None,
                 kind: str = "mse", class_weights: torch.Tensor | None = None, *, bins: ABBins | None = None,
                 soft: bool = True, l1_weight: float = 1.0, huber_delta: float = 0.1,
                 game_weight: float = 0.05) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss for one batch; returns ``(loss, parts)`` with ``parts`` as floats for logs.

    ``out`` is ``model.forward_train(x)``: ``"ab"`` (B, 2, H, W) always, ``"ab_logits"``
    (B, Q, h, w) for the classification kinds, ``"ab_bins"`` (Q, 2) where the model has its own
    bins (else pass ``bins``, or the default ``ABBins()`` is assumed), ``"game_logits"`` (B, G)
    for the fusion auxiliary head.  ``target_ab`` is (B, 2, H, W) ab/128.

    kinds:
      * ``"mse"``, ``"l1"``, ``"huber"`` (``huber_delta`` in ab/128 units): regression on ``"ab"``.
      * ``"ce"``: cross-entropy of ``"ab_logits"`` against the (soft, Zhang) encoded target.  The
        logits may be coarser than the target (a unet predicts them at 1/4 resolution): each
        low-res cell's target is the average of its pixels' distributions.  ``class_weights``
        (Q,) from :func:`class_rebalance_weights` weight each cell by the expected weight of its
        target (Zhang's per-pixel weight, generalised to mixed cells).
      * ``"ce+l1"``: ``"ce"`` plus ``l1_weight`` times the L1 of the decoded ``"ab"`` (which also
        trains anything after the logits, e.g. a full-resolution edge-refinement head).

    If ``game`` (B,) class indices is given and ``out`` has ``"game_logits"`` with more than one
    class, ``game_weight`` times its cross-entropy is added (the fusion net's auxiliary task).
    """
    if kind not in LOSS_KINDS:
        raise ValueError(f"unknown loss kind {kind!r}; known: {', '.join(LOSS_KINDS)}")
    ab = out["ab"]
    if ab.shape[-2:] != target_ab.shape[-2:]:
        target_full = F.interpolate(target_ab, size=ab.shape[-2:], mode="area")
    else:
        target_full = target_ab
    parts: dict[str, float] = {}
    total = ab.new_zeros(())
    if kind == "mse":
        total = F.mse_loss(ab, target_full)
        parts["mse"] = float(total.detach())
    elif kind == "l1":
        total = F.l1_loss(ab, target_full)
        parts["l1"] = float(total.detach())
    elif kind == "huber":
        total = F.huber_loss(ab, target_full, delta=huber_delta)
        parts["huber"] = float(total.detach())
    else:
        ce = _group_ce(out, target_ab, bins, soft, class_weights) if "group_logits" in out \
            else _pixel_ce(out, target_ab, bins, soft, class_weights, kind)
        parts["ce"] = float(ce.detach())
        total = ce
        if kind == "ce+l1":
            l1 = F.l1_loss(ab, target_full)
            parts["l1"] = float(l1.detach())
            total = total + l1_weight * l1
    return _with_game(out, game, game_weight, total, parts)


def _pixel_ce(out: Mapping[str, torch.Tensor], target_ab: torch.Tensor, bins: ABBins | None, soft: bool,
              class_weights: torch.Tensor | None, kind: str) -> torch.Tensor:
    """Cross-entropy of per-pixel ``ab_logits`` (B, Q, h, w) against the soft-encoded targets."""
    logits = out.get("ab_logits")
    if logits is None:
        raise ValueError(f"loss {kind!r} needs a model with 'ab_logits' (e.g. unet); use mse/l1/huber")
    b = _resolve_bins(out, bins, logits.shape[1])
    with torch.no_grad():
        z = b.target_distribution(target_ab.float(), tuple(logits.shape[-2:]), soft=soft)
    logp = F.log_softmax(logits.float(), dim=1)
    ce_px = -(z * logp).sum(1)  # (B, h, w)
    if class_weights is not None:
        ce_px = ce_px * (z * class_weights.to(z).view(1, -1, 1, 1)).sum(1)
    return ce_px.mean()


def _with_game(out: Mapping[str, torch.Tensor], game: torch.Tensor | None, game_weight: float,
               total: torch.Tensor, parts: dict[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
    """Add the auxiliary game-class term where the model has one; the ``(loss, parts)`` pair."""
    gl = out.get("game_logits")
    if game is not None and gl is not None and gl.shape[1] > 1:
        g = F.cross_entropy(gl, game.long().to(gl.device))
        parts["game"] = float(g.detach())
        total = total + game_weight * g
    parts["total"] = float(total.detach())
    return total, parts


def _group_ce(out: Mapping[str, torch.Tensor], target_ab: torch.Tensor, bins: ABBins | None, soft: bool,
              class_weights: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy of ``group_logits`` (B, Q, G): each pixel group against its pixels' mean target.

    Weighted by the groups' pixel counts, so it is the per-pixel mean of the unet's CE, with a
    group's pixels sharing one prediction.
    """
    logits, group = out["group_logits"], out["group_index"]
    b = _resolve_bins(out, bins, logits.shape[1])
    with torch.no_grad():
        z, count = b.group_distribution(target_ab.float(), group, logits.shape[2], soft=soft)
    logp = F.log_softmax(logits.float(), dim=1)
    ce_g = -(z * logp).sum(1)                                           # (B, G)
    if class_weights is not None:
        ce_g = ce_g * (z * class_weights.to(z).view(1, -1, 1)).sum(1)
    return (ce_g * count).sum() / count.sum().clamp_min(1.0)
