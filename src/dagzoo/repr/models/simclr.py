"""`simclr`: SimCLR (Chen et al. 2020): two augmented views per image, a projector MLP, and the
NT-Xent (normalised temperature-scaled cross-entropy, an InfoNCE) loss over the 2N views;
features for evaluation are taken before the projector."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dagzoo.registry import Paper, param, register
from dagzoo.repr.base import ReprModel, ReprParams, augment
from dagzoo.repr.losses import nt_xent


def projector(dim: int, hidden: int, out: int) -> nn.Module:
    """SimCLR's g(.): Linear -> BN -> ReLU -> Linear (solo-learn's CIFAR projector)."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))


@register(
    "repr",
    "simclr",
    papers=(
        Paper(
            "A Simple Framework for Contrastive Learning of Visual Representations",
            "Chen et al.",
            2020,
            "https://arxiv.org/abs/2002.05709",
        ),
    ),
)
class SimCLR(ReprModel):
    """SimCLR: two views, projector MLP, NT-Xent over the 2N views."""

    infonce = True
    has_projector = True

    @dataclass
    class Params(ReprParams):
        proj_hidden: int = param(256, "projector hidden width", min=1)
        proj_dim: int = param(64, "projector output width (the loss's space)", min=1)
        temperature: float = param(0.2, "NT-Xent temperature", gt=0.0)

    def build_head(self, dim: int) -> nn.Module:
        return projector(dim, self.params.proj_hidden, self.params.proj_dim)

    def batch_loss(self, net, x, y, g):
        v1, v2 = augment(x, self.params, g), augment(x, self.params, g)
        h = net.encoder(torch.cat([v1, v2]))
        z = net.head(h)
        n = len(x)
        return nt_xent(z[:n], z[n:], self.params.temperature), h, torch.cat([y, y])

    def projected(self, x, net):
        return net.head(net.encoder(x))

    @torch.no_grad()
    def nce_scores(self, net, x, g):
        """Held-out pairs of views: the critic u1_i . u2_j / T over N x N candidates (the bound
        log N - L of Poole et al. 2019, eq. 12, with this critic)."""
        u1 = F.normalize(net.head(net.encoder(augment(x, self.params, g))), dim=1)
        u2 = F.normalize(net.head(net.encoder(augment(x, self.params, g))), dim=1)
        return [("views", u1 @ u2.T / self.params.temperature)]
