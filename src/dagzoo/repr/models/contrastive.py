"""`contrastive`: the pairwise margin contrastive loss (DrLIM, Hadsell, Chopra & LeCun 2006) as
the seed gives it:

    L = 1/(2P) sum over the P pairs [ y d^2 + (1 - y) max(margin - d, 0)^2 ],   d = ||e_a - e_b||_2,

(Caffe's ContrastiveLoss writes the same with N pairs; the 1/2 is DrLIM's), with the seed's
convention y = 1 for a matching pair (DrLIM's paper writes Y = 0 for similar pairs and Y = 1 for
dissimilar ones: the same loss with y replaced by 1 - Y; this code follows the seed). Per image
of the batch, one matching pair (its two views, or with `pairs: class` a view of another image of
its class: supervised DrLIM) and one non-matching pair (a view of a different image / of an image
of another class): P = 2N pairs for N images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dagzoo.registry import Paper, param, register
from dagzoo.repr.base import ReprModel, ReprParams, augment
from dagzoo.repr.losses import margin_contrastive_loss


def _partners(y: torch.Tensor, same: bool, g: torch.Generator) -> torch.Tensor:
    """For each i, a random index j != i whose label equals y_i (same) or differs (not same);
    i itself (same) when its class has no other member in the batch."""
    n = len(y)
    match = (y[:, None] == y[None, :]) if same else (y[:, None] != y[None, :])
    match &= ~torch.eye(n, dtype=torch.bool, device=y.device)
    scores = torch.rand(n, n, generator=g).to(y.device).masked_fill(~match, -1.0)
    j = scores.argmax(1)
    return torch.where(match.any(1), j, torch.arange(n, device=y.device))


@register(
    "repr",
    "contrastive",
    papers=(
        Paper(
            "Dimensionality Reduction by Learning an Invariant Mapping",
            "Hadsell, Chopra & LeCun",
            2006,
            "https://doi.org/10.1109/CVPR.2006.100",
        ),
    ),
)
class MarginContrastive(ReprModel):
    """Pairwise margin contrastive loss (DrLIM) on two views or same-class pairs."""

    @dataclass
    class Params(ReprParams):
        margin: float = param(1.0, "margin of the non-matching pairs' hinge", gt=0.0)
        embed_dim: int = param(32, "embedding width (a linear map of the features)", min=1)
        pairs: str = param(
            "views",
            "matching pairs: views (two views of one image) | class (same-class images)",
            choices=("views", "class"),
        )

    def build_head(self, dim: int) -> nn.Module:
        return nn.Linear(dim, self.params.embed_dim)

    def batch_loss(self, net, x, y, g):
        n = len(x)
        v1, v2 = augment(x, self.params, g), augment(x, self.params, g)
        h = net.encoder(torch.cat([v1, v2]))
        e1, e2 = net.head(h).split(n)
        if self.params.pairs == "views":
            pos = torch.arange(n, device=x.device)
            # a random non-zero shift: image i meets image (i + shift) mod n, never itself
            shift = int(torch.randint(1, n, (1,), generator=g))
            neg = (pos + shift) % n
        else:
            pos, neg = _partners(y, True, g), _partners(y, False, g)
        e_a = torch.cat([e1, e1])
        e_b = torch.cat([e2[pos], e2[neg]])
        match = torch.cat([torch.ones(n), torch.zeros(n)]).to(x.device)
        if self.params.pairs == "class":  # a class with no other member in the batch: no negative either
            match[n:] = (y == y[neg]).float()
        return margin_contrastive_loss(e_a, e_b, match, self.params.margin), h, torch.cat([y, y])
