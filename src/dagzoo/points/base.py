"""What every point-cloud classifier shares: the train split in memory, epochs of shuffled
batches (each epoch a fresh seeded permutation of the training clouds cut into
n // batch_size batches, the last partial batch dropped; a batch and its augmentation are a
function of (seed, step) alone), cross-entropy (optionally label-smoothed) plus the
network's own regulariser, validation accuracy as the training curve, batched prediction.

A network maps clouds (B, N, 3) to (logits (B, k), a scalar regulariser already weighted).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dagzoo import distributed
from dagzoo.augment import epoch_batch, step_generator
from dagzoo.errors import ConfigError
from dagzoo.lifecycle import Model
from dagzoo.points import transforms as T
from dagzoo.points.losses import smoothed_cross_entropy
from dagzoo.registry import param
from dagzoo.train import TrainParams

_BATCH_STREAM, _AUG_STREAM = 0x9C1D, 0x9C1E


@dataclass
class CloudTrainParams(TrainParams):
    """Optimisation and geometric augmentation of every network on point clouds, classifier or
    part segmenter (PointNet's recipe by default: Adam lr 1e-3, no weight decay, rotation about
    the up axis and jitter; DGCNN's per-axis scaling and shift are set in its config: on the
    generated `shapes` they are left off, since stretching one axis turns a cube into a box and a
    sphere into an ellipsoid, other classes there)."""

    lr: float = param(1e-3, "peak learning rate", gt=0.0)
    epochs: int | None = param(
        None,
        "passes over the training clouds; sets steps to epochs x (train clouds // batch_size) once the data "
        "are prepared (write epochs or steps, not both)",
        min=1,
    )
    warmup_steps: int = param(0, "linear warm-up steps", min=0)
    weight_decay: float = param(0.0, "weight decay on matrices", min=0.0)
    beta2: float = param(0.999, "Adam beta2", min=0.0, max=1.0)
    grad_clip: float | None = param(None, "max global gradient norm (null: no clipping)", min=0.0)
    batch_size: int = param(32, "clouds per step", min=1)
    label_smoothing: float = param(
        0.0,
        "label smoothing as DGCNN's code: the true class 1 - eps, every other eps / (K - 1) (DGCNN: 0.2)",
        min=0.0,
        max=0.99,
    )
    rotate_up: bool = param(True, "random rotation about the up axis (z)")
    scale_low: float = param(1.0, "per-axis scaling, lower bound (1 and 1: off; DGCNN: 2/3)", gt=0.0)
    scale_high: float = param(1.0, "per-axis scaling, upper bound (DGCNN: 3/2)", gt=0.0)
    translate: float = param(0.0, "random translation per axis, uniform in +-translate (DGCNN: 0.2)", min=0.0)
    jitter_sigma: float = param(0.01, "Gaussian jitter per point (0: off)", min=0.0)
    jitter_clip: float = param(0.05, "jitter clipped to +-clip", min=0.0)
    eval_batch_size: int = param(64, "clouds per forward pass when evaluating", min=1)

    def check(self, where: str) -> None:
        if self.scale_low > self.scale_high:
            raise ConfigError(f"{where}.scale_low: {self.scale_low} is above scale_high ({self.scale_high})")


@dataclass
class PointTrainParams(CloudTrainParams):
    """What a point-cloud classifier adds: point-order shuffling (a segmenter's labels would have
    to follow it) and the SO(3) robustness score."""

    shuffle: bool = param(True, "shuffle the order of the points")
    so3_rotations: int = param(1, "random SO(3) rotations per test cloud for test/oa_so3", min=1, stage="evaluate")


def augmented_extent(p: CloudTrainParams) -> float:
    """The largest |coordinate| a training cloud can reach: clouds lie in the unit sphere, a
    rotation about z keeps them there, then scaling, translation and clipped jitter."""
    return max(1.0, p.scale_high) + p.translate + (p.jitter_clip if p.jitter_sigma else 0.0)


def augmented_radius(p: CloudTrainParams) -> float:
    """The largest distance from the origin a training cloud's point can reach: scaling stretches
    the unit sphere to at most max(1, scale_high), translation and jitter add at most sqrt(3) times
    their per-axis bound (a tilted camera sees this, not only the largest coordinate)."""
    per_axis = p.translate + (p.jitter_clip if p.jitter_sigma else 0.0)
    return max(1.0, p.scale_high) + math.sqrt(3) * per_axis


def augment(x: torch.Tensor, p: CloudTrainParams, g: torch.Generator) -> torch.Tensor:
    """The geometric training augmentations in a fixed order, all batched (they move points,
    never reorder them: a segmenter's per-point labels stay aligned)."""
    if p.rotate_up:
        x = T.random_rotate_z(x, g)
    if (p.scale_low, p.scale_high) != (1.0, 1.0):
        x = T.random_scale(x, g, p.scale_low, p.scale_high)
    if p.translate:
        x = T.random_translate(x, g, p.translate)
    if p.jitter_sigma:
        x = T.jitter(x, g, p.jitter_sigma, p.jitter_clip)
    return x


@torch.no_grad()
def predict(net: torch.nn.Module, clouds: torch.Tensor, batch: int) -> torch.Tensor:
    """Predicted classes of every cloud (no augmentation; the caller sets eval mode)."""
    out = [net(clouds[i : i + batch])[0].argmax(dim=1) for i in range(0, len(clouds), batch)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def repeated_views_se(correct: np.ndarray) -> float:
    """The standard error of the accuracy over N clouds each scored under R views (correct: (R, N)
    booleans): a cloud's views are not independent trials, so the SE is over clouds, each counted
    by the fraction of its views classified right; one view: the binomial sqrt(p (1 - p) / N)."""
    per_cloud = np.asarray(correct, float).mean(0)
    return float(per_cloud.std(ddof=0) / np.sqrt(per_cloud.size))


def accuracy_counts(pred: np.ndarray, labels: np.ndarray, k: int) -> dict:
    """OA and mAcc over a whole split, from its k x k confusion matrix (rows: true class), with
    binomial standard errors: OA's sqrt(p(1-p)/n); mAcc's sqrt(sum_c p_c(1-p_c)/n_c) / C over
    the C classes present (independent per-class binomials)."""
    conf = np.zeros((k, k), np.int64)
    np.add.at(conf, (labels, pred), 1)
    n = conf.sum()
    oa = np.trace(conf) / n
    per_n = conf.sum(axis=1)
    present = per_n > 0
    per_acc = np.where(present, np.diag(conf) / np.maximum(per_n, 1), np.nan)
    pc, nc = per_acc[present], per_n[present]
    return {
        "oa": float(oa),
        "oa_se": float(np.sqrt(oa * (1 - oa) / n)),
        "macc": float(pc.mean()),
        "macc_se": float(np.sqrt((pc * (1 - pc) / nc).sum()) / len(pc)),
        "confusion": conf,
        "per_class": per_acc,
        "n": int(n),
    }


def steps_per_epoch(train_clouds: int, batch_size: int, where: str = "batch_size") -> int:
    """Batches in one epoch (the last partial batch dropped)."""
    if batch_size > train_clouds:
        raise ConfigError(
            f"{where}: {batch_size} is more than the {train_clouds} training clouds; allowed: 1..{train_clouds}"
        )
    return train_clouds // batch_size


def check_label_smoothing(eps: float, k: int, one: str, many: str) -> None:
    """Smoothing that leaves the true one of k targets (`one`, plural `many`) no more mass than
    another is refused; k is known only once the data are prepared."""
    if k > 1 and eps >= (k - 1) / k:
        raise ConfigError(
            f"label_smoothing: {eps} leaves the true {one} no more than another one with {k} {many}; "
            f"allowed: below {(k - 1) / k:.3g}"
        )


def epochs_to_steps(params, train_size: int, where: str):
    """The params with steps = epochs x batches per epoch when they give epochs (the train
    split's size is known only once the data are prepared); `where` names batch_size."""
    per_epoch = steps_per_epoch(train_size, params.batch_size, where)
    return params if params.epochs is None else dataclasses.replace(params, steps=params.epochs * per_epoch)


def check_epochs_or_steps(exp: dict, where: str) -> None:
    """An experiment as written gives epochs or steps, never both."""
    if "epochs" in exp and "steps" in exp:
        raise ConfigError(
            f"{where}.epochs: give epochs ({exp['epochs']}) or steps ({exp['steps']}), not both "
            "(a YAML anchor merged into this experiment may bring one of them)"
        )


class PointModel(Model):
    Params: type

    def __init__(self, params, data, device: torch.device):
        super().__init__(params, data, device)
        self.num_classes = data.num_classes
        self.num_points = data.points

    @classmethod
    def check_written(cls, exp: dict, where: str) -> None:
        check_epochs_or_steps(exp, where)

    def train_size(self) -> int:
        return len(self.data.labels("train"))

    def build(self) -> torch.nn.Module:
        raise NotImplementedError

    # ------------------------------------------------------------------ the lifecycle's hooks
    def prepare(self, ctx) -> None:
        check_label_smoothing(self.params.label_smoothing, self.num_classes, "class", "classes")
        # test clouds and labels are never read during training (selection is on val)
        self._x = torch.from_numpy(self.data.clouds("train")).to(self.device)
        self._y = torch.from_numpy(self.data.labels("train")).to(self.device)
        where = f"points.experiments.{ctx.spec.get('experiment', '<experiment>')}.batch_size"
        self.params = epochs_to_steps(self.params, len(self._x), where)
        self._val = (torch.from_numpy(self.data.clouds("val")).to(self.device), self.data.labels("val"))

    def step_loss(self, net, step: int, seed: int) -> torch.Tensor:
        idx = epoch_batch(len(self._x), self.params.batch_size, seed, step, _BATCH_STREAM).to(self.device)
        g = step_generator(seed, step, _AUG_STREAM)
        x = augment(self._x[idx], self.params, g)
        if self.params.shuffle:  # the same generator after the geometric draws
            x = T.shuffle_points(x, g)
        x, y = distributed.shard(x), distributed.shard(self._y[idx])
        logits, reg = net(x)
        return smoothed_cross_entropy(logits, y, self.params.label_smoothing) + reg

    def units_per_step(self) -> int:
        return self.params.batch_size

    def eval_fn(self, ctx):
        x, y = self._val
        if len(y) == 0:
            return None

        def fn(net) -> dict:
            pred = predict(net, x, self.params.eval_batch_size).cpu().numpy()
            r = accuracy_counts(pred, y, self.num_classes)
            return {"val/oa": r["oa"], "val/macc": r["macc"]}

        return fn

    def save_meta(self) -> dict:
        return {"classes": self.data.classes, "points": self.num_points}

    def restore_meta(self, meta: dict, path: Path) -> None:
        if meta.get("classes") is not None and list(meta["classes"]) != list(self.data.classes):
            raise ConfigError(
                f"{path} was trained on classes {meta['classes'][:5]}..., not this data set's "
                f"{self.data.classes[:5]}...; retrain this run"
            )
