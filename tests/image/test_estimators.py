"""The gradient estimators against the exact gradient by enumeration (categorical latents) or
in closed form (Gaussian latents): the unbiased ones agree within a few standard errors of the
mean of many draws; the straight-through and relaxed ones carry a bias well above its SE."""

import itertools
import math

import pytest
import torch

from dagzoo.image import estimators as E

N, K, B = 2, 3, 4


def _reward():
    """f(y) = y_1' A y_2 + b_1 . y_1 + (c . y_2)^2: defined on relaxed y too. Not multilinear in
    the y_n (the square): for a multilinear f the straight-through gradient would be exact."""
    g = torch.Generator().manual_seed(0)
    a, b1, c = torch.randn(K, K, generator=g), torch.randn(K, generator=g), torch.randn(K, generator=g)
    return lambda y: torch.einsum("bi,ij,bj->b", y[:, 0], a, y[:, 1]) + y[:, 0] @ b1 + (y[:, 1] @ c) ** 2


def _grad(surrogate, logits):
    logits = logits.detach().requires_grad_(True)
    surrogate(logits).backward()
    return logits.grad


def _moments(estimate, logits, draws=4000, chunks=20):
    """Mean and its standard error (elementwise) of an estimator's gradient over `draws` draws,
    batched: the logits repeated draws / chunks times per chunk."""
    per = draws // chunks
    means = []
    for c in range(chunks):
        g = torch.Generator().manual_seed(1000 + c)
        rep = logits.detach().repeat(per, 1, 1).requires_grad_(True)
        estimate(rep, g).backward()
        means.append(rep.grad.view(per, B, N, K).sum(0))  # the batch mean's gradient: sum over copies
    means = torch.stack(means)
    return means.mean(0), means.std(0) / math.sqrt(chunks)


@pytest.fixture
def setup():
    f = _reward()
    logits = torch.randn(B, N, K, generator=torch.Generator().manual_seed(1))
    exact = _grad(lambda lg: E.exact_expectation(lg, f), logits)
    return f, logits, exact


def test_the_enumeration_is_every_configuration_once():
    z = E.configurations(2, 3)
    assert z.shape == (9, 2, 3) and len({tuple(r.argmax(-1).tolist()) for r in z}) == 9
    with pytest.raises(ValueError, match=r"4\^7 = 16,384 configurations, more than the 4,096"):
        E.configurations(7, 4)
    # the exact objective by a plain double loop
    f = _reward()
    logits = torch.randn(1, N, K)
    p = torch.softmax(logits, -1)[0]
    by_loop = sum(
        p[0, i] * p[1, j] * f(torch.nn.functional.one_hot(torch.tensor([[i, j]]), K).float())[0]
        for i, j in itertools.product(range(K), range(K))
    )
    assert E.exact_expectation(logits, f).item() == pytest.approx(by_loop.item(), rel=1e-6)


@pytest.mark.parametrize(
    "name, estimate",
    [
        ("score function", lambda f: lambda lg, g: E.score_function(lg, f, g)),
        ("score function, baseline", lambda f: lambda lg, g: E.score_function(lg, f, g, baseline=0.7)),
        ("leave-one-out", lambda f: lambda lg, g: E.leave_one_out(lg, f, g, samples=4)),
    ],
)
def test_unbiased_estimators_agree_with_the_exact_gradient(setup, name, estimate):
    f, logits, exact = setup
    mean, se = _moments(estimate(f), logits)
    z = ((mean - exact) / se.clamp_min(1e-6)).abs()
    assert z.max() < 4.5, (name, z.max().item())


@pytest.mark.parametrize(
    "name, estimate",
    [
        ("straight-through", lambda f: lambda lg, g: E.straight_through(lg, f, g)),
        ("Gumbel-softmax", lambda f: lambda lg, g: E.gumbel_softmax(lg, f, g, tau=1.0)),
        ("ST Gumbel-softmax", lambda f: lambda lg, g: E.straight_through_gumbel(lg, f, g, tau=1.0)),
    ],
)
def test_biased_estimators_carry_a_bias_well_above_its_error(setup, name, estimate):
    f, logits, exact = setup
    mean, se = _moments(estimate(f), logits)
    bias = (mean - exact).norm()
    assert bias > 10 * se.norm(), (name, bias.item(), se.norm().item())


def test_the_baseline_lowers_the_score_functions_variance(setup):
    f, logits, _ = setup
    values = E.exact_expectation(logits, f).item()  # a good constant baseline: the mean reward
    plain, base = [], []
    for s in range(200):
        plain.append(_grad(lambda lg: E.score_function(lg, f, torch.Generator().manual_seed(s)), logits))
        base.append(_grad(lambda lg: E.score_function(lg, f, torch.Generator().manual_seed(s), values), logits))
    assert torch.stack(base).var(0).sum() < torch.stack(plain).var(0).sum()


def test_gaussian_reparameterisation_and_score_function_are_unbiased_and_reparameterisation_varies_less():
    c = torch.tensor([0.5, -1.0])
    f = lambda z: -((z - c) ** 2).sum(1)  # noqa: E731 - E f = -((mu - c)^2 + sigma^2)
    mu, logvar = torch.tensor([[0.2, 0.3]]), torch.tensor([[-0.5, 0.4]])
    exact_mu = -2 * (mu - c)
    exact_logvar = -logvar.exp()
    grads = {}
    for name, est in (("reparam", E.reparameterised), ("score", E.gaussian_score_function)):
        draws = []
        for s in range(3000):
            m, lv = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
            est(m, lv, f, torch.Generator().manual_seed(s)).backward()
            draws.append(torch.cat([m.grad, lv.grad], 1))
        grads[name] = torch.cat(draws)
        mean, se = grads[name].mean(0), grads[name].std(0) / math.sqrt(len(draws))
        assert ((mean - torch.cat([exact_mu, exact_logvar], 1)[0]).abs() / se).max() < 4.5, name
    assert grads["reparam"].var(0).sum() < grads["score"].var(0).sum() / 5


def test_jangs_temperature_schedule():
    assert E.annealed_temperature(0, 1e-3, 500) == 1.0
    assert E.annealed_temperature(499, 1e-3, 500) == 1.0  # held until the next update
    assert E.annealed_temperature(500, 1e-3, 500) == pytest.approx(math.exp(-0.5))
    assert E.annealed_temperature(10**6, 1e-3, 500) == 0.5  # the floor
