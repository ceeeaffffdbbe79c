"""Every objective of dagzoo.repr.losses against an independent reference: a loop over the
paper's equation, anchor by anchor, pair by pair, class by class."""

import math

import numpy as np
import pytest
import torch

from dagzoo.repr.losses import infonce, margin_contrastive_loss, nt_xent, soft_f1_loss, soft_macro_f1


def test_nt_xent_is_simclr_eq1_averaged_over_the_2n_anchors():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    u = [v / np.linalg.norm(v) for v in torch.cat([z1, z2]).numpy()]
    total = 0.0
    for i in range(8):
        partner = (i + 4) % 8
        denominator = sum(math.exp(u[i] @ u[k] / 0.3) for k in range(8) if k != i)
        total += -math.log(math.exp(u[i] @ u[partner] / 0.3) / denominator)
    assert float(nt_xent(z1, z2, 0.3)) == pytest.approx(total / 8, rel=1e-10)


def test_margin_loss_is_the_pairwise_hinge_halved():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([1, 0, 1, 0, 0])
    terms = []
    for i in range(5):
        d = float(np.linalg.norm((a[i] - b[i]).numpy()))
        terms.append(d**2 if y[i] else max(1.5 - d, 0.0) ** 2)
    assert float(margin_contrastive_loss(a, b, y, 1.5)) == pytest.approx(sum(terms) / (2 * 5), rel=1e-10)


def test_infonce_is_the_cross_entropy_of_each_rows_positive():
    scores = torch.randn(5, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ref = np.mean([-(scores[i, i] - torch.logsumexp(scores[i], 0)).item() for i in range(5)])
    assert float(infonce(scores)) == pytest.approx(ref, rel=1e-10)


def _soft_f1_by_class(probs: np.ndarray, y: np.ndarray, classes: int) -> float:
    f1 = []
    for c in range(classes):
        p, t = probs[:, c], (y == c).astype(float)
        tp, fp, fn = (p * t).sum(), (p * (1 - t)).sum(), ((1 - p) * t).sum()
        if 2 * tp + fp + fn > 0:
            f1.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1))


def test_soft_macro_f1_and_its_loss_by_class():
    g = torch.Generator().manual_seed(3)
    logits, y = torch.randn(9, 4, generator=g, dtype=torch.float64), torch.tensor([0, 1, 1, 2, 0, 1, 2, 2, 0])
    probs = logits.softmax(1)
    ref = _soft_f1_by_class(probs.numpy(), y.numpy(), 4)  # class 3 absent from labels, present in probs
    assert float(soft_macro_f1(probs, y, 4)) == pytest.approx(ref, rel=1e-12)
    assert float(soft_f1_loss(logits, y, 4)) == pytest.approx(1 - ref, rel=1e-12)


def test_reinforce_on_accuracy_is_an_unbiased_estimate_of_the_expected_accuracys_gradient():
    """The mean of many surrogate gradients -> -grad mean_i p(y_i | x_i) (exact, by autograd), for
    any baseline; the baseline lowers the estimator's variance here, where rewards are mostly 0."""
    from dagzoo.repr.losses import reinforce_accuracy_loss

    torch.manual_seed(0)
    logits = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    exact = torch.autograd.grad(-logits.softmax(1)[torch.arange(6), y].mean(), logits)[0]
    g = torch.Generator().manual_seed(1)
    draws_n = 20000
    for baseline in (0.0, 0.25):
        # one call on the logits repeated: row k of the repeat's gradient, times the repeats, is
        # draw k's gradient (the surrogate is a mean over rows)
        rep = logits.detach().repeat(draws_n, 1).requires_grad_(True)
        loss, _ = reinforce_accuracy_loss(rep, y.repeat(draws_n), baseline, g)
        draws = torch.autograd.grad(loss, rep)[0].reshape(draws_n, 6, 4) * draws_n
        mean, se = draws.mean(0), draws.std(0) / draws_n**0.5
        assert torch.all((mean - exact).abs() <= 4 * se + 1e-12), (mean - exact) / se
        if baseline == 0.0:
            plain_variance = draws.var(0).sum()
    assert draws.var(0).sum() < plain_variance
    _, reward = reinforce_accuracy_loss(torch.tensor([[0.0, 50.0]]), torch.tensor([1]), 0.0, g)
    assert reward.tolist() == [1.0]  # the sure class is drawn, and it is the right one
