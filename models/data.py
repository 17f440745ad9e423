"""Training tensors and augmentation: frames -> (L/100 input, ab/128 target) batches.

Frames are decoded once (``dataset.loader.load_frames``, optionally through its uint8 cache) and
converted to Lab once, into float16 tensors (6 bytes per pixel: the whole 21-game set is ~2.3 GB,
and float16 keeps L and ab to ~0.06 Lab units, far below what a colour error is measured in).
Batches are then gathered and augmented on tensors, never re-decoded.

Augmentation randomness is drawn for the *global* batch from one ``torch.Generator`` and each
DDP rank takes its slice, so a 2-process run sees exactly the samples a 1-process run sees, and
a resumed run replays exactly the draws of an uninterrupted one.

Augmentations:

* random crop (a square, multiple of 8, so every net's down/up-sampling lines up);
* horizontal flip;
* "DMG look": L posterised to the 4 monochrome shades (the L of greys 0/85/170/255,
  ``dataset.color.DMG_LEVELS_L``) with randomly jittered thresholds, so a net trained on colour
  frames also works on what a monochrome Game Boy shows;
* real twin: where a frame has a real monochrome twin, its L replaces the input (the real use
  case: a DMG game's own shades, which need not be monotonic in the colour frame's L).
* "unknown palette" (``l_remap``): L goes through a random monotone piecewise-linear curve, so
  the exact lightness values no longer name the colours the game uses while every edge and
  shape stays.  The target is still the frame's true ab, so on these samples a net must colour
  from structure alone.  It is the situation of a game never seen in training, whose palette's
  lightness values mean nothing to a lookup (see ``models.archs.UNetLut``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from dataset.color import DMG_LEVELS_L, gray_to_l, normalize_ab, normalize_l
from dataset.loader import FrameSet
from models.metrics import rgb_to_lab_fast

#: Threshold ranges (L units) for the DMG-look augmentation: one uniform draw per threshold,
#: around the fixed (25, 50, 75) used by the ``dmg4`` evaluation input.
DMG_THRESHOLD_RANGES = ((12.0, 38.0), (38.0, 62.0), (62.0, 88.0))

_DMG_LEVELS = torch.from_numpy(np.asarray(DMG_LEVELS_L, np.float32))
_GRAY_L = torch.from_numpy(gray_to_l(np.arange(256, dtype=np.uint8)).astype(np.float32))


def holdout_split(fs: FrameSet, fraction: float = 0.1, gap: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): the last ``fraction`` of each game in play order is validation.

    Contiguous time blocks, never random frames: neighbouring frames are near copies, so a random
    split would measure memorisation.  ``gap`` frames just before each held-out block are dropped
    from both sides against that leakage.  Games with fewer than ``ceil(1 / fraction)`` frames
    hold none out.  Frame order within a game is the loader's (file names sort in play order).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError("fraction must be in [0, 1)")
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for g in range(len(fs.games)):
        idx = np.nonzero(fs.game == g)[0]
        n = idx.size
        k = int(math.ceil(n * fraction)) if fraction > 0 and n >= math.ceil(1.0 / fraction) else 0
        if k == 0:
            train.append(idx)
            continue
        val.append(idx[n - k:])
        train.append(idx[:max(0, n - k - gap)])
    cat = lambda parts: np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
    return cat(train), cat(val)


@dataclass
class Augment:
    """What the batch builder may do; all probabilities per sample."""

    crop: int | None = None
    hflip: bool = False
    dmg_aug: float = 0.0
    twin_prob: float = 0.0
    l_remap: float = 0.0


class TensorData:
    """A FrameSet as float16 tensors: ``L`` (N, 1, H, W), ``ab`` (N, 2, H, W) in Lab units.

    ``twin_L`` (N, 1, H, W) float16 is the L of the monochrome twin where ``has_twin``.
    ``game`` (N,) int64.  Conversion goes through :func:`models.metrics.rgb_to_lab_fast`, i.e.
    ``dataset.color.rgb_to_lab``.
    """

    def __init__(self, fs: FrameSet, chunk: int = 256, show_progress: bool = False) -> None:
        n, h, w, _ = fs.rgb.shape
        self.L = torch.empty((n, 1, h, w), dtype=torch.float16)
        self.ab = torch.empty((n, 2, h, w), dtype=torch.float16)
        from utils.progress import progress

        starts = range(0, n, chunk)
        for s in progress(starts, desc="Lab conversion", unit="chunk", disable=None if show_progress else True):
            lab = torch.from_numpy(rgb_to_lab_fast(fs.rgb[s:s + chunk]))
            self.L[s:s + chunk, 0] = lab[..., 0].to(torch.float16)
            self.ab[s:s + chunk] = lab[..., 1:].permute(0, 3, 1, 2).to(torch.float16)
        self.game = torch.from_numpy(np.asarray(fs.game, np.int64))
        if fs.dmg is not None and fs.has_dmg is not None and fs.has_dmg.any():
            self.has_twin = torch.from_numpy(np.asarray(fs.has_dmg, bool))
            self.twin_L = _GRAY_L[torch.from_numpy(fs.dmg).long()].to(torch.float16).unsqueeze(1)
        else:
            self.has_twin = torch.zeros(n, dtype=torch.bool)
            self.twin_L = None
        self.games = list(fs.games)
        self.names = list(fs.names)

    def __len__(self) -> int:
        return int(self.L.shape[0])

    @property
    def hw(self) -> tuple[int, int]:
        """(H, W) of every frame."""
        return int(self.L.shape[2]), int(self.L.shape[3])


def sample_params(n: int, gen: torch.Generator, aug: Augment, hw: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Random augmentation parameters for ``n`` samples (a global batch), drawn from ``gen``.

    Always draws the same number of values whatever ``aug`` enables, so turning one
    augmentation off does not shift the others' random streams.  The one exception is
    ``l_remap``, added later: its values are drawn only when it is on, so runs without it
    replay exactly what they did before it existed.
    """
    h, w = hw
    c = aug.crop
    u = torch.rand((n, 8), generator=gen, dtype=torch.float64)
    p: dict[str, torch.Tensor] = {}
    if c is not None and (c < h or c < w):
        ch, cw = min(c, h), min(c, w)
        p["oy"] = (u[:, 0] * (h - ch + 1)).long().clamp(max=h - ch)
        p["ox"] = (u[:, 1] * (w - cw + 1)).long().clamp(max=w - cw)
    p["flip"] = (u[:, 2] < 0.5) & aug.hflip
    p["dmg"] = u[:, 3] < aug.dmg_aug
    p["twin"] = u[:, 4] < aug.twin_prob
    lo = torch.tensor([r[0] for r in DMG_THRESHOLD_RANGES], dtype=torch.float64)
    hi = torch.tensor([r[1] for r in DMG_THRESHOLD_RANGES], dtype=torch.float64)
    p["thr"] = (lo + u[:, 5:8] * (hi - lo)).float()
    if aug.l_remap > 0:
        v = torch.rand((n, 1 + REMAP_KNOTS), generator=gen, dtype=torch.float64)
        p["remap"] = v[:, 0] < aug.l_remap
        p["remap_y"] = (torch.sort(v[:, 1:], dim=1).values * 100.0).float()
    return p


#: Knots of the ``l_remap`` curve, evenly spaced over L in [0, 100].
REMAP_KNOTS = 5


def remap_tensor(L: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """L (B, 1, H, W) in L units through per-sample monotone piecewise-linear curves.

    ``ys`` (B, K) are the curve's values (non-decreasing) at K evenly spaced knots over [0, 100].
    """
    k = ys.shape[1]
    step = 100.0 / (k - 1)
    pos = (L / step).clamp(0, k - 1 - 1e-6)
    seg = pos.floor().long()
    t = pos - seg
    y = ys.to(L.device, L.dtype).view(-1, k, 1, 1)
    lo = torch.gather(y.expand(-1, -1, *L.shape[2:]), 1, seg)
    hi = torch.gather(y.expand(-1, -1, *L.shape[2:]), 1, seg + 1)
    return lo + (hi - lo) * t


def posterize_tensor(L: torch.Tensor, thr: torch.Tensor) -> torch.Tensor:
    """Posterise L (B, 1, H, W) in L units with per-sample thresholds (B, 3) to the DMG levels.

    Same rule as ``dataset.color.posterize_l`` (``np.digitize``: a value equal to a threshold
    goes up), so fixed thresholds (25, 50, 75) reproduce the ``dmg4`` evaluation input.
    """
    t = thr.to(L.device, L.dtype).view(-1, 3, 1, 1)
    idx = (L >= t[:, 0:1]).long() + (L >= t[:, 1:2]).long() + (L >= t[:, 2:3]).long()
    return _DMG_LEVELS.to(L.device)[idx]


def build_batch(data: TensorData, idx: torch.Tensor, params: dict[str, torch.Tensor], aug: Augment,
                device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gather and augment samples ``idx`` -> (x = L/100, y = ab/128, game), float32 on ``device``.

    ``params`` are this batch's rows of :func:`sample_params` (same length as ``idx``).
    """
    L = data.L[idx].float()
    ab = data.ab[idx].float()
    use_twin = params["twin"] & data.has_twin[idx]
    if data.twin_L is not None and bool(use_twin.any()):
        L = torch.where(use_twin.view(-1, 1, 1, 1), data.twin_L[idx].float(), L)
    post = params["dmg"] & ~use_twin
    if bool(post.any()):
        L = torch.where(post.view(-1, 1, 1, 1), posterize_tensor(L, params["thr"]), L)
    if "remap" in params:
        rem = params["remap"] & ~use_twin & ~post
        if bool(rem.any()):
            L = torch.where(rem.view(-1, 1, 1, 1), remap_tensor(L, params["remap_y"]), L)
    if "oy" in params:
        h, w = data.hw
        c = aug.crop or max(h, w)
        ch, cw = min(c, h), min(c, w)
        Ls, abs_ = [], []
        for i in range(L.shape[0]):
            oy, ox = int(params["oy"][i]), int(params["ox"][i])
            Ls.append(L[i, :, oy:oy + ch, ox:ox + cw])
            abs_.append(ab[i, :, oy:oy + ch, ox:ox + cw])
        L, ab = torch.stack(Ls), torch.stack(abs_)
    flip = params["flip"]
    if bool(flip.any()):
        m = flip.view(-1, 1, 1, 1)
        L = torch.where(m, L.flip(-1), L)
        ab = torch.where(m, ab.flip(-1), ab)
    x = normalize_l(L).to(device, non_blocking=True)
    y = normalize_ab(ab).to(device, non_blocking=True)
    return x, y, data.game[idx].to(device)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator for one epoch's order and augmentation: a pure function of (seed, epoch).

    Deriving it afresh each epoch (instead of carrying one stream along) is what makes a resumed
    run replay an uninterrupted one exactly, whatever happened before the interruption.
    """
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch) * 7919 + 12345) % (2**63 - 1))
