"""The reference architectures (v0, v1, v2) and our own designs.

Reference nets follow the articles layer by layer so figures are comparable; see each docstring.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.registry import register


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class V0(nn.Module):
    """Reference "alpha" net: a 3-level conv encoder/decoder, about 32k parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(
            _conv(1, 8, 2), nn.ReLU(inplace=True),
            _conv(8, 8), nn.ReLU(inplace=True),
            _conv(8, 16), nn.ReLU(inplace=True),
            _conv(16, 16, 2), nn.ReLU(inplace=True),
            _conv(16, 32), nn.ReLU(inplace=True),
            _conv(32, 32, 2), nn.ReLU(inplace=True),
        )
        self.dec = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), _conv(32, 32), nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2, mode="nearest"), _conv(32, 16), nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2, mode="nearest"), _conv(16, 2), nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(self.enc(x))

    def forward_train(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"ab": self(x)}


@register("v0", "reference 'alpha' net", params=32_202)
def v0() -> nn.Module:
    """Reference "alpha" net."""
    return V0()



def _relu() -> nn.ReLU:
    return nn.ReLU(inplace=True)


def _up(mode: str = "nearest") -> nn.Upsample:
    # scale_factor (not size) keeps the exported Resize shape-agnostic (dynamic H/W).
    if mode == "nearest":
        return nn.Upsample(scale_factor=2, mode="nearest")
    return nn.Upsample(scale_factor=2, mode=mode, align_corners=False)


# ------------------------------------------------------------------------------------------- v1
class V1(nn.Module):
    """Reference "beta" net with halved channels (973,810 parameters).

    Layers exactly as the article's list: 3x3 convs 1-32, 32-32/2, 32-64, 64-64/2, 64-128,
    128-128/2, 128-256, 256-128, 128-64, up, 64-32, up, 32-16, 16-2 tanh, up (ReLU between convs).
    """

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            _conv(1, 32), _relu(), _conv(32, 32, 2), _relu(),
            _conv(32, 64), _relu(), _conv(64, 64, 2), _relu(),
            _conv(64, 128), _relu(), _conv(128, 128, 2), _relu(),
            _conv(128, 256), _relu(), _conv(256, 128), _relu(),
            _conv(128, 64), _relu(), _up(),
            _conv(64, 32), _relu(), _up(),
            _conv(32, 16), _relu(), _conv(16, 2), nn.Tanh(), _up(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward_train(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"ab": self(x)}


@register("v1", "reference 'beta' net, halved channels", params=973_810)
def v1() -> nn.Module:
    """Reference "beta" net with halved channels."""
    return V1()


# ------------------------------------------------------------------------------------------- v2
class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock, same attribute names so its state dicts load as they are."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + idt)


class V2(nn.Module):
    """Reference ResNet-18 net: torchvision's conv1..layer2 (128 ch at 1/8) and a BN decoder.

    Encoder names match torchvision (``conv1``, ``bn1``, ``layer1``, ``layer2``) so ImageNet
    weights load with :func:`load_torchvision_resnet18`.  Decoder as the reference: 128-128 BN
    ReLU, up, 128-64 BN ReLU, 64-64 BN ReLU, up, 64-32 BN tanh, 32-2, up.  The reference leaves
    the last conv unbounded; the model contract needs ab/128 in [-1, 1], so a final tanh is
    added (the one deviation from the layer list).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.dec = nn.Sequential(
            _conv(128, 128), nn.BatchNorm2d(128), _relu(), _up(),
            _conv(128, 64), nn.BatchNorm2d(64), _relu(),
            _conv(64, 64), nn.BatchNorm2d(64), _relu(), _up(),
            _conv(64, 32), nn.BatchNorm2d(32), nn.Tanh(),
            _conv(32, 2), _up(), nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.dec(self.layer2(self.layer1(y)))

    def forward_train(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"ab": self(x)}


_RESNET_PREFIXES = ("conv1.", "bn1.", "layer1.", "layer2.")


def load_torchvision_resnet18(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Load a torchvision-format resnet18 state dict into a :class:`V2` encoder; returns the keys loaded.

    Only ``conv1``, ``bn1``, ``layer1`` and ``layer2`` are used (``layer3``, ``layer4``, ``fc``
    are ignored: v2 stops at 1/8 resolution).  An RGB ``conv1`` kernel (64, 3, 7, 7) is summed
    over its input channels: a grey image fed as R=G=B gives the same response, so the
    pretrained features carry over to the one-channel L input.  A ``module.`` prefix (from
    DataParallel checkpoints) is stripped.
    """
    from utils.errors import UserError

    sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
    picked = {k: v for k, v in sd.items() if k.startswith(_RESNET_PREFIXES)}
    w = picked.get("conv1.weight")
    if w is not None and w.ndim == 4 and w.shape[1] == 3:
        picked["conv1.weight"] = w.sum(dim=1, keepdim=True)
    own = model.state_dict()
    want = [k for k in own if k.startswith(_RESNET_PREFIXES)]
    missing = [k for k in want if k not in picked]
    if missing:
        raise UserError(f"not a torchvision resnet18 state dict: missing {len(missing)} keys, e.g. {missing[0]}")
    bad = [k for k in want if tuple(picked[k].shape) != tuple(own[k].shape)]
    if bad:
        k = bad[0]
        raise UserError(f"resnet18 weights do not fit: {k} is {tuple(picked[k].shape)}, need {tuple(own[k].shape)}")
    model.load_state_dict({k: picked[k] for k in want}, strict=False)
    return want


@register("v2", "reference ResNet-18 encoder (to 1/8) + BN decoder, ImageNet-loadable", params=954_722)
def v2() -> nn.Module:
    """Reference ResNet-18 net."""
    return V2()


# --------------------------------------------------------------------------------------- fusion
def _conv_relu(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation=dilation), _relu())


class GlobalBranch(nn.Module):
    """Strided convs, global average pool and an MLP: the whole frame as one vector.

    Pooling makes it size-independent (any H, W), and a pixel-art game's screen-wide palette
    and scene type live in exactly this kind of summary.
    """

    def __init__(self, cin: int, cmid: int, cout: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(_conv_relu(cin, cmid, 2), _conv_relu(cmid, cmid))
        self.fc = nn.Sequential(nn.Linear(cmid, cout), _relu(), nn.Linear(cout, cout), _relu())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(x).mean(dim=(2, 3)))


class Fusion(nn.Module):
    """Global + local fusion (Iizuka et al. "Let there be Color!", Deep Koalarization).

    Local encoder to 1/8-resolution mid-level features; a global branch pools the frame into a
    vector that is tiled and concatenated with them, then fused by a 1x1 conv.  The concat+1x1
    is computed as ``conv1x1(local) + linear(global)`` broadcast over the map, which is the same
    function (the 1x1 conv's weight splits into a local and a global part) without tiling, so it
    exports with no shape arithmetic.  An auxiliary head predicts the game from the global
    vector (``num_games`` > 1), as Iizuka's scene-class head.
    """

    def __init__(self, width: int = 64, num_games: int = 1) -> None:
        super().__init__()
        c = int(width)
        self.local = nn.Sequential(
            _conv_relu(1, c // 2, 2), _conv_relu(c // 2, c),
            _conv_relu(c, c, 2), _conv_relu(c, 2 * c),
            _conv_relu(2 * c, 2 * c, 2), _conv_relu(2 * c, 2 * c),
        )
        self.glob = GlobalBranch(2 * c, 2 * c, 4 * c)
        self.fuse_local = nn.Conv2d(2 * c, 2 * c, 1)
        self.fuse_global = nn.Linear(4 * c, 2 * c, bias=False)
        self.dec = nn.Sequential(
            _conv_relu(2 * c, c), _up(),
            _conv_relu(c, c // 2), _up(),
            _conv_relu(c // 2, c // 4), _up(),
            nn.Conv2d(c // 4, 2, 3, 1, 1), nn.Tanh(),
        )
        self.game_head = nn.Linear(4 * c, num_games) if num_games > 1 else None

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.local(x)
        g = self.glob(f)
        fused = F.relu(self.fuse_local(f) + self.fuse_global(g)[:, :, None, None])
        return self.dec(fused), g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._features(x)[0]

    def forward_train(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        ab, g = self._features(x)
        out = {"ab": ab}
        if self.game_head is not None:
            out["game_logits"] = self.game_head(g)
        return out


def _game_head_kwargs(games: Sequence[str]) -> dict[str, Any]:
    """fusion trains its game-classifier head on the data's games (none for a single game)."""
    return {"num_games": len(games)} if len(games) > 1 else {}


@register("fusion", "global+local fusion (Iizuka / Deep Koalarization), game-class aux head", loss="mse",
          data_kwargs=_game_head_kwargs, params=965_202)
def fusion(width: int = 64, num_games: int = 1) -> nn.Module:
    """Global + local fusion net."""
    return Fusion(width=width, num_games=num_games)


# ----------------------------------------------------------------------------------------- unet
def _ch(base: int, width: float) -> int:
    """Channels scaled by ``width``, rounded to a multiple of 8 (what CPU conv kernels block by)."""
    return max(8, int(round(base * width / 8.0)) * 8)


class UNet(nn.Module):
    """Our real-time design for pixel art: thin full-res path, compute at 1/4-1/8, bins + global context.

    * Encoder 1 -> 1/2 -> 1/4 -> 1/8 (channels ``c0..c3`` = 8, 16, 32, 64 times ``width``);
      one 3x3 conv at full and 1/2 resolution, two at 1/4 and 1/8, then a dilated 3x3
      bottleneck: the 1/8 features see well over a 16x16 sprite.  A global branch (strided
      conv, average pool, MLP) is added to the bottleneck as a per-channel bias (equal to
      tiling + concat + 1x1): screen-wide palette context.
    * Skips: 1/4 features join the decoder (additive), the full-resolution stem features join
      the refinement head; 1/2 has none (cost).  Decoder to 1/4, where a 1x1 head predicts
      ``ab_logits`` over the ``Q`` ab bins (at full resolution they would dominate the budget).
    * In-graph decoding: annealed mean ``sum_q softmax(logits / T)_q * centre_q`` (Zhang et
      al., ``temperature`` 0.38; 1.0 gives the plain expectation) as Softmax + MatMul with the
      ``ab_bins`` buffer, so the ONNX graph needs no bins outside the model.
    * Edge refinement at full resolution: the coarse ab, bilinearly upsampled, plus L, goes
      through a thin 3x3 conv, is added to the stem's 3x3 L features (a skip) and a 1x1 conv
      outputs a correction; hard tile edges come back where L has them.  Output clamped to
      [-1, 1].  Full-resolution layers are the most expensive per MAC on CPU, hence so thin.

    Default (width 1): 234k parameters, 99 M MACs at 160x144, about 3.2-3.5 ms in ONNX Runtime
    on one thread of the development machine (budget 4 ms).  ``width`` scales channels (0.75
    for slower CPUs, 1.5 or 2 for offline use); ``bin_size`` sets Q (0.08 -> 251 bins).
    """

    def __init__(self, width: float = 1.0, bin_size: float = 0.08, temperature: float = 0.38,
                 num_games: int = 1, refine: bool = True) -> None:
        super().__init__()
        from models.losses import ABBins

        c0, c1, c2, c3 = (_ch(b, width) for b in (8, 16, 32, 64))
        self.temperature = float(temperature)
        #: (lo, hi, bold temperature) for :meth:`_decode`'s commit-where-sure mix; None = plain decode
        self.commit: tuple[float, float, float] | None = None
        self.stem = nn.Conv2d(1, c0, 3, 1, 1)
        # One conv at 1/2: a second 16->16 3x3 there cost 0.35 ms of ORT time for little reach.
        self.down1 = _conv_relu(c0, c1, 2)
        self.down2 = nn.Sequential(_conv_relu(c1, c2, 2), _conv_relu(c2, c2))
        self.down3 = nn.Sequential(_conv_relu(c2, c3, 2), _conv_relu(c3, c3))
        self.glob = GlobalBranch(c3, c3, 2 * c3)
        self.fuse_global = nn.Linear(2 * c3, c3)
        self.bottleneck = _conv_relu(c3, c3, dilation=2)
        self.lateral = nn.Conv2d(c3, c2, 1)
        self.up = _up("nearest")
        self.dec2 = _conv_relu(c2, c2)
        bins = ABBins(bin_size)
        self.head = nn.Conv2d(c2, bins.num_bins, 1)
        # The bin centres travel inside the model (and its ONNX graph): decoding needs nothing else.
        self.register_buffer("ab_bins", bins.centers.clone())
        self.up4 = nn.Upsample(scale_factor=4, mode="bilinear", align_corners=False)
        self.refine = refine
        if refine:
            self.ref1 = nn.Conv2d(3, c0, 3, 1, 1)
            # 1x1 out: a 3x3 conv with 2 output channels at full res ran at half the speed of
            # the rest of the net (0.6 ms for 3 M MACs) in ONNX Runtime.
            self.ref2 = nn.Conv2d(c0, 2, 1)
        self.game_head = nn.Linear(2 * c3, num_games) if num_games > 1 else None

    def _trunk(self, f0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Full-resolution stem features -> (1/4-resolution decoder features, global vector)."""
        f2 = self.down2(self.down1(f0))
        f3 = self.down3(f2)
        g = self.glob(f3)
        f3 = F.relu(f3 + self.fuse_global(g)[:, :, None, None])
        f3 = self.bottleneck(f3)
        return self.dec2(F.relu(self.up(self.lateral(f3)) + f2)), g

    def _decode(self, logits: torch.Tensor) -> torch.Tensor:
        """Bin logits at 1/4 resolution -> annealed-mean ab, upsampled to full resolution."""
        # Softmax over the last axis: ONNX Runtime's channel-axis Softmax transposes internally
        # and took 4.4 ms of a 7 ms frame; NHWC softmax + MatMul with the centres takes 0.5 ms.
        z = logits.permute(0, 2, 3, 1)
        ab = torch.matmul(torch.softmax(z / self.temperature, dim=-1), self.ab_bins)
        if self.commit is not None:
            # commit where sure: the bold decode where the net's own (T=1) top bin holds more than
            # ``lo`` of the mass, ramping in fully at ``hi``; the annealed mean elsewhere
            lo, hi, t_bold = self.commit
            conf = torch.softmax(z, dim=-1).amax(-1, keepdim=True)
            w = ((conf - lo) / (hi - lo)).clamp(0.0, 1.0)
            bold = torch.matmul(torch.softmax(z / t_bold, dim=-1), self.ab_bins)
            ab = w * bold + (1.0 - w) * ab
        return self.up4(ab.permute(0, 3, 1, 2))

    def _run(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f0 = F.relu(self.stem(x))
        d2, g = self._trunk(f0)
        logits = self.head(d2)
        ab = self._decode(logits)
        if self.refine:
            r = F.relu(self.ref1(torch.cat([x, ab], dim=1)) + f0)
            ab = torch.clamp(ab + self.ref2(r), -1.0, 1.0)
        out = {"ab": ab, "ab_logits": logits, "ab_bins": self.ab_bins}
        if self.game_head is not None:
            out["game_logits"] = self.game_head(g)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x)["ab"]

    def forward_train(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self._run(x)


@register("unet", "ours: thin real-time U-Net, global context, ab-bin classification", loss="ce+l1", params=234_285)
def unet(width: float = 1.0, bin_size: float = 0.08, temperature: float = 0.38, num_games: int = 1,
         refine: bool = True) -> nn.Module:
    """Our real-time U-Net with ab-bin classification."""
    return UNet(width=width, bin_size=bin_size, temperature=temperature, num_games=num_games, refine=refine)


# ------------------------------------------------------------------------------------- unet_lut
class UNetLut(UNet):
    """:class:`UNet` plus a learned luminance lookup: it starts as the lookup table and learns context.

    Why: on Game Boy Color frames the exact L of a pixel nearly names its colour (a game draws
    from a few dozen 15-bit palette entries), which is why a 256-entry mean-ab-per-L table beats
    every small CNN in the README's comparison table.  A stack of ReLU convs on a scalar L input
    needs many layers to carve out such a sharp function of L; a table lookup gets it in one step.

    * ``idx = round(L/100 * (levels - 1))`` indexes learned tables (ONNX ``Gather``):
      ``lut_ab`` (2 values per level) is the base prediction; :meth:`init_from_data` sets it to
      the training frames' mean ab per level, so an untrained net *is* the lookup-table
      baseline and training only has to learn where context says otherwise.  ``lut_stem``
      (``c0`` features) is added to the stem's features, so the encoder sees exact L from its
      first layer; ``lut_head`` (``head_ch`` features) feeds the output head.
    * The output head runs per pixel at full resolution: ``relu(lut_head[idx] + context + edge)``
      -> 1x1 -> ReLU -> 1x1 (zero-initialised) -> correction added to ``lut_ab[idx]``.
      ``context`` is the U-Net's 1/4-resolution decoder features (nearest-upsampled after a
      1x1): which game, which palette, which sprite.  ``edge`` is a 3x3 conv over L and the
      U-Net's bin-decoded ab (still trained by the bin cross-entropy, so the encoder commits
      to colours).  The head is thus a per-pixel MLP over (exact L, context): a lookup table
      that depends on where on the screen and in which game the pixel is.

    Default: 0.24 M parameters, 111 M MACs at 160x144 (``unet_lut_fast``: 89 M).
    """

    def __init__(self, width: float = 1.0, bin_size: float = 0.08, temperature: float = 0.38,
                 num_games: int = 1, levels: int = 256, head_ch: int = 16, edge: bool = True) -> None:
        super().__init__(width=width, bin_size=bin_size, temperature=temperature, num_games=num_games,
                         refine=False)
        c0 = self.stem.out_channels
        c2 = self.dec2[0].out_channels
        self.levels = int(levels)
        self.lut_stem = nn.Parameter(torch.zeros(self.levels, c0))
        self.lut_head = nn.Parameter(torch.randn(self.levels, head_ch) * 0.1)
        self.lut_ab = nn.Parameter(torch.zeros(self.levels, 2))
        self.ctx = nn.Conv2d(c2, head_ch, 1)
        # Without the edge conv the bin-decoded ab feeds nothing at inference, so the export drops
        # the whole softmax/decode branch (it still trains the encoder through the bin CE).
        self.edge = nn.Conv2d(3, head_ch, 3, 1, 1) if edge else None
        self.head1 = nn.Conv2d(head_ch, head_ch, 1)
        self.head2 = nn.Conv2d(head_ch, 2, 1)
        nn.init.zeros_(self.head2.weight)
        nn.init.zeros_(self.head2.bias)
        self.up_ctx = nn.Upsample(scale_factor=4, mode="nearest")

    @torch.no_grad()
    def init_from_data(self, L: torch.Tensor, ab: torch.Tensor, max_frames: int = 2000) -> None:
        """Set ``lut_ab`` to the mean ab (in ab/128) per L level of training frames.

        ``L`` (N, 1, H, W) and ``ab`` (N, 2, H, W) in Lab units, as ``models.data.TensorData``
        holds them; at most ``max_frames`` frames spread evenly are used.  Levels no pixel
        falls in are interpolated from their neighbours.
        """
        from dataset.color import normalize_ab, normalize_l

        n = int(L.shape[0])
        pick = torch.from_numpy(np.linspace(0, n - 1, min(n, max_frames)).round().astype(np.int64))
        lv = self.levels
        sums = torch.zeros(lv, 2, dtype=torch.float64)
        count = torch.zeros(lv, dtype=torch.float64)
        for chunk in pick.split(256):
            idx = self._level(normalize_l(L[chunk]).flatten())
            a = normalize_ab(ab[chunk])
            count += torch.bincount(idx, minlength=lv).double()
            for c in range(2):
                sums[:, c] += torch.bincount(idx, weights=a[:, c].flatten().double(), minlength=lv)
        filled = count > 0
        if not bool(filled.any()):
            return
        mean = sums[filled] / count[filled, None]
        xs = np.nonzero(filled.numpy())[0]
        table = np.stack([np.interp(np.arange(lv), xs, mean[:, c].numpy()) for c in range(2)], axis=1)
        self.lut_ab.copy_(torch.from_numpy(table).to(self.lut_ab))

    def _level(self, x: torch.Tensor) -> torch.Tensor:
        """Table row of each pixel: L/100 in [0, 1] -> int64 in [0, levels - 1]."""
        return torch.clamp(torch.round(x * (self.levels - 1)), 0, self.levels - 1).long()

    def _run(self, x: torch.Tensor, train: bool = True) -> dict[str, torch.Tensor]:
        idx = self._level(x[:, 0])
        # One Gather of all three tables, one transpose to NCHW, then channel slices: 0.15 ms
        # faster in ONNX Runtime than three lookups.
        c0, ch = self.lut_stem.shape[1], self.lut_head.shape[1]
        looked = torch.cat([self.lut_stem, self.lut_head, self.lut_ab], dim=1)[idx].permute(0, 3, 1, 2)
        f0 = F.relu(self.stem(x) + looked[:, :c0])
        d2, g = self._trunk(f0)
        # Without the edge conv only training needs the bin logits (for their cross-entropy).
        logits = self.head(d2) if (train or self.edge is not None) else None
        h = looked[:, c0:c0 + ch] + self.up_ctx(self.ctx(d2))
        if self.edge is not None:
            h = h + self.edge(torch.cat([x, self._decode(logits)], dim=1))
        h = F.relu(h)
        ab = torch.clamp(looked[:, c0 + ch:] + self.head2(F.relu(self.head1(h))), -1.0, 1.0)
        out = {"ab": ab, "ab_bins": self.ab_bins}
        if logits is not None:
            out["ab_logits"] = logits
        if self.game_head is not None:
            out["game_logits"] = self.game_head(g)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, train=False)["ab"]


@register("unet_small", "ours: unet at 3/4 width, for the live budget", loss="ce+l1", params=135_061)
def unet_small(width: float = 0.75, bin_size: float = 0.08, temperature: float = 0.38, num_games: int = 1,
               refine: bool = True) -> nn.Module:
    """``unet`` with ``width=0.75``: what the shipped default's monochrome branch uses."""
    return UNet(width=width, bin_size=bin_size, temperature=temperature, num_games=num_games, refine=refine)


@register("unet_lut", "ours: unet + learned luminance lookup and a full-res per-pixel head (best quality)",
          loss="ce+l1", params=241_981)
def unet_lut(width: float = 1.0, bin_size: float = 0.08, temperature: float = 0.38, num_games: int = 1,
             levels: int = 256, head_ch: int = 16, edge: bool = True) -> nn.Module:
    """Our U-Net with a learned luminance lookup."""
    return UNetLut(width=width, bin_size=bin_size, temperature=temperature, num_games=num_games,
                   levels=levels, head_ch=head_ch, edge=edge)


@register("unet_lut_fast", "ours: unet_lut without the edge conv and bin decoding at inference", loss="ce+l1",
          params=241_533)
def unet_lut_fast(width: float = 1.0, bin_size: float = 0.08, temperature: float = 0.38, num_games: int = 1,
                  levels: int = 256, head_ch: int = 16) -> nn.Module:
    """unet_lut with ``edge=False``: the head sees exact L and context only."""
    return UNetLut(width=width, bin_size=bin_size, temperature=temperature, num_games=num_games,
                   levels=levels, head_ch=head_ch, edge=False)


class TileSnap(nn.Module):
    """Hardware-shaped output for 4-shade input: one colour per (8x8 tile, shade), as a Color game draws.

    A Game Boy Color background tile has one 4-colour palette, so the pixels of a tile that share a
    monochrome shade share a colour.  This replaces the wrapped net's a/b by its mean over each
    such group: crisp tiles instead of watercolour, and (the mean being the best constant under
    squared error) no worse a fit to the net's own prediction.  Tiles are aligned to the screen;
    the shade is ``round(3 * L/100)``, which is exact on the 4 DMG lightness levels, so use it only
    where the input *is* 4-shade (the router's monochrome branch).  Exports as MatMuls and elementwise
    ops (~0.6 ms at 160x144).
    """

    def __init__(self, net: nn.Module, tile: int = 8) -> None:
        super().__init__()
        self.net = net
        self.tile = int(tile)
        self.register_buffer("shades", torch.arange(4, dtype=torch.float32).view(1, 4, 1, 1), persistent=False)

    def snap(self, x: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """a/b ``(B, 2, H, W)`` averaged over the (tile, shade) groups of input ``x`` ``(B, 1, H, W)``.

        The sums over tiles are two MatMuls with 0/1 pooling matrices (rows -> tile rows, columns
        -> tile columns) and the spread back the same two transposed.  In ONNX Runtime the 8x8
        AveragePool + nearest Resize version's snap ops took about 1.4 ms of a 4.5 ms frame in a
        profile; this one's about 0.9 ms (``unseen`` 4.14 -> 3.92 ms a frame, same output).
        """
        b, _, h, w = ab.shape
        # the shade: round(3 * L/100) -- the DMG levels' L/100 (0, 0.361, 0.696, 1) times 3 round
        # to 0..3 with 0.4 to spare; one Mul + Round instead of distances to the 4 levels
        mask = (torch.round(x * 3.0).clamp(0, 3) == self.shades).to(ab.dtype)    # (B, 4, H, W)
        t = self.tile
        rows = torch.arange(h, device=ab.device) // t                 # tile row of each pixel row
        cols = torch.arange(w, device=ab.device) // t
        ph = (rows[None, :] == torch.arange((h + t - 1) // t, device=ab.device)[:, None]).to(ab.dtype)  # (hs, H)
        pw = (cols[:, None] == torch.arange((w + t - 1) // t, device=ab.device)[None, :]).to(ab.dtype)  # (W, ws)
        weighted = (mask.unsqueeze(2) * ab.unsqueeze(1)).reshape(b, 8, h, w)
        sums = torch.matmul(torch.matmul(ph, torch.cat([weighted, mask], 1)), pw)   # (B, 12, hs, ws)
        hs, ws = sums.shape[-2:]
        num = sums[:, :8].reshape(b, 4, 2, hs, ws)
        den = sums[:, 8:].reshape(b, 4, 1, hs, ws)
        mean = (num / den.clamp_min(1e-6)).reshape(b, 8, hs, ws)
        up = torch.matmul(torch.matmul(ph.t(), mean), pw.t()).reshape(b, 4, 2, h, w)
        return (up * mask.unsqueeze(2)).sum(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.snap(x, self.net(x))


class ChromaScale(nn.Module):
    """The wrapped net's a/b times a constant ``chroma`` in (0, 1]: a safer, desaturated answer.

    Why: on games a net never saw, its committed colours are more often wrong than right, and
    squared error punishes a wrong strong colour most; scaling every a/b by one factor chosen on
    validation games trades colourfulness for error without retraining (``export --chroma``).
    Lightness is untouched (the net predicts a/b only).  One Mul in ONNX.
    """

    def __init__(self, net: nn.Module, chroma: float) -> None:
        super().__init__()
        if not 0.0 < chroma <= 1.0:
            raise ValueError(f"chroma must be in (0, 1], got {chroma}")
        self.net = net
        self.chroma = float(chroma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * self.chroma


class Ensemble(nn.Module):
    """The mean a/b of several nets that share the L/100 -> ab/128 contract (``export A B C``).

    Why: on games no net has seen, nets trained alike but from different seeds commit to
    different wrong colours; where they disagree the mean falls back towards grey and where they
    agree it keeps their colour, a safer answer than any one of them at the same chroma.  It costs
    one forward pass per member, so it is meant for offline ``colorize``, not the live budget.
    Averaging tile-uniform outputs (``tile_palette``) stays tile-uniform.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 nets, got {len(members)}")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.members[0](x)
        for m in self.members[1:]:
            out = out + m(x)
        return out * (1.0 / len(self.members))


# --------------------------------------------------------------------------------- tile_palette
class TilePalette(nn.Module):
    """For 4-shade (monochrome) input only: a 4-colour palette per 8x8 tile, predicted at 20x18.

    Why this shape: a Game Boy Color background tile has one 4-colour palette, so the answer to
    "colour this monochrome screen" *is* a palette per tile -- one colour for each of the 4
    shades.  :class:`TileSnap` gets there by averaging a full-resolution net's output; this net
    works at tile resolution from the start, which is crisp by construction and cheap: nothing
    runs at full resolution but the one-hot of the shades going in and one gather coming out.

    * In: the shade ``round(3 L/100)`` of each pixel, one-hot (4 channels), embedded by a conv
      with an 8x8 kernel and stride 8: each output cell sees exactly one tile's pixels, losslessly.
    * Trunk: one 3x3 conv at 1/8 (neighbour tiles), a stride-2 conv to 1/16 and two 3x3 convs
      there (one dilated: the context spans the screen), a global mean-pool MLP added as a
      per-channel bias (the screen's kind of scene), back to 1/8 by nearest upsample + add.
    * Head: per shade ``k`` a feature vector (one 1x1 conv makes all 4), then one shared linear
      layer to ``Q`` ab-bin logits; the annealed mean over bins (as :class:`UNet`) gives the
      tile's colour for shade ``k``.  Output pixel = its tile's colour for its shade (a gather).
    * Training: ``forward_train`` returns ``group_logits`` (B, Q, 4 * tiles) and
      ``group_index`` (B, H, W): the loss scores each (tile, shade) group against the mean of
      its pixels' soft targets (:func:`models.losses.compute_loss`).

    316k parameters, 43 M MACs at 160x144 (almost all at 20x18 and 10x9, where convs are large
    GEMMs), 1.8 ms in ONNX Runtime on one thread of the development machine against 3.4 ms
    for ``unet_small`` with :class:`TileSnap`.  H and W must be multiples of ``tile``
    (160x144 and the training crops are).
    """

    def __init__(self, width: float = 1.0, bin_size: float = 0.08, temperature: float = 0.38,
                 tile: int = 8, shade_ch: int = 32) -> None:
        super().__init__()
        from models.losses import ABBins

        c1, c2 = _ch(64, width), _ch(96, width)
        self.tile = int(tile)
        self.temperature = float(temperature)
        # a tile-strided conv on the one-hot shades: the same function as pixel_unshuffle + 1x1
        # conv, without the 6-D transpose (0.4 ms in ONNX Runtime)
        self.embed = nn.Conv2d(4, c1, self.tile, self.tile)
        self.local = _conv_relu(c1, c1)
        self.down = _conv_relu(c1, c2, 2)
        self.ctx = nn.Sequential(_conv_relu(c2, c2), _conv_relu(c2, c2, dilation=2))
        self.glob = nn.Sequential(nn.Linear(c2, c2), _relu(), nn.Linear(c2, c2))
        self.lateral = nn.Conv2d(c2, c1, 1)
        self.shade_ch = int(shade_ch)
        self.shade_feats = nn.Conv2d(c1, 4 * self.shade_ch, 1)
        bins = ABBins(bin_size)
        self.head = nn.Linear(self.shade_ch, bins.num_bins)
        self.register_buffer("ab_bins", bins.centers.clone())
        self.register_buffer("shades", torch.arange(4, dtype=torch.float32).view(1, 4, 1, 1), persistent=False)

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, H, W) L/100 -> per-shade tile features (B*4, H/8, W/8, cs) and the shades (B, 1, H, W)."""
        b, _, h, w = x.shape
        t = self.tile
        if h % t or w % t:
            raise ValueError(f"tile_palette needs H and W in multiples of {t}, got {h}x{w}")
        shade = torch.round(x * 3.0).clamp(0, 3)                       # exact on the 4 DMG levels
        f1 = F.relu(self.embed((shade == self.shades).to(x.dtype)))   # one-hot in, one tile per cell
        f1 = self.local(f1)
        f2 = self.ctx(self.down(f1))
        f2 = F.relu(f2 + self.glob(f2.mean(dim=(2, 3)))[:, :, None, None])
        up = F.interpolate(self.lateral(f2), scale_factor=2.0, mode="nearest")
        hs, ws = f1.shape[-2:]
        f1 = F.relu(f1 + up[:, :, :hs, :ws])
        feats = F.relu(self.shade_feats(f1)).reshape(b * 4, self.shade_ch, hs, ws)
        # channels last for the head: a 1x1 conv to Q channels made ONNX Runtime reorder a
        # (Q, tiles) tensor out of its blocked layout; a MatMul on NHWC needs no reorder
        return feats.permute(0, 2, 3, 1), shade

    def _paint(self, zt: torch.Tensor, shade: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tempered logits (B*4, hs, ws, Q) -> ab (B, 2, H, W) and each pixel's group (B, H, W)."""
        b, _, h, w = shade.shape
        hs, ws = zt.shape[1:3]
        t = self.tile
        pal = torch.matmul(torch.softmax(zt, dim=-1), self.ab_bins)  # NHWC softmax, see UNet._decode
        pal = pal.reshape(b, 4 * hs * ws, 2).transpose(1, 2)          # (B, 2, G): G = shade * tiles + tile
        # each pixel takes its (tile, shade) group's colour: one GatherElements, nothing upsampled
        tiles = ((torch.arange(h, device=shade.device) // t)[:, None] * ws
                 + (torch.arange(w, device=shade.device) // t)[None, :])
        group = shade.long()[:, 0] * (hs * ws) + tiles
        ab = torch.gather(pal, 2, group.reshape(b, 1, h * w).expand(b, 2, h * w)).reshape(b, 2, h, w)
        return ab, group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats, shade = self._features(x)
        # the temperature folded into the head's weights (ONNX Runtime folds the constant Div away)
        zt = F.linear(feats, self.head.weight / self.temperature, self.head.bias / self.temperature)
        return self._paint(zt, shade)[0]

    def forward_train(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats, shade = self._features(x)
        logits = self.head(feats)                                     # (B*4, hs, ws, Q)
        ab, group = self._paint(logits / self.temperature, shade)
        b = x.shape[0]
        hs, ws, q = logits.shape[1:]
        group_logits = logits.reshape(b, 4 * hs * ws, q).transpose(1, 2)   # (B, Q, G), G as in _paint
        return {"ab": ab, "group_logits": group_logits, "group_index": group, "ab_bins": self.ab_bins}


@register("tile_palette", "ours: a 4-colour palette per 8x8 tile from the tiles' shades, at 20x18 (4-shade input)",
          loss="ce+l1", params=316_283)
def tile_palette(width: float = 1.0, bin_size: float = 0.08, temperature: float = 0.38) -> nn.Module:
    """A palette per tile for monochrome input (see :class:`TilePalette`)."""
    return TilePalette(width=width, bin_size=bin_size, temperature=temperature)


@register("tile_palette_large", "ours: tile_palette at 2x width, for offline colorize (4-shade input)",
          loss="ce+l1", params=1_189_403)
def tile_palette_large(bin_size: float = 0.08, temperature: float = 0.38) -> nn.Module:
    """``tile_palette`` at twice the channels: more capacity where the live budget does not bind."""
    return TilePalette(width=2.0, bin_size=bin_size, temperature=temperature)


@register("tile_palette_small", "ours: tile_palette at half width (4-shade input)", loss="ce+l1", params=91_691)
def tile_palette_small(bin_size: float = 0.08, temperature: float = 0.38) -> nn.Module:
    """``tile_palette`` at half the channels: does less capacity overfit the training games less?"""
    return TilePalette(width=0.5, bin_size=bin_size, temperature=temperature)
