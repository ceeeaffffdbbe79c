"""`mvcnn` (Su, Maji, Kalogerakis & Learned-Miller 2015): depth views from cameras in a ring
around the up axis (the paper: 12, every 30 degrees, 30 degrees above the horizon), one CNN
shared over the views and an element-wise max over the views' features ("view pooling"), then
the classifier. The paper renders shaded meshes and pools VGG-M's conv5 features (ImageNet
pre-trained); here the views are depth images of the cloud (`depth_views`) and the CNN the same
ResNet as SimpleView's, trained from scratch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from dagzoo.points.base import PointModel, augmented_radius
from dagzoo.points.models.simpleview import MultiViewNet, MultiViewParams
from dagzoo.points.transforms import circular_views
from dagzoo.registry import Paper, param, register


@register(
    "points",
    "mvcnn",
    papers=(
        Paper(
            "Multi-view Convolutional Neural Networks for 3D Shape Recognition",
            "Su, Maji, Kalogerakis & Learned-Miller",
            2015,
            "https://arxiv.org/abs/1505.00880",
        ),
    ),
)
class MVCNN(PointModel):
    """A ring of depth views around the up axis, a shared ResNet, max over the views."""

    @dataclass
    class Params(MultiViewParams):
        views: int = param(12, "cameras around the up axis (the paper: 12)", min=1)
        elevation: float = param(30.0, "the cameras' angle above the horizon, degrees", min=-90.0, max=90.0)

    def build(self) -> nn.Module:
        p = self.params
        # a tilted camera can see a coordinate up to the cloud's radius, not only its largest
        # coordinate: the image plane spans the radius augmentation can reach
        cameras = circular_views(p.views, math.radians(p.elevation))
        return MultiViewNet(self.num_classes, cameras, p, "max", augmented_radius(p))
