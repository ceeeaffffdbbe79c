"""`simclr`: SimCLR (Chen et al. 2020): two augmented views per image, a projector MLP, and the
NT-Xent (normalised temperature-scaled cross-entropy, an InfoNCE) loss over the 2N views;
features for evaluation are taken before the projector."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dagzoo.registry import param, register
from dagzoo.repr.base import ReprModel, ReprParams, augment


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent of N positive pairs (z1_i, z2_i): with u the 2N L2-normalised views and
    s_ij = u_i . u_j / T, loss = mean over the 2N anchors i of -log(exp(s_i,p(i)) / sum_{k != i}
    exp(s_ik)), p(i) the other view of i's image (SimCLR eq. 1, averaged over both orders)."""
    u = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    sim = u @ u.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=u.device), float("-inf"))
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(u.device)
    return F.cross_entropy(sim, positive)


def projector(dim: int, hidden: int, out: int) -> nn.Module:
    """SimCLR's g(.): Linear -> BN -> ReLU -> Linear (solo-learn's CIFAR projector)."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))


@register("repr", "simclr")
class SimCLR(ReprModel):
    infonce = True
    has_projector = True

    @dataclass
    class Params(ReprParams):
        proj_hidden: int = param(256, "projector hidden width", min=1)
        proj_dim: int = param(64, "projector output width (the loss's space)", min=1)
        temperature: float = param(0.2, "NT-Xent temperature", gt=0.0)

    def build_head(self, dim: int) -> nn.Module:
        return projector(dim, self.params.proj_hidden, self.params.proj_dim)

    def objective(self, net, x, y, g):
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
