"""`voxnet` (Maturana & Scherer 2015): a small 3D CNN on a binary occupancy grid of the same
clouds (the grid is built inside the network from the augmented cloud, so every model sees the
same data): conv 5^3 stride 2, conv 3^3, max-pool 2, a fully connected layer, the classifier.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dagzoo.points.base import PointModel, PointTrainParams
from dagzoo.registry import param, register


def occupancy(x: torch.Tensor, grid: int, extent: float = 1.0) -> torch.Tensor:
    """(B, 1, G, G, G) float grid: 1 where a point of x (B, N, 3) falls into the voxel; the cube
    [-extent, extent]^3 is divided into G^3 voxels (points outside are clamped to the border)."""
    b = x.shape[0]
    ijk = ((x + extent) / (2 * extent) * grid).floor().long().clamp(0, grid - 1)
    flat = (ijk[..., 0] * grid + ijk[..., 1]) * grid + ijk[..., 2]  # (B, N)
    occ = torch.zeros(b, grid ** 3, device=x.device, dtype=x.dtype)
    occ.scatter_(1, flat, 1.0)
    return occ.view(b, 1, grid, grid, grid)


class VoxNetNet(nn.Module):
    def __init__(self, num_classes: int, grid: int, channels: list[int], fc: int, dropout: float):
        super().__init__()
        c1, c2 = channels
        self.grid = grid
        self.features = nn.Sequential(
            nn.Conv3d(1, c1, 5, stride=2, padding=2), nn.BatchNorm3d(c1), nn.LeakyReLU(0.1), nn.Dropout(dropout / 2),
            nn.Conv3d(c1, c2, 3, padding=1), nn.BatchNorm3d(c2), nn.LeakyReLU(0.1), nn.MaxPool3d(2),
            nn.Dropout(dropout / 2))
        side = grid // 4
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c2 * side ** 3, fc), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(fc, num_classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # clouds are normalised to the unit sphere; augmentation (scaling) may push points to 1.5
        return self.head(self.features(occupancy(x, self.grid, extent=1.2))), x.new_zeros(())


@register("points", "voxnet")
class VoxNet(PointModel):
    """VoxNet on a G^3 occupancy grid (the paper: 32^3, channels 32-32, fc 128)."""

    @dataclass
    class Params(PointTrainParams):
        grid: int = param(32, "voxels per side (a multiple of 4)", min=4)
        channels: list[int] = param([32, 32], "the two convolutions' channels", min_len=2, max_len=2, min=1)
        fc: int = param(128, "fully connected width", min=1)
        dropout: float = param(0.5, "dropout before the classifier (half of it after each conv block)",
                               min=0.0, max=0.99)

        def check(self, where):
            super_check = getattr(super(), "check", None)
            if super_check:
                super_check(where)
            from dagzoo.errors import ConfigError

            if self.grid % 4:
                raise ConfigError(f"{where}.grid: {self.grid} is not a multiple of 4 (stride 2, then pool 2)")
            if len(self.channels) != 2:
                raise ConfigError(f"{where}.channels: expected two widths, got {self.channels}")

    def build(self) -> nn.Module:
        p = self.params
        return VoxNetNet(self.num_classes, p.grid, p.channels, p.fc, p.dropout)
