"""The part-segmentation objective against a hand computation."""

import math

import pytest
import torch

from dagzoo.parts.losses import point_cross_entropy


def test_point_cross_entropy_is_the_mean_over_every_point_of_every_cloud():
    # two clouds of two points, three parts; logits chosen so each point's softmax is easy
    logits = torch.tensor(
        [
            [[0.0, 0.0, 0.0], [math.log(2), 0.0, 0.0]],
            [[0.0, math.log(3), 0.0], [0.0, 0.0, 0.0]],
        ]
    )
    parts = torch.tensor([[0, 0], [1, 2]])
    by_hand = (-math.log(1 / 3) - math.log(2 / 4) - math.log(3 / 5) - math.log(1 / 3)) / 4
    assert point_cross_entropy(logits, parts, 0.0).item() == pytest.approx(by_hand)
    # smoothing eps: the true part 1 - eps, each other eps / 2 (DGCNN's cal_loss)
    eps = 0.2
    logp = torch.log_softmax(logits, -1).reshape(-1, 3)
    target = torch.full((4, 3), eps / 2)
    target[torch.arange(4), parts.reshape(-1)] = 1 - eps
    assert point_cross_entropy(logits, parts, eps).item() == pytest.approx(-(target * logp).sum(1).mean().item())
