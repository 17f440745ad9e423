"""The reference architectures (v0, v1, v2) and our own designs.

Reference nets follow the articles layer by layer so figures are comparable; see each docstring.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from models import register


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


@register("v0", "reference 'alpha' net, ~32k params")
def v0() -> nn.Module:
    """Reference "alpha" net."""
    return V0()


_ = F  # kept for the archs added below
