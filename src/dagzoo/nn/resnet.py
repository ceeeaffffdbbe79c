"""A ResNet with basic blocks (He et al. 2016) and the CIFAR stem (a 3x3 stride-1 convolution,
no max-pool), shared by the representation encoders (`resnet18`: blocks 2-2-2-2) and the point
clouds' multi-view models (one ResNet over every rendered view)."""

from __future__ import annotations

import torch
from torch import nn


def norm_layer(kind: str, channels: int) -> nn.Module:
    """batch: BatchNorm; layer: LayerNorm over (C, H, W) of each example (GroupNorm with one
    group), which CPC needs: batch statistics would let a patch see the other patches."""
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.GroupNorm(1, channels)


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = norm_layer(norm, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = norm_layer(norm, c_out)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), norm_layer(norm, c_out))
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """The stem, then one stage per entry of `blocks` (that many basic blocks; stage i has
    width x 2^i channels and, after the first, halves the resolution), global average pooling.
    blocks (2, 2, 2, 2) is ResNet-18."""

    def __init__(self, in_channels: int, width: int, blocks: tuple[int, ...] = (2, 2, 2, 2), norm: str = "batch"):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), norm_layer(norm, width), nn.ReLU(inplace=True)
        )
        layers, c = [], width
        for i, n in enumerate(blocks):
            out, stride = width * 2**i, 1 if i == 0 else 2
            layers += [BasicBlock(c, out, stride, norm)] + [BasicBlock(out, out, 1, norm) for _ in range(n - 1)]
            c = out
        self.blocks = nn.Sequential(*layers)
        self.dim = c

    def feature_map(self, x):
        return self.blocks(self.stem(x))

    def forward(self, x):
        return self.feature_map(x).mean(dim=(2, 3))
