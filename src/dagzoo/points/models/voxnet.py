"""`voxnet` (Maturana & Scherer 2015): a small 3D CNN on a binary occupancy grid of the same
clouds (the grid is built inside the network from the augmented cloud, so every model sees the
same data): conv 5^3 stride 2, conv 3^3, max-pool 2, a fully connected layer, the classifier.
The grid covers [-e, e]^3 with e the largest coordinate augmentation can produce
(`augmented_extent`: 1.05 with the default rotation and jitter).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dagzoo.points.base import PointModel, PointTrainParams, augmented_extent
from dagzoo.registry import Paper, param, register


def occupancy(x: torch.Tensor, grid: int, extent: float = 1.0) -> torch.Tensor:
    """(B, 1, G, G, G) float grid: 1 where a point of x (B, N, 3) falls into the voxel; the cube
    [-extent, extent]^3 is divided into G^3 voxels (a point outside, which the network's extent
    rules out, would be clamped to the border)."""
    b = x.shape[0]
    ijk = ((x + extent) / (2 * extent) * grid).floor().long().clamp(0, grid - 1)
    flat = (ijk[..., 0] * grid + ijk[..., 1]) * grid + ijk[..., 2]  # (B, N)
    occ = torch.zeros(b, grid**3, device=x.device, dtype=x.dtype)
    occ.scatter_(1, flat, 1.0)
    return occ.view(b, 1, grid, grid, grid)


def _side(grid: int) -> int:
    """Voxels per side after conv 5^3 stride 2, conv 3^3 (both unpadded, as the paper's) and max-pool
    2: 32 -> 14 -> 12 -> 6."""
    return ((grid - 5) // 2 + 1 - 2) // 2


class VoxNetNet(nn.Module):
    """Maturana & Scherer's network: conv(32, 5^3, stride 2) - conv(32, 3^3) - max-pool 2 - fc 128 -
    classifier, unpadded convolutions, leaky ReLU 0.1 after each, dropout 0.2 / 0.3 / 0.4 after the
    first convolution, the pooling and the fc layer (the authors' code), no batch normalisation
    unless asked for."""

    def __init__(
        self,
        num_classes: int,
        grid: int,
        channels: list[int],
        fc: int,
        dropout: list[float],
        batch_norm: bool,
        extent: float = 1.0,
    ):
        super().__init__()
        c1, c2 = channels
        d1, d2, d3 = dropout
        norm = (lambda c: nn.BatchNorm3d(c)) if batch_norm else (lambda c: nn.Identity())
        self.grid, self.extent = grid, extent
        self.features = nn.Sequential(
            nn.Conv3d(1, c1, 5, stride=2),
            norm(c1),
            nn.LeakyReLU(0.1),
            nn.Dropout(d1),
            nn.Conv3d(c1, c2, 3),
            norm(c2),
            nn.LeakyReLU(0.1),
            nn.MaxPool3d(2),
            nn.Dropout(d2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(c2 * _side(grid) ** 3, fc), nn.ReLU(), nn.Dropout(d3), nn.Linear(fc, num_classes)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.features(occupancy(x, self.grid, self.extent))), x.new_zeros(())


@register(
    "points",
    "voxnet",
    papers=(
        Paper(
            "VoxNet: A 3D Convolutional Neural Network for Real-Time Object Recognition",
            "Maturana & Scherer",
            2015,
            "https://doi.org/10.1109/IROS.2015.7353481",
        ),
    ),
)
class VoxNet(PointModel):
    """VoxNet on a G^3 occupancy grid (the paper: 32^3, channels 32-32, fc 128)."""

    @dataclass
    class Params(PointTrainParams):
        grid: int = param(32, "voxels per side (the paper: 32; at least 11, for one voxel after the pooling)", min=11)
        channels: list[int] = param([32, 32], "the two convolutions' channels", min_len=2, max_len=2, min=1)
        fc: int = param(128, "fully connected width", min=1)
        dropout: list[float] = param(
            [0.2, 0.3, 0.4],
            "dropout after the first convolution, the pooling and the fc layer",
            min_len=3,
            max_len=3,
            min=0.0,
            max=0.99,
        )
        batch_norm: bool = param(False, "batch normalisation after each convolution (not in the paper)")

    def build(self) -> nn.Module:
        p = self.params
        # the grid spans what augmentation can reach (at test the clouds lie inside it), so no
        # training point is flattened onto the border voxels
        return VoxNetNet(self.num_classes, p.grid, p.channels, p.fc, p.dropout, p.batch_norm, augmented_extent(p))
