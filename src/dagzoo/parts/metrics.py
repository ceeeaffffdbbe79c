"""ShapeNetPart's segmentation scores (Yi et al. 2016, as PointNet and DGCNN compute them).

A shape's IoU is the mean over the parts of its own category of |pred = l and true = l| /
|pred = l or true = l|, a part absent from both the prediction and the ground truth counting as
IoU 1. Instance mIoU averages the shapes' IoUs; class mIoU averages, over the categories present,
the mean IoU of their shapes; point accuracy is the fraction of points labelled right.
"""

from __future__ import annotations

import numpy as np


def shape_ious(pred: np.ndarray, true: np.ndarray, category: np.ndarray, parts_of: list[list[int]]) -> np.ndarray:
    """The IoU of every shape (S,), from predicted and true part indices (S, N) and each shape's
    category (S,); `parts_of[c]`: the part indices of category c."""
    pred, true, category = np.asarray(pred), np.asarray(true), np.asarray(category)
    ious = np.empty(len(true), np.float64)
    for c, parts in enumerate(parts_of):
        rows = np.flatnonzero(category == c)
        if not len(rows):
            continue
        p, t = pred[rows], true[rows]
        per_part = []
        for label in parts:
            inter = ((p == label) & (t == label)).sum(axis=1)
            union = ((p == label) | (t == label)).sum(axis=1)
            per_part.append(np.where(union == 0, 1.0, inter / np.maximum(union, 1)))
        ious[rows] = np.mean(per_part, axis=0)
    return ious


def segmentation_scores(
    pred: np.ndarray, true: np.ndarray, category: np.ndarray, parts_of: list[list[int]], categories: list[str]
) -> dict:
    """Instance mIoU, class mIoU, point accuracy and the mean IoU per category (absent ones left
    out), with the standard errors over shapes of the two means over shapes."""
    ious = shape_ious(pred, true, category, parts_of)
    per_category = {
        name: {"n": int((category == c).sum()), "miou": float(ious[category == c].mean())}
        for c, name in enumerate(categories)
        if (category == c).any()
    }
    correct = (np.asarray(pred) == np.asarray(true)).mean(axis=1)  # per shape: shapes are the trials
    n = len(ious)
    return {
        "instance_miou": float(ious.mean()),
        "instance_miou_se": float(ious.std(ddof=0) / np.sqrt(n)),
        "class_miou": float(np.mean([v["miou"] for v in per_category.values()])),
        "point_acc": float(correct.mean()),
        "point_acc_se": float(correct.std(ddof=0) / np.sqrt(n)),
        "per_category": per_category,
        "shape_ious": ious,
        "n": n,
    }
