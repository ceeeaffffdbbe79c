"""`dgcnn_seg` (Wang et al. 2019, the part-segmentation network): the classification network's
EdgeConv layers on k-NN graphs recomputed in feature space, their outputs concatenated and lifted
to an embedding whose max-pool is the global feature; the category's one-hot vector, embedded by
a 1x1 layer, joins it, and every point reads out [its EdgeConv features, the global feature, the
category's embedding] into the logits of every part. (The paper's spatial transform network in
front of the first EdgeConv and its two-layer edge MLPs are left out: one layer per EdgeConv, as
in `dgcnn`.)"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dagzoo.parts.base import PartModel, PartTrainParams, segmentation_head
from dagzoo.points.models.dgcnn import DGCNN_PAPER, EdgeConv, check_neighbours
from dagzoo.registry import param, register


class DGCNNSegNet(nn.Module):
    def __init__(self, parts: int, categories: int, p):
        super().__init__()
        layers, c = [], 3
        for w in p.widths:
            layers.append(EdgeConv(c, w, p.k))
            c = w
        self.edges = nn.ModuleList(layers)
        self.categories = categories
        act = nn.LeakyReLU(0.2)
        self.embed = nn.Sequential(nn.Conv1d(sum(p.widths), p.emb_dims, 1, bias=False), nn.BatchNorm1d(p.emb_dims), act)
        self.category = nn.Sequential(
            nn.Conv1d(categories, p.category_dims, 1, bias=False), nn.BatchNorm1d(p.category_dims), act
        )
        width = sum(p.widths) + p.emb_dims + p.category_dims
        self.head = segmentation_head(p.seg_head, width, parts, p.dropout, act)

    def forward(self, x: torch.Tensor, cats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, N, 3), categories (B,) -> (logits (B, N, parts), 0)."""
        h, outs = x.transpose(1, 2), []
        for layer in self.edges:
            h = layer(h)  # the next layer's graph is built on these features
            outs.append(h)
        local = torch.cat(outs, dim=1)
        glob = self.embed(local).max(dim=2, keepdim=True).values  # (B, E, 1)
        onehot = F.one_hot(cats, self.categories).to(glob.dtype)[:, :, None]
        shape = torch.cat([glob, self.category(onehot)], dim=1).expand(-1, -1, x.shape[1])
        return self.head(torch.cat([local, shape], dim=1)).transpose(1, 2), x.new_zeros(())


@register("parts", "dgcnn_seg", papers=(DGCNN_PAPER,))
class DGCNNSeg(PartModel):
    """DGCNN part segmentation: k = 40; the paper's code trains with SGD lr 0.1 (momentum 0.9,
    cosine to 1e-3) or Adam, label smoothing 0.2, per-axis scaling and shift (set them in the
    config)."""

    @dataclass
    class Params(PartTrainParams):
        k: int = param(40, "neighbours per point (recomputed in feature space in every layer)", min=1)
        widths: list[int] = param([64, 64, 64], "EdgeConv output widths", min_len=1, min=1)
        emb_dims: int = param(1024, "embedding width of the global feature", min=1)
        category_dims: int = param(64, "width of the category's embedding", min=1)
        seg_head: list[int] = param([256, 256, 128], "per-point layers after the concatenation", min=1)
        dropout: float = param(0.5, "dropout before the last per-point layer", min=0.0, max=0.99)

    @classmethod
    def check_experiment(cls, params, section, where):
        super().check_experiment(params, section, where)
        check_neighbours(params.k, section["data"]["points"], where)

    def build(self) -> nn.Module:
        return DGCNNSegNet(self.num_parts, self.num_categories, self.params)
