"""`dgcnn` (Wang et al. 2019, Dynamic Graph CNN): EdgeConv layers on a k-nearest-neighbour
graph recomputed in each layer's feature space, so the graph follows semantic, not only
spatial, proximity. An edge feature is h(x_i, x_j - x_i) (a shared 1x1 conv + BN + LeakyReLU
0.2) max-aggregated over the k neighbours; the layers' outputs are concatenated, lifted to an
embedding, max- and mean-pooled, and classified by 512-256-k with dropout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dagzoo.points.base import PointModel, PointTrainParams
from dagzoo.points.models.pointnet import mlp_head
from dagzoo.registry import Paper, param, register


def knn(x: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (B, N, k) of the k nearest neighbours of every point of x (B, C, N) in squared
    Euclidean distance, the point itself included (distance 0), nearest first. In float32 under
    autocast too: 2<x_i, x_j> - |x_i|^2 - |x_j|^2 cancels, and bfloat16 rounding of the inner products
    is the size of the neighbours' distances (a few % of the neighbours changed)."""
    with torch.autocast(x.device.type, enabled=False):
        return _knn_fp32(x.float(), k)


def _knn_fp32(x: torch.Tensor, k: int) -> torch.Tensor:
    inner = x.transpose(1, 2) @ x  # (B, N, N)
    sq = (x * x).sum(dim=1)  # (B, N)
    neg_dist = 2 * inner - sq[:, :, None] - sq[:, None, :]  # -||x_i - x_j||^2
    return neg_dist.topk(k, dim=-1).indices


def edge_features(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, 2C, N, k): [x_i, x_j - x_i] for the k neighbours j of every point i."""
    b, c, n = x.shape
    idx = knn(x, k)  # (B, N, k)
    pts = x.transpose(1, 2)  # (B, N, C)
    neighbours = torch.gather(pts, 1, idx.reshape(b, n * k, 1).expand(-1, -1, c)).view(b, n, k, c)
    centre = pts[:, :, None, :].expand(-1, -1, k, -1)
    return torch.cat([centre, neighbours - centre], dim=3).permute(0, 3, 1, 2)


def check_neighbours(k: int, points: int, where: str) -> None:
    """A k-NN graph needs k <= the points of a cloud (the point itself counts)."""
    if k > points:
        from dagzoo.errors import ConfigError

        raise ConfigError(f"{where}.k: {k} neighbours is more than the {points} points of a cloud")


class EdgeConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int):
        super().__init__()
        self.k = k
        self.h = nn.Sequential(nn.Conv2d(2 * c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.h(edge_features(x, self.k)).max(dim=3).values


class DGCNNNet(nn.Module):
    def __init__(self, num_classes: int, k: int, widths: list[int], emb: int, head: list[int], dropout: float):
        super().__init__()
        layers, c = [], 3
        for w in widths:
            layers.append(EdgeConv(c, w, k))
            c = w
        self.edges = nn.ModuleList(layers)
        self.embed = nn.Sequential(nn.Conv1d(sum(widths), emb, 1, bias=False), nn.BatchNorm1d(emb), nn.LeakyReLU(0.2))
        self.head = mlp_head(head, 2 * emb, num_classes, dropout, nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, outs = x.transpose(1, 2), []
        for layer in self.edges:
            h = layer(h)  # the next layer's graph is built on these features
            outs.append(h)
        e = self.embed(torch.cat(outs, dim=1))
        g = torch.cat([e.max(dim=2).values, e.mean(dim=2)], dim=1)
        return self.head(g), x.new_zeros(())


#: the paper of DGCNN's classification and segmentation networks
DGCNN_PAPER = Paper(
    "Dynamic Graph CNN for Learning on Point Clouds", "Wang et al.", 2019, "https://arxiv.org/abs/1801.07829"
)


@register("points", "dgcnn", papers=(DGCNN_PAPER,))
class DGCNN(PointModel):
    """DGCNN classification: EdgeConv on a k-NN graph recomputed in feature space per layer.

    The paper trains with SGD lr 0.1, momentum 0.9, cosine to 1e-3, label smoothing 0.2 (set them
    in the config: optimizer, momentum, min_lr_ratio, label_smoothing)."""

    @dataclass
    class Params(PointTrainParams):
        k: int = param(20, "neighbours per point (recomputed in feature space in every layer)", min=1)
        widths: list[int] = param([64, 64, 128, 256], "EdgeConv output widths", min_len=1, min=1)
        emb_dims: int = param(1024, "embedding width before max+mean pooling", min=1)
        head: list[int] = param([512, 256], "classifier hidden widths", min=1)
        dropout: float = param(0.5, "dropout in the head", min=0.0, max=0.99)

    @classmethod
    def check_experiment(cls, params, section, where):
        super().check_experiment(params, section, where)
        check_neighbours(params.k, section["data"]["points"], where)

    def build(self) -> nn.Module:
        p = self.params
        return DGCNNNet(self.num_classes, p.k, p.widths, p.emb_dims, p.head, p.dropout)
