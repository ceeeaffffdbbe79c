"""Every training objective of the part-segmentation family, as a pure function of tensors.

- `point_cross_entropy`: the per-point cross-entropy over all parts (PointNet's and DGCNN's
  part segmentation train on every part's logit, the shape's category given as an input),
  optionally against DGCNN's label-smoothed target, averaged over every point of the batch.
"""

from __future__ import annotations

import torch

from dagzoo.points.losses import smoothed_cross_entropy


def point_cross_entropy(logits: torch.Tensor, parts: torch.Tensor, eps: float) -> torch.Tensor:
    """logits (B, N, P), true parts (B, N) -> the mean over the B x N points of the (smoothed)
    cross-entropy."""
    return smoothed_cross_entropy(logits.reshape(-1, logits.shape[-1]), parts.reshape(-1), eps)
