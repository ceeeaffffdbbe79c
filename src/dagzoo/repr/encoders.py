"""Encoders of the representations family, each reporting its receptive-field arithmetic.

- `convnet`: a plain stack of 3x3 convolutions (width and stride per stage from the config),
  each followed by a norm and ReLU, then global average pooling: the default for small images.
- `resnet18`: ResNet-18 (He et al. 2016) with the CIFAR stem used by SimCLR's CIFAR experiments
  and solo-learn: a 3x3 stride-1 first convolution and no max-pool; 512-d features.

Every encoder maps (N, C, H, W) -> a feature map (N, D, h, w) (`feature_map`, what the effective
receptive field is measured on) and pooled features (N, D) (`forward`), and lists its layers as
(name, kernel, stride, dilation) along its longest path (`rf_layers`), from which
`receptive_field_table` computes the theoretical receptive field and jump per layer.
"""

from __future__ import annotations

import torch
from torch import nn

from dagzoo.nn.resnet import ResNet, norm_layer


def receptive_field_table(layers: list[tuple[str, int, int, int]]) -> list[dict]:
    """Per layer: the receptive field r and jump j (input pixels between adjacent outputs), by
    r_l = r_{l-1} + (k_l - 1) d_l j_{l-1} and j_l = j_{l-1} s_l from r_0 = j_0 = 1."""
    r, j, out = 1, 1, []
    for name, k, s, d in layers:
        r, j = r + (k - 1) * d * j, j * s
        out.append({"layer": name, "kernel": k, "stride": s, "dilation": d, "receptive_field": r, "jump": j})
    return out


def _conv_layers(module: nn.Module, prefix: str) -> list[tuple[str, int, int, int]]:
    """(name, kernel, stride, dilation) of the convolutions and poolings of a sequential path."""
    out = []
    for name, m in module.named_modules():
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k, s = m.kernel_size, m.stride
            d = getattr(m, "dilation", 1)
            first = lambda v: v[0] if isinstance(v, tuple) else v  # noqa: E731 - square kernels only
            out.append((f"{prefix}{name}", first(k), first(s), first(d)))
    return out


class ConvNet(nn.Module):
    def __init__(self, in_channels: int, widths: list[int], strides: list[int], norm: str = "batch"):
        super().__init__()
        layers, c = [], in_channels
        for w, s in zip(widths, strides):
            layers += [nn.Conv2d(c, w, 3, stride=s, padding=1, bias=False), norm_layer(norm, w), nn.ReLU(inplace=True)]
            c = w
        self.body = nn.Sequential(*layers)
        self.dim = c

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(x).mean(dim=(2, 3))

    def rf_layers(self) -> list[tuple[str, int, int, int]]:
        return _conv_layers(self.body, "body.")


class ResNet18(ResNet):
    """ResNet-18, CIFAR stem (3x3 stride-1 conv, no max-pool); `width` scales the 64 base channels."""

    def __init__(self, in_channels: int, width: int = 64, norm: str = "batch"):
        super().__init__(in_channels, width, (2, 2, 2, 2), norm)

    def rf_layers(self):
        # the longest path: the stem, then conv1 and conv2 of every block (1x1 shortcuts add nothing)
        out = _conv_layers(self.stem, "stem.")
        for i, block in enumerate(self.blocks):
            out += [(f"blocks.{i}.conv1", 3, block.conv1.stride[0], 1), (f"blocks.{i}.conv2", 3, 1, 1)]
        return out


def build_encoder(kind: str, in_channels: int, widths: list[int], strides: list[int], norm: str) -> nn.Module:
    if kind == "convnet":
        return ConvNet(in_channels, widths, strides, norm)
    return ResNet18(in_channels, widths[0], norm)


def effective_receptive_field(feature_map, images: torch.Tensor) -> torch.Tensor:
    """Luo et al. (2016): |d (sum of the channels of the centre output unit) / d input|, summed
    over input channels and averaged over `images` -> (H, W), normalised to sum 1."""
    x = images.detach().clone().requires_grad_(True)
    fmap = feature_map(x)
    h, w = fmap.shape[-2:]
    fmap[:, :, h // 2, w // 2].sum().backward()
    grad = x.grad.abs().sum(dim=1).mean(dim=0)
    return grad / grad.sum().clamp_min(1e-30)
