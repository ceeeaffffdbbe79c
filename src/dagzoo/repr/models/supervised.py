"""`supervised`: the same encoder trained with cross-entropy on the labels, through the same
augmentations: the upper reference of every probe."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from dagzoo.registry import register
from dagzoo.repr.base import ReprModel, ReprParams, augment


@register("repr", "supervised")
class Supervised(ReprModel):
    """The encoder trained with cross-entropy on labels (upper reference)."""

    Params = ReprParams

    def build_head(self, dim):
        return nn.Linear(dim, self.classes)

    def batch_loss(self, net, x, y, g):
        h = net.encoder(augment(x, self.params, g))
        return F.cross_entropy(net.head(h), y), h, y
