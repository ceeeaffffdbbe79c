"""`cpc`: contrastive predictive coding on images (van den Oord et al. 2018, section 3.2; CPC v2,
Hénaff et al. 2020). The image is cut into an overlapping grid of patches; a patch encoder (with
LayerNorm: batch statistics would let a patch see the others and the task be solved without
learning) embeds each patch, z_{ij}; a context network, convolutions masked so that the output
at row i sees rows <= i only, gives c_{ij}; for each k of `predict`, W_k c_{ij} predicts
z_{i+k,j} against every patch embedding of the batch (InfoNCE; CPC v2's appendix A.2 scores
against all of them). An offset whose target overlaps the context's newest patch row
(k * patch_stride < patch) is refused: the shared pixels would let the prediction copy instead of
predict, which is why CPC v2 skips the first offsets and Greedy InfoMax the first one.

The crop is drawn per image; every augmentation after it per patch (`augment_per: patch`, CPC
v2's patch-based augmentation, section 4.1; `translate` is then a fraction of the patch's side).
Drawn once per image, one brightness or contrast factor is shared by all of an image's patches,
and the prediction can tell a patch of its own image by those shared statistics instead of by
its content: a shortcut that un-augmented test images no longer offer. Features for evaluation
(`features`): the patch-embedding grid average-pooled to at most 3x3 cells and flattened
(`grid`, the default: like CPC v2's linear evaluation on the spatial feature grid, it keeps the
layout a single mean throws away), or the plain mean over the grid (`mean`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dagzoo.errors import ConfigError
from dagzoo.registry import Paper, param, register
from dagzoo.repr.base import ReprModel, ReprParams, augment, augment_after_crop, crop
from dagzoo.repr.encoders import ConvNet, receptive_field_table
from dagzoo.repr.losses import infonce


def patch_grid(side: int, patch: int, stride: int) -> int:
    """Patches per row of a `side` x `side` image (0 when they do not tile it exactly)."""
    if patch > side or (side - patch) % stride:
        return 0
    return (side - patch) // stride + 1


class RowCausalConv(nn.Module):
    """A convolution whose output row i depends on input rows i - kernel + 1 .. i only: the input
    is padded with kernel - 1 rows above and none below (columns: centred)."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv2d(channels, channels, kernel, padding=0)

    def forward(self, x):
        k = self.kernel
        return self.conv(F.pad(x, (k // 2, k - 1 - k // 2, k - 1, 0)))


class ContextNet(nn.Module):
    def __init__(self, channels: int, layers: int, kernel: int):
        super().__init__()
        self.layers = nn.ModuleList(RowCausalConv(channels, kernel) for _ in range(layers))

    def forward(self, z):
        c = z
        for layer in self.layers:
            c = c + torch.relu(layer(c))  # residual: each layer keeps the causal structure
        return c


class PatchEncoder(nn.Module):
    """Cuts (N, C, H, W) into the patch grid and embeds every patch with a ConvNet:
    `feature_map` -> (N, D, rows, cols)."""

    def __init__(self, in_channels, widths, strides, patch: int, stride: int):
        super().__init__()
        self.patch, self.stride = patch, stride
        self.net = ConvNet(in_channels, widths, strides, norm="layer")
        self.dim = self.net.dim

    def tiles(self, x) -> tuple[torch.Tensor, int, int]:
        """The patches of x (N, C, H, W) as one batch (N rows cols, C, p, p), image by image and
        row by row, and the grid's rows and cols."""
        n, c = x.shape[:2]
        p, s = self.patch, self.stride
        tiles = x.unfold(2, p, s).unfold(3, p, s)  # (N, C, rows, cols, p, p)
        rows, cols = tiles.shape[2:4]
        return tiles.permute(0, 2, 3, 1, 4, 5).reshape(n * rows * cols, c, p, p), rows, cols

    def embed(self, tiles, rows: int, cols: int):
        """Embeddings of `tiles` (as `tiles` cuts them) -> (N, D, rows, cols)."""
        return self.net(tiles).reshape(-1, rows, cols, self.dim).permute(0, 3, 1, 2)

    def feature_map(self, x):
        return self.embed(*self.tiles(x))

    def forward(self, x):
        return self.feature_map(x).mean(dim=(2, 3))

    def rf_layers(self):
        return self.net.rf_layers()

    def receptive_field(self) -> list[dict]:
        """The ConvNet's arithmetic inside a patch, then the pooled patch embedding: it sees exactly
        its patch (the convolutions' zero padding ends at the patch border), and neighbouring
        grid cells are `stride` pixels apart."""
        table = receptive_field_table(self.net.rf_layers())
        return [
            *table,
            {
                "layer": "patch (pooled)",
                "kernel": self.patch,
                "stride": self.stride,
                "dilation": 1,
                "receptive_field": self.patch,
                "jump": self.stride,
            },
        ]


@register(
    "repr",
    "cpc",
    papers=(
        Paper(
            "Representation Learning with Contrastive Predictive Coding",
            "van den Oord, Li & Vinyals",
            2018,
            "https://arxiv.org/abs/1807.03748",
        ),
        Paper(
            "Data-Efficient Image Recognition with Contrastive Predictive Coding",
            "Hénaff et al.",
            2020,
            "https://arxiv.org/abs/1905.09272",
        ),
    ),
)
class CPC(ReprModel):
    """Contrastive predictive coding on a patch grid (InfoNCE k rows ahead)."""

    infonce = True

    @dataclass
    class Params(ReprParams):
        patch: int = param(8, "patch side in pixels", min=2)
        patch_stride: int = param(4, "pixels between patches (< patch: overlapping, as CPC's 50%)", min=1)
        predict: list[int] = param(
            [2],
            "rows ahead the context predicts (k); k * patch_stride >= patch, so a "
            "target shares no pixel with the context",
            min_len=1,
            min=1,
        )
        context_layers: int = param(2, "masked convolution layers of the context network", min=1)
        context_kernel: int = param(3, "kernel of the context convolutions", min=1)
        norm: str = param(
            "layer", "the patch encoder's norm: layer only (BatchNorm lets CPC cheat)", choices=("layer",)
        )
        crop_scale: list[float] | None = param(None, "random resized crop of the whole image (null: none)")
        augment_per: str = param(
            "patch",
            "patch: every augmentation after the crop drawn independently for each "
            "patch (CPC v2) | image: once per image, shared by its patches",
            choices=("patch", "image"),
        )
        features: str = param(
            "grid",
            "evaluation features: grid (embeddings pooled to <= 3x3 cells, flattened) | "
            "mean (one mean over the grid); the online probe reads the same",
            choices=("grid", "mean"),
        )

    @classmethod
    def check_experiment(cls, params, section, where) -> None:
        from dagzoo.data.image_geometry import image_geometry

        super().check_experiment(params, section, where)
        if params.encoder != "convnet":
            raise ConfigError(f"{where}.encoder: cpc embeds patches with the convnet; allowed: convnet")
        _, side = image_geometry(section)
        if side is not None:
            cls.check_grid(params, side, where)

    @staticmethod
    def check_grid(params, side: int, where: str) -> None:
        rows = patch_grid(side, params.patch, params.patch_stride)
        if rows == 0:
            raise ConfigError(
                f"{where}.patch: patches of {params.patch} px every {params.patch_stride} px do not "
                f"tile a {side}x{side} image; allowed: patch <= {side} with (side - patch) divisible "
                "by patch_stride"
            )
        nearest = -(-params.patch // params.patch_stride)  # ceil(patch / stride): the first clean offset
        if nearest > rows - 1:
            raise ConfigError(
                f"{where}.patch: {params.patch}-px patches every {params.patch_stride} px make {rows} "
                f"rows, too few to predict a row that shares no pixel with the context ({nearest} "
                "ahead); allowed: a smaller patch or a larger patch_stride"
            )
        if max(params.predict) >= rows or min(params.predict) < nearest:
            k = max(params.predict) if max(params.predict) >= rows else min(params.predict)
            why = (
                f"the patch grid has {rows} rows"
                if k >= rows
                else f"{params.patch}-px patches every {params.patch_stride} px overlap the context's last row"
            )
            raise ConfigError(f"{where}.predict: k = {k} rows ahead, but {why}; allowed: {nearest} <= k <= {rows - 1}")

    def build_encoder(self):
        p = self.params
        self.check_grid(p, self.shape[-1], f"repr.experiments.<{self.registry_key}>")
        return PatchEncoder(self.shape[0], p.widths, p.strides, p.patch, p.patch_stride)

    def build_head(self, dim):
        p = self.params
        return nn.ModuleDict(
            {
                "context": ContextNet(dim, p.context_layers, p.context_kernel),
                "predict": nn.ModuleList(nn.Conv2d(dim, dim, 1) for _ in p.predict),
            }
        )

    def _scores(self, net, z) -> list[tuple[str, torch.Tensor]]:
        """Per k: the scores (P, M) of every prediction W_k c_ij (P of them) against every patch
        embedding of the batch (M = N rows cols), ordered so that row i's positive, z_{i+k,j} of
        its own image, is column i: first the patches k or more rows down (in the predictions'
        order), then those above."""
        c = net.head["context"](z)
        n, d, rows, cols = z.shape
        out = []
        for k, w in zip(self.params.predict, net.head["predict"]):
            pred = w(c[:, :, : rows - k]).permute(0, 2, 3, 1).reshape(-1, d)
            targets = torch.cat(
                [z[:, :, k:].permute(0, 2, 3, 1).reshape(-1, d), z[:, :, :k].permute(0, 2, 3, 1).reshape(-1, d)]
            )
            out.append((f"k{k}", pred @ targets.T))
        return out

    def _cells(self) -> tuple[int, int]:
        rows = patch_grid(self.shape[-1], self.params.patch, self.params.patch_stride)
        return (1, 1) if self.params.features == "mean" else (min(3, rows), min(3, rows))

    def _pool(self, z):
        return F.adaptive_avg_pool2d(z, self._cells()).flatten(1)

    def feature_dim(self, encoder) -> int:
        h, w = self._cells()
        return encoder.dim * h * w

    def batch_loss(self, net, x, y, g):
        if self.params.augment_per == "image":
            z = net.encoder.feature_map(augment(x, self.params, g))
        else:  # the whole image cropped, then each patch augmented on its own
            tiles, rows, cols = net.encoder.tiles(crop(x, self.params, g))
            z = net.encoder.embed(augment_after_crop(tiles, self.params, g), rows, cols)
        loss = torch.stack([infonce(s) for _, s in self._scores(net, z)]).mean()
        return loss, self._pool(z), y

    def nce_images(self, candidates: int) -> int:
        # every patch of every image is a candidate: rows x cols of them per image
        rows = patch_grid(self.shape[-1], self.params.patch, self.params.patch_stride)
        return max(2, candidates // (rows * rows))

    @torch.no_grad()
    def nce_scores(self, net, x, g):
        return self._scores(net, net.encoder.feature_map(x))

    def receptive_field(self) -> list[dict]:
        return self.net.encoder.receptive_field()

    def features(self, x, net):
        return self._pool(net.encoder.feature_map(x))
