"""`pointnet_seg` (Qi et al. 2017, the part-segmentation network of its supplementary): the
classification network's pieces (input and feature T-Nets, shared per-point MLPs, max-pooling),
and for every point the concatenation of its features after each shared layer, the global
feature and the shape's category as a one-hot vector, read out by per-point layers into the
logits of every part."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dagzoo.parts.base import PartModel, PartTrainParams, segmentation_head
from dagzoo.points.losses import orthogonality_loss
from dagzoo.points.models.pointnet import POINTNET_PAPER, TNet, point_mlp
from dagzoo.registry import param, register


def layer_outputs(mlp: nn.Sequential, h: torch.Tensor) -> list[torch.Tensor]:
    """The output of every (conv, batch norm, ReLU) layer of a `point_mlp`."""
    outs = []
    for i in range(0, len(mlp), 3):
        h = mlp[i + 2](mlp[i + 1](mlp[i](h)))
        outs.append(h)
    return outs


class PointNetSegNet(nn.Module):
    def __init__(self, parts: int, categories: int, p):
        super().__init__()
        self.tnets, self.reg_weight, self.categories = p.tnets, p.tnet_reg_weight, categories
        if p.tnets:
            self.input_tnet = TNet(3, p.tnet_mlp, p.tnet_fc)
            self.feature_tnet = TNet(p.mlp1[-1], p.tnet_mlp, p.tnet_fc)
        self.mlp1 = point_mlp(p.mlp1, 3)
        self.mlp2 = point_mlp(p.mlp2, p.mlp1[-1])
        width = sum(p.mlp1) + sum(p.mlp2) + p.mlp2[-1] + categories
        self.head = segmentation_head(p.seg_head, width, parts, p.dropout, nn.ReLU())

    def forward(self, x: torch.Tensor, cats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, N, 3), categories (B,) -> (logits (B, N, parts), the weighted regulariser)."""
        h = x.transpose(1, 2)  # (B, 3, N)
        reg = x.new_zeros(())
        if self.tnets:
            h = torch.bmm(self.input_tnet(h), h)
        local = layer_outputs(self.mlp1, h)
        h = local[-1]
        if self.tnets:
            a = self.feature_tnet(h)
            h = torch.bmm(a, h)
            local[-1] = h  # the aligned features are the ones the point carries on
            reg = self.reg_weight * orthogonality_loss(a)
        local += layer_outputs(self.mlp2, h)
        n = x.shape[1]
        glob = local[-1].max(dim=2).values  # (B, C): the symmetric function
        onehot = F.one_hot(cats, self.categories).to(glob.dtype)
        shape = torch.cat([glob, onehot], dim=1)[:, :, None].expand(-1, -1, n)
        logits = self.head(torch.cat([*local, shape], dim=1))  # (B, parts, N)
        return logits.transpose(1, 2), reg


@register("parts", "pointnet_seg", papers=(POINTNET_PAPER,))
class PointNetSeg(PartModel):
    """PointNet part segmentation; the paper trains with Adam lr 1e-3 and batch 32 (its widths
    below are the defaults)."""

    @dataclass
    class Params(PartTrainParams):
        mlp1: list[int] = param([64, 128, 128], "shared MLP before the feature transform", min_len=1, min=1)
        mlp2: list[int] = param(
            [512, 2048], "shared MLP after it (the last width: the global feature)", min_len=1, min=1
        )
        seg_head: list[int] = param([256, 256, 128], "per-point layers after the concatenation", min=1)
        tnet_mlp: list[int] = param([64, 128, 1024], "T-Net shared MLP", min_len=1, min=1)
        tnet_fc: list[int] = param([512, 256], "T-Net fully connected widths", min=1)
        dropout: float = param(0.0, "dropout before the last per-point layer", min=0.0, max=0.99)
        tnets: bool = param(True, "the input (3x3) and feature T-Nets (false: the ablation)")
        tnet_reg_weight: float = param(
            0.0005, "weight of the batch mean of ||I - A A^T||_F^2 of the feature transform (as `pointnet`)", min=0.0
        )

    def build(self) -> nn.Module:
        return PointNetSegNet(self.num_parts, self.num_categories, self.params)
