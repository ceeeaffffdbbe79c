"""`pointnet` (Qi et al. 2017): shared per-point MLPs, a symmetric max-pool, and two learned
alignment networks (T-Nets): a 3x3 transform of the input and a 64x64 transform of the
features, the latter pulled towards orthogonality by L_reg = ||I - A A^T||_F^2.

Regulariser weight convention: the loss adds `tnet_reg_weight` x mean over the batch of
||I - A A^T||_F^2 (the squared Frobenius norm, not halved), default 0.0005: the paper's 0.001
on tf.nn.l2_loss, which halves the square, per cloud, as its text (and DESIGN) give it. (The
authors' TensorFlow code applies tf.nn.l2_loss to the whole batch's tensor, a sum over the
clouds, so its weight per cloud grows with the batch, 0.016 at 32; the PyTorch ports take 0.001 x
the mean unsquared norm.)
`tnets: false` drops both T-Nets (the paper's ablation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dagzoo.points.base import PointModel, PointTrainParams
from dagzoo.points.losses import orthogonality_loss
from dagzoo.registry import Paper, param, register


def point_mlp(widths: list[int], c_in: int) -> nn.Sequential:
    """Shared per-point layers: 1x1 convolutions + batch norm + ReLU."""
    layers = []
    for w in widths:
        layers += [nn.Conv1d(c_in, w, 1), nn.BatchNorm1d(w), nn.ReLU()]
        c_in = w
    return nn.Sequential(*layers)


def mlp_head(widths: list[int], c_in: int, k: int, dropout: float, act: nn.Module) -> nn.Sequential:
    layers = []
    for w in widths:
        layers += [nn.Linear(c_in, w, bias=False), nn.BatchNorm1d(w), act, nn.Dropout(dropout)]
        c_in = w
    return nn.Sequential(*layers, nn.Linear(c_in, k))


class TNet(nn.Module):
    """Predicts a k x k transform from a (B, k, N) point set: shared MLP, max-pool, FC layers;
    the last layer starts at zero weights and identity bias, so the transform starts as I."""

    def __init__(self, k: int, mlp: list[int], fc: list[int]):
        super().__init__()
        self.k = k
        self.mlp = point_mlp(mlp, k)
        layers, c = [], mlp[-1]
        for w in fc:
            layers += [nn.Linear(c, w, bias=False), nn.BatchNorm1d(w), nn.ReLU()]
            c = w
        self.fc = nn.Sequential(*layers)
        self.out = nn.Linear(c, k * k)
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():
            self.out.bias.copy_(torch.eye(k).flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.mlp(x).max(dim=2).values
        return self.out(self.fc(h)).view(-1, self.k, self.k)


class PointNetNet(nn.Module):
    def __init__(
        self,
        k: int,
        mlp1: list[int],
        mlp2: list[int],
        head: list[int],
        tnet_mlp: list[int],
        tnet_fc: list[int],
        dropout: float,
        tnets: bool,
        reg_weight: float,
    ):
        super().__init__()
        self.tnets, self.reg_weight = tnets, reg_weight
        if tnets:
            self.input_tnet = TNet(3, tnet_mlp, tnet_fc)
            self.feature_tnet = TNet(mlp1[-1], tnet_mlp, tnet_fc)
        self.mlp1 = point_mlp(mlp1, 3)
        self.mlp2 = point_mlp(mlp2, mlp1[-1])
        self.head = mlp_head(head, mlp2[-1], k, dropout, nn.ReLU())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, N, 3) -> (logits (B, k), the weighted regulariser (a scalar; 0 without T-Nets))."""
        h = x.transpose(1, 2)  # (B, 3, N)
        reg = x.new_zeros(())
        if self.tnets:
            h = torch.bmm(self.input_tnet(h), h)  # points are columns: A x
        h = self.mlp1(h)
        if self.tnets:
            a = self.feature_tnet(h)
            h = torch.bmm(a, h)
            reg = self.reg_weight * orthogonality_loss(a)
        g = self.mlp2(h).max(dim=2).values  # the symmetric function: invariant to point order
        return self.head(g), reg


#: the paper of PointNet's classification and segmentation networks
POINTNET_PAPER = Paper(
    "PointNet: Deep Learning on Point Sets for 3D Classification and Segmentation",
    "Qi et al.",
    2017,
    "https://arxiv.org/abs/1612.00593",
)


@register("points", "pointnet", papers=(POINTNET_PAPER,))
class PointNet(PointModel):
    """PointNet classification; Adam lr 1e-3 halved every 20 epochs in the paper."""

    @dataclass
    class Params(PointTrainParams):
        mlp1: list[int] = param([64, 64], "shared MLP before the feature transform", min_len=1, min=1)
        mlp2: list[int] = param(
            [64, 128, 1024], "shared MLP after it (the last width: the global feature)", min_len=1, min=1
        )
        head: list[int] = param([512, 256], "classifier hidden widths", min=1)
        tnet_mlp: list[int] = param([64, 128, 1024], "T-Net shared MLP", min_len=1, min=1)
        tnet_fc: list[int] = param([512, 256], "T-Net fully connected widths", min=1)
        dropout: float = param(0.3, "dropout in the head (the paper's keep ratio 0.7)", min=0.0, max=0.99)
        tnets: bool = param(True, "the input (3x3) and feature T-Nets (false: the ablation)")
        tnet_reg_weight: float = param(
            0.0005,
            "weight of the batch mean of ||I - A A^T||_F^2 of the feature "
            "transform (the paper's 0.001 x tf.nn.l2_loss, per cloud)",
            min=0.0,
        )

    def build(self) -> nn.Module:
        p = self.params
        return PointNetNet(
            self.num_classes, p.mlp1, p.mlp2, p.head, p.tnet_mlp, p.tnet_fc, p.dropout, p.tnets, p.tnet_reg_weight
        )
