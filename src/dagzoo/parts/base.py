"""What every part segmenter shares: the train split in memory, epochs of shuffled batches (a
fresh seeded permutation of the training shapes per epoch, the last partial batch dropped), the
point-cloud family's geometric augmentations (they move points and never reorder them, so the
labels stay aligned), the per-point cross-entropy plus the network's regulariser, validation
instance mIoU as the training curve, and prediction restricted to each shape's own category's
parts (the benchmark's protocol: the category is known, its parts compete).

A network maps clouds (B, N, 3) and their categories (B,) to (per-point logits (B, N, P) over
all P parts, a scalar regulariser already weighted).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dagzoo import distributed
from dagzoo.augment import epoch_batch, step_generator
from dagzoo.errors import ConfigError
from dagzoo.lifecycle import Model
from dagzoo.parts.losses import point_cross_entropy
from dagzoo.parts.metrics import segmentation_scores
from dagzoo.points.base import (
    CloudTrainParams,
    augment,
    check_epochs_or_steps,
    check_label_smoothing,
    epochs_to_steps,
)

_BATCH_STREAM, _AUG_STREAM = 0x5E61, 0x5E62


@dataclass
class PartTrainParams(CloudTrainParams):
    """Optimisation and augmentation of every part segmenter (the point-cloud family's)."""


def segmentation_head(widths: list[int], c_in: int, parts: int, dropout: float, act: nn.Module) -> nn.Sequential:
    """Per-point layers (1x1 convolutions + batch norm + activation, dropout before the last) to
    the parts' logits."""
    layers = []
    for w in widths:
        layers += [nn.Conv1d(c_in, w, 1, bias=False), nn.BatchNorm1d(w), act]
        c_in = w
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers, nn.Conv1d(c_in, parts, 1))


def category_mask(parts_of: list[list[int]], num_parts: int) -> torch.Tensor:
    """(C, P) booleans: which parts belong to each category."""
    mask = torch.zeros(len(parts_of), num_parts, dtype=torch.bool)
    for c, parts in enumerate(parts_of):
        mask[c, parts] = True
    return mask


@torch.no_grad()
def predict_parts(net: nn.Module, clouds: torch.Tensor, cats: torch.Tensor, mask: torch.Tensor, batch: int):
    """The part index of every point (S, N): the argmax over the logits of the shape's own
    category's parts (the caller sets eval mode)."""
    out = []
    for i in range(0, len(clouds), batch):
        logits = net(clouds[i : i + batch], cats[i : i + batch])[0].float()
        allowed = mask.to(logits.device)[cats[i : i + batch]][:, None, :]
        out.append(logits.masked_fill(~allowed, float("-inf")).argmax(dim=-1))
    return torch.cat(out) if out else torch.zeros(0, clouds.shape[1], dtype=torch.long)


class PartModel(Model):
    """A part segmenter; a model fitted otherwise (the height prior) overrides `fit`, `load` and
    `predict`."""

    Params: type

    def __init__(self, params, data, device):
        super().__init__(params, data, device)
        self.num_parts, self.num_categories = data.num_parts, data.num_categories
        self.num_points = data.points

    @classmethod
    def check_written(cls, exp: dict, where: str) -> None:
        check_epochs_or_steps(exp, where)

    def train_size(self) -> int:
        return len(self.data.category("train"))

    def build(self) -> nn.Module:
        raise NotImplementedError

    def predict(self, clouds: np.ndarray, cats: np.ndarray, net: nn.Module | None = None) -> np.ndarray:
        """The part index of every point of every cloud (S, N), by `net` (default: the model's
        own, in eval mode; the Trainer hands its curve's network already in eval mode)."""
        if net is None:
            net = self.net.eval()
        x = torch.from_numpy(clouds).to(self.device)
        c = torch.from_numpy(cats).to(self.device)
        mask = category_mask(self.data.parts_of, self.num_parts)
        return predict_parts(net, x, c, mask, self.params.eval_batch_size).cpu().numpy()

    def scores(self, split: str, net: nn.Module | None = None) -> dict | None:
        """Segmentation scores of a split (None when it is empty)."""
        cats = self.data.category(split)
        if not len(cats):
            return None
        pred = self.predict(self.data.clouds(split), cats, net)
        return segmentation_scores(pred, self.data.labels(split), cats, self.data.parts_of, self.data.categories)

    # ------------------------------------------------------------------ the lifecycle's hooks
    def prepare(self, ctx) -> None:
        check_label_smoothing(self.params.label_smoothing, self.num_parts, "part", "parts")
        self._x = torch.from_numpy(self.data.clouds("train")).to(self.device)
        self._y = torch.from_numpy(self.data.labels("train")).to(self.device)
        self._c = torch.from_numpy(self.data.category("train")).to(self.device)
        where = f"parts.experiments.{ctx.spec.get('experiment', '<experiment>')}.batch_size"
        self.params = epochs_to_steps(self.params, len(self._x), where)

    def step_loss(self, net, step: int, seed: int) -> torch.Tensor:
        idx = epoch_batch(len(self._x), self.params.batch_size, seed, step, _BATCH_STREAM).to(self.device)
        x = augment(self._x[idx], self.params, step_generator(seed, step, _AUG_STREAM))
        x, y, c = distributed.shard(x), distributed.shard(self._y[idx]), distributed.shard(self._c[idx])
        logits, reg = net(x, c)
        return point_cross_entropy(logits, y, self.params.label_smoothing) + reg

    def units_per_step(self) -> int:
        return self.params.batch_size

    def eval_fn(self, ctx):
        if not len(self.data.category("val")):
            return None

        def fn(net) -> dict:
            r = self.scores("val", net)
            return {"val/instance_miou": r["instance_miou"], "val/point_acc": r["point_acc"]}

        return fn

    def save_meta(self) -> dict:
        return {"categories": self.data.categories, "parts": self.data.part_names(), "points": self.num_points}

    def restore_meta(self, meta: dict, path: Path) -> None:
        if meta.get("parts") is not None and list(meta["parts"]) != self.data.part_names():
            raise ConfigError(
                f"{path} was trained on parts {meta['parts'][:4]}..., not this data set's "
                f"{self.data.part_names()[:4]}...; retrain this run"
            )
