"""Every objective of dagzoo.image.losses against an independent reference: EDM's loss written out
with Table 1's coefficients, the logistic CDF bin by bin, torch.distributions' KL divergences."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Normal, kl_divergence

from dagzoo.image.losses import (
    bits_per_dim,
    categorical_kl_uniform,
    diffusion_loss,
    discretized_logistic_log_prob,
    gaussian_kl,
)
from dagzoo.image.preconditioning import EDM


class AffineNet(torch.nn.Module):
    """F(x; c_noise) = 0.3 x + c_noise: any fixed function makes the loss a number to check."""

    def forward(self, x, c_noise):
        return 0.3 * x + c_noise.reshape(-1, 1, 1, 1)


def test_diffusion_loss_is_edm_eq2_with_table1_coefficients():
    y = torch.randn(6, 1, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = diffusion_loss(AffineNet(), EDM(), y, torch.Generator().manual_seed(7))
    # the same draws, in the same order, from the same generator: ln sigma ~ N(-1.2, 1.2^2), then n ~ N(0, I)
    g = torch.Generator().manual_seed(7)
    sigma = torch.exp(-1.2 + 1.2 * torch.randn(6, generator=g)).double()
    noise = torch.randn(6, 1, 3, 3, generator=g).double()
    total = 0.0
    for i in range(6):
        s, sd = float(sigma[i]), 0.5
        x = y[i] + s * noise[i]
        c_skip, c_out, c_in, c_noise = (
            sd**2 / (s**2 + sd**2),
            s * sd / math.sqrt(s**2 + sd**2),
            1 / math.sqrt(s**2 + sd**2),
            math.log(s) / 4,
        )
        d = c_skip * x + c_out * (0.3 * c_in * x + c_noise)
        total += (s**2 + sd**2) / (s * sd) ** 2 * float(((d - y[i]) ** 2).mean())
    assert float(got) == pytest.approx(total / 6, rel=1e-5)


def test_discretized_logistic_is_the_logistic_cdf_over_each_pixel_bin():
    def cdf(v, m, s):
        return 1 / (1 + math.exp(-(v - m) / s))

    mean, log_scale = 0.1, -2.5
    s = math.exp(log_scale)
    for k in (0, 77, 128, 140, 160, 255):  # the edges, and bins of mass > 1e-5
        x = k / 127.5 - 1
        lo = 0.0 if k == 0 else cdf(x - 1 / 255, mean, s)  # the edge bins reach -inf / +inf
        hi = 1.0 if k == 255 else cdf(x + 1 / 255, mean, s)
        got = discretized_logistic_log_prob(
            torch.tensor([x], dtype=torch.float64), torch.tensor([mean]).double(), torch.tensor([log_scale]).double()
        )
        assert float(got) == pytest.approx(math.log(hi - lo), rel=1e-6)
    # a bin whose mass underflows float32's CDF difference (< 1e-5) takes density x bin width
    x = 1 / 127.5 - 1
    got = discretized_logistic_log_prob(
        torch.tensor([x]).double(), torch.tensor([mean]).double(), torch.tensor([log_scale]).double()
    )
    assert float(got) == pytest.approx(math.log(cdf(x + 1 / 255, mean, s) - cdf(x - 1 / 255, mean, s)), abs=1e-3)


def test_bits_per_dim_divides_nats_by_dimensions_times_ln2():
    assert float(bits_per_dim(torch.tensor(768 * math.log(2) * 3.5), 768)) == pytest.approx(3.5)


def test_gaussian_kl_equals_torch_distributions():
    g = torch.Generator().manual_seed(3)
    mu, logvar = (
        torch.randn(4, 5, generator=g, dtype=torch.float64),
        torch.randn(4, 5, generator=g, dtype=torch.float64),
    )
    ref = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)
    np.testing.assert_allclose(gaussian_kl(mu, logvar).numpy(), ref.numpy(), rtol=1e-10)


def test_categorical_kl_to_uniform_equals_torch_distributions_summed_over_latents():
    logits = torch.randn(3, 4, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    ref = kl_divergence(Categorical(logits=logits), Categorical(logits=torch.zeros_like(logits))).sum(-1)
    np.testing.assert_allclose(categorical_kl_uniform(logits).numpy(), ref.numpy(), rtol=1e-6)  # log K in float32
