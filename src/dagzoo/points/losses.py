"""Every training objective of the point-cloud family, as a pure function of tensors.

- `smoothed_cross_entropy`: cross-entropy against DGCNN's label-smoothed target (Wang et al. 2019,
  the authors' `cal_loss`).
- `orthogonality_loss`: PointNet's feature-transform regulariser ||I - A A^T||_F^2 (Qi et al. 2017,
  eq. 2), averaged over the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def smoothed_cross_entropy(logits: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Cross-entropy against the smoothed target of DGCNN's `cal_loss`: 1 - eps for the true class
    and eps / (K - 1) for each other one (torch's `label_smoothing` gives the true class
    1 - eps + eps / K instead); plain cross-entropy at eps = 0."""
    k = logits.shape[1]
    if not eps or k == 1:  # one class: nothing to spread the mass over
        return F.cross_entropy(logits, y)
    target = torch.full_like(logits, eps / (k - 1), dtype=torch.float32)
    target.scatter_(1, y[:, None], 1.0 - eps)
    return -(target * F.log_softmax(logits.float(), dim=1)).sum(1).mean()


def orthogonality_loss(a: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ||I - A A^T||_F^2, in float32 (under bf16 autocast, I - A A^T of a
    near-orthogonal A would be rounding noise)."""
    with torch.autocast(a.device.type, enabled=False):
        a = a.float()
        eye = torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
        return ((eye - a @ a.transpose(1, 2)) ** 2).sum(dim=(1, 2)).mean()
