"""`simpleview` (Goyal, Law, Xu, Deng & Deng 2021): the cloud as six orthogonal depth images
(`depth_views`: each pixel the nearest of its points), one ResNet shared over the views, the
views' features concatenated, a linear classifier. The images are made inside the network from
the augmented cloud, so the augmentations act before projection, as in SimpleView.

The paper: 128 x 128 views and a ResNet-18 of width 16 (`resolution: 128`, `width: 16`,
`blocks: [2, 2, 2, 2]`), 93.9% on ModelNet40 under DGCNN's protocol. The pixel value here is
1 - d / (4 extent) for depth d (SimpleView's code scales depth differently; the order of near and
far, and empty pixels at 0, are the same).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dagzoo.nn.resnet import ResNet
from dagzoo.points.base import PointModel, PointTrainParams, augmented_extent
from dagzoo.points.transforms import depth_views, orthogonal_views
from dagzoo.registry import Paper, param, register


@dataclass
class MultiViewParams(PointTrainParams):
    """A depth-image ResNet shared over the views of a cloud."""

    resolution: int = param(128, "pixels per side of each depth image (SimpleView: 128)", min=4)
    width: int = param(16, "channels of the ResNet's first stage (x2 per stage; SimpleView: 16)", min=1)
    blocks: list[int] = param(
        [2, 2, 2, 2], "basic blocks per ResNet stage ([2, 2, 2, 2]: ResNet-18)", min_len=1, max_len=6, min=1
    )
    dropout: float = param(0.5, "dropout before the classifier", min=0.0, max=0.99)


class MultiViewNet(nn.Module):
    """Depth images of the cloud from fixed cameras -> one ResNet per view (shared weights) ->
    the views' features pooled (`pool`: concat or max) -> dropout -> linear classifier."""

    def __init__(self, num_classes: int, cameras: torch.Tensor, p: MultiViewParams, pool: str, extent: float):
        super().__init__()
        self.register_buffer("cameras", cameras.float())
        self.resolution, self.extent, self.pool = p.resolution, extent, pool
        self.cnn = ResNet(1, p.width, tuple(p.blocks))
        features = self.cnn.dim * (len(cameras) if pool == "concat" else 1)
        self.head = nn.Sequential(nn.Dropout(p.dropout), nn.Linear(features, num_classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = depth_views(x, self.cameras, self.resolution, self.extent)  # (B, V, R, R)
        b, v = images.shape[:2]
        f = self.cnn(images.reshape(b * v, 1, self.resolution, self.resolution)).view(b, v, -1)
        pooled = f.flatten(1) if self.pool == "concat" else f.amax(dim=1)
        return self.head(pooled), x.new_zeros(())


@register(
    "points",
    "simpleview",
    papers=(
        Paper(
            "Revisiting Point Cloud Shape Classification with a Simple and Effective Baseline",
            "Goyal, Law, Xu, Deng & Deng",
            2021,
            "https://arxiv.org/abs/2106.05304",
        ),
    ),
)
class SimpleView(PointModel):
    """Six orthogonal depth views, a shared ResNet, concatenated view features."""

    Params = MultiViewParams

    def build(self) -> nn.Module:
        # the image plane spans what augmentation can reach, as VoxNet's grid
        return MultiViewNet(self.num_classes, orthogonal_views(), self.params, "concat", augmented_extent(self.params))
