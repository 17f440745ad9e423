"""A patch critic for the optional NoGAN phase (DeOldify): SAGAN-style, hinge loss.

The colorizer is first trained with its ordinary loss; a short adversarial phase then pushes it
away from the dull "average" colours a regression loss settles on.  The critic judges (L, ab)
pairs, so it learns whether *these colours fit this picture*, not whether colours look nice in
general.  It outputs a logit per patch (1/8 resolution: one per 8x8 tile of a Game Boy screen),
and one self-attention block (Zhang et al. 2019, SAGAN) lets distant patches agree, e.g. on a
screen-wide palette.  Every conv is spectrally normalised, which keeps the critic Lipschitz and
the short adversarial phase stable.

    >>> critic = PatchCritic()
    >>> d_loss, g_loss = adversarial_losses(critic, L, ab_fake, ab_real)
    >>> opt_d.zero_grad(); d_loss.backward(); opt_d.step()
    >>> opt_g.zero_grad(); (task_loss + w * g_loss).backward(); opt_g.step()   # either order works
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm


def _sn_conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Module:
    # padding (k-1)//2: a 4x4 stride-2 conv halves H and W exactly.
    return spectral_norm(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2))


class SelfAttention(nn.Module):
    """SAGAN self-attention over all positions; ``gamma`` starts at 0 so it fades in."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.q = _sn_conv(c, max(1, c // 8), 1)
        self.k = _sn_conv(c, max(1, c // 8), 1)
        self.v = _sn_conv(c, c, 1)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.q(x).flatten(2).transpose(1, 2)  # (B, N, c/8)
        k = self.k(x).flatten(2)  # (B, c/8, N)
        attn = torch.softmax(q @ k, dim=-1)  # (B, N, N)
        v = self.v(x).flatten(2)  # (B, C, N)
        y = (v @ attn.transpose(1, 2)).view(b, c, h, w)
        return x + self.gamma * y


class PatchCritic(nn.Module):
    """(B, 3, H, W) = [L/100, ab/128] -> (B, 1, H/8, W/8) patch logits (real > 0 > fake).

    Self-attention runs at 1/4 resolution (1,440 positions for a 160x144 frame), after which a
    last stride brings the map to one logit per 8x8 tile.  ``width`` scales the channels.
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        c = int(width)
        self.body = nn.Sequential(
            _sn_conv(3, c), nn.LeakyReLU(0.2, inplace=True),
            _sn_conv(c, 2 * c, 4, 2), nn.LeakyReLU(0.2, inplace=True),
            _sn_conv(2 * c, 4 * c, 4, 2), nn.LeakyReLU(0.2, inplace=True),
            SelfAttention(4 * c),
            _sn_conv(4 * c, 8 * c, 4, 2), nn.LeakyReLU(0.2, inplace=True),
            _sn_conv(8 * c, 1, 3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"critic expects (B, 3, H, W) = [L, a, b], got {tuple(x.shape)}")
        return self.body(x)


def _pair(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    if ab.shape[-2:] != L.shape[-2:]:
        ab = F.interpolate(ab, size=L.shape[-2:], mode="bilinear", align_corners=False)
    return torch.cat([L, ab], dim=1)


def critic_loss(critic: nn.Module, L: torch.Tensor, ab_fake: torch.Tensor, ab_real: torch.Tensor) -> torch.Tensor:
    """Hinge loss for the critic: ``relu(1 - D(real)) + relu(1 + D(fake))``; the fake is detached."""
    real = critic(_pair(L, ab_real))
    fake = critic(_pair(L, ab_fake.detach()))
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def generator_loss(critic: nn.Module, L: torch.Tensor, ab_fake: torch.Tensor) -> torch.Tensor:
    """Hinge generator loss ``-D(fake)``; gradients reach only the generator.

    The critic runs with *detached copies* (clones: a detached view would share the version
    counter) of its parameters, so the critic gets no gradient
    from this loss and the graph stays valid after ``opt_d.step()`` changes the parameters in
    place: the caller can step critic and generator in either order.
    """
    params = {k: v.detach().clone() for k, v in critic.named_parameters()}
    return -functional_call(critic, params, (_pair(L, ab_fake),)).mean()


def adversarial_losses(critic: nn.Module, L: torch.Tensor, ab_fake: torch.Tensor,
                       ab_real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(d_loss, g_loss)`` for one NoGAN step: :func:`critic_loss` and :func:`generator_loss`.

    ``L`` is (B, 1, H, W) L/100, ``ab_fake`` the colorizer's (B, 2, H, W) output (with its graph),
    ``ab_real`` the ground truth.  ``d_loss`` only trains the critic, ``g_loss`` only the
    colorizer; back-propagate each into its own optimiser.
    """
    return critic_loss(critic, L, ab_fake, ab_real), generator_loss(critic, L, ab_fake)
