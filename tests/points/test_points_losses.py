"""Every objective of dagzoo.points.losses against an independent reference, cloud by cloud."""

import math

import numpy as np
import pytest
import torch

from dagzoo.points.losses import orthogonality_loss, smoothed_cross_entropy


def test_smoothed_cross_entropy_is_dgcnns_cal_loss():
    # DGCNN's cal_loss: target 1 - eps on the true class, eps / (K - 1) on each other one
    g = torch.Generator().manual_seed(0)
    logits, y, eps = torch.randn(6, 5, generator=g), torch.randint(0, 5, (6,), generator=g), 0.2
    total = 0.0
    for i in range(6):
        row = logits[i].double().numpy()
        log_p = row - math.log(np.exp(row).sum())
        target = np.full(5, eps / 4)
        target[int(y[i])] = 1 - eps
        total += -(target * log_p).sum()
    assert float(smoothed_cross_entropy(logits, y, eps)) == pytest.approx(total / 6, rel=1e-6)


def test_orthogonality_loss_is_the_mean_squared_frobenius_distance():
    a = torch.randn(3, 4, 4, generator=torch.Generator().manual_seed(1))
    ref = np.mean([np.sum((np.eye(4) - m @ m.T) ** 2) for m in a.double().numpy()])
    assert float(orthogonality_loss(a)) == pytest.approx(ref, rel=1e-5)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(2)))
    assert float(orthogonality_loss(q[None])) == pytest.approx(0.0, abs=1e-10)
