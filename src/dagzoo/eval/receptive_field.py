"""Receptive field of a convolutional network, measured on the network itself.

The theoretical (convolutional) receptive field is the set of input pixels that one output pixel
depends on through convolutions, pooling and resampling. It is measured by back-propagating
from the centre output pixel of a copy of the network in float64 with random weights and a
random input, in which the operations that mix the whole image are removed: group/layer/instance
norm statistics (replaced by the identity) and modules marked ``global_mixing = True``
(self-attention, whose residual path is kept). Those make the effective field the whole image;
the report says so next to the convolutional number. BatchNorm (a per-channel affine map at
evaluation) and pointwise activation modules become the identity too without counting as
mixing: a ReLU at a zero or negative input would stop the gradient of pixels that are in the
field (a zero input through bias-free convolutions reads a field of 0)."""

from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

_MIXING_NORMS = (nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)
_POINTWISE = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.LeakyReLU,
    nn.ReLU6,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Hardtanh,
)


def _strip_global(module: nn.Module) -> bool:
    """Replace norms, global-mixing blocks and pointwise maps by the identity in place; True if a
    norm or block that mixes the whole image was found."""
    found = False
    for name, child in module.named_children():
        if isinstance(child, _MIXING_NORMS) or getattr(child, "global_mixing", False):
            setattr(module, name, _Identity())
            found = True
        elif isinstance(child, _POINTWISE):
            setattr(module, name, _Identity())
        else:
            found = _strip_global(child) or found
    return found


class _Identity(nn.Module):
    def forward(self, x, *args, **kwargs):
        return x


def receptive_field(
    net: nn.Module,
    in_channels: int,
    call: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    size: int = 64,
    max_size: int = 1024,
) -> dict:
    """{"receptive_field": side length in pixels, "global_mixing": bool}.

    `call(net, x)` runs the network on x (default: net(x)). The input grows until the field fits
    inside it, so the number is not clipped by the image border.
    """
    probe = copy.deepcopy(net).double().eval()
    global_mixing = _strip_global(probe)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in probe.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.2)
    run = call or (lambda m, x: m(x))
    while True:
        x = torch.randn(1, in_channels, size, size, generator=g, dtype=torch.float64).requires_grad_()
        y = run(probe, x)
        if y.dim() != 4:
            raise ValueError("receptive_field needs a network with a spatial (B, C, H, W) output")
        cy, cx = y.shape[-2] // 2, y.shape[-1] // 2
        y[0, :, cy, cx].sum().backward()
        hit = x.grad[0].abs().sum(0) > 0
        rows = torch.nonzero(hit.any(1)).flatten()
        cols = torch.nonzero(hit.any(0)).flatten()
        touches = rows.numel() and (rows[0] == 0 or rows[-1] == size - 1 or cols[0] == 0 or cols[-1] == size - 1)
        if not touches or size >= max_size:
            extent = int(max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)) if rows.numel() else 0
            return {"receptive_field": extent, "global_mixing": bool(global_mixing), "clipped": bool(touches)}
        size *= 2
