"""Multiply-accumulate (MAC) counts for the model comparison table.

Counts the MACs of ``nn.Conv2d``, ``nn.ConvTranspose2d`` and ``nn.Linear`` modules for one frame,
via forward hooks, so any architecture is counted without per-model bookkeeping.  Elementwise
work (activations, norms, upsampling, softmax) and functional convolutions (e.g. the unet's
fixed Q -> 2 bin-decoding conv, 2*Q MACs per 1/4-res pixel) are not counted: they are small next
to the learned layers and latency is measured separately anyway.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_macs(m: nn.Conv2d, out: torch.Tensor) -> int:
    kh, kw = m.kernel_size
    return int(out[0].numel()) * (m.in_channels // m.groups) * kh * kw


def _deconv_macs(m: nn.ConvTranspose2d, inp: torch.Tensor) -> int:
    # Each input pixel scatters a (out/groups, kh, kw) kernel.
    kh, kw = m.kernel_size
    return int(inp[0].numel()) * (m.out_channels // m.groups) * kh * kw


def _linear_macs(m: nn.Linear, out: torch.Tensor) -> int:
    return int(out[0].numel()) * m.in_features


@torch.no_grad()
def count_macs(model: nn.Module, h: int = 144, w: int = 160) -> int:
    """MACs of one ``(1, 1, h, w)`` forward pass (the inference path, ``model(x)``).

    The model is run in eval mode (its mode is restored afterwards) on the device of its
    first parameter.
    """
    total = 0

    def hook(m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.ConvTranspose2d):
            total += _deconv_macs(m, inputs[0])
        elif isinstance(m, nn.Conv2d):
            total += _conv_macs(m, out)
        elif isinstance(m, nn.Linear):
            total += _linear_macs(m, out)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    was_training = model.training
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    try:
        model.eval()
        model(torch.zeros(1, 1, h, w, device=device))
    finally:
        for hd in handles:
            hd.remove()
        model.train(was_training)
    return total
