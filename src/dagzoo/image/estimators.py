"""Gradient estimators of E_q[f(z)] with respect to the parameters of q, one pure function each:
tensors in, a surrogate out whose gradient is the estimate (its value is not the objective).

Categorical latents: q(z | x) = prod_n Cat(z_n; softmax(logits_n)), logits (B, N, K); f maps
latents (B, N, K) (one-hot, or relaxed for the relaxations) to (B,) values, e.g. a VAE's
log p(x | z) with the decoder held fixed. Every surrogate averages over the batch.

- `exact_expectation`: sum_z q(z) f(z) over all K^N configurations (the reference gradient);
- `score_function`: REINFORCE, (f(z) - b) grad log q(z), b a baseline held fixed (a moving
  average of f, or 0) (Williams 1992);
- `leave_one_out`: S samples, each baselined by the mean f of the other S - 1 (Kool et al. 2019);
- `straight_through`: forward a one-hot sample, backward through the probabilities (Bengio et
  al. 2013);
- `gumbel_softmax`: f of the relaxed sample softmax((logits + g) / tau) (Jang et al. 2017;
  Maddison et al. 2017);
- `straight_through_gumbel`: forward the one-hot argmax, backward through the relaxed sample;
- Gaussian latents N(mu, exp(logvar)): `reparameterised` (z = mu + sigma eps) and
  `gaussian_score_function`.

The score-function estimators and the leave-one-out estimator are unbiased; the straight-through
and relaxed ones are biased (tests/image/test_estimators.py measures both against the exact
gradient).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from dagzoo.image.gumbel import gumbel_noise

Reward = Callable[[torch.Tensor], torch.Tensor]


def configurations(n: int, k: int, limit: int = 4096) -> torch.Tensor:
    """Every one of the K^N configurations of N K-way latents, one-hot: (K^N, N, K)."""
    if k**n > limit:
        raise ValueError(f"{k}^{n} = {k**n:,} configurations, more than the {limit:,} enumerated")
    index = torch.cartesian_prod(*[torch.arange(k)] * n).reshape(-1, n) if n > 1 else torch.arange(k)[:, None]
    return F.one_hot(index, k).float()


def exact_expectation(logits: torch.Tensor, f: Reward, limit: int = 4096) -> torch.Tensor:
    """mean over the batch of sum_z q(z | x) f(z): the objective itself, differentiable in the
    logits through q (f is evaluated on every configuration of every row)."""
    b, n, k = logits.shape
    z = configurations(n, k, limit).to(logits.device, logits.dtype)  # (C, N, K)
    log_q = (torch.log_softmax(logits, -1)[:, None] * z[None]).sum((-1, -2))  # (B, C)
    values = f(z[None].expand(b, -1, -1, -1).reshape(-1, n, k)).view(b, -1)  # (B, C)
    return (log_q.exp() * values).sum(1).mean()


def sample_one_hot(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """A categorical draw per latent, one-hot (Gumbel-max: argmax(logits + g))."""
    g = gumbel_noise(logits.shape, generator, logits.device, logits.dtype)
    return F.one_hot((logits.detach() + g).argmax(-1), logits.shape[-1]).to(logits.dtype)


def _log_q(logits: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return (torch.log_softmax(logits, -1) * z).sum((-1, -2))


def score_function(
    logits: torch.Tensor, f: Reward, generator: torch.Generator | None, baseline: float | torch.Tensor = 0.0
) -> torch.Tensor:
    """REINFORCE: one sample per row, gradient (f(z) - baseline) grad log q(z)."""
    z = sample_one_hot(logits, generator)
    with torch.no_grad():
        advantage = f(z) - baseline
    return (advantage * _log_q(logits, z)).mean()


def leave_one_out(logits: torch.Tensor, f: Reward, generator: torch.Generator | None, samples: int) -> torch.Tensor:
    """S samples per row, each baselined by the mean f of the others:
    (1 / S) sum_s (f(z_s) - mean_{j != s} f(z_j)) grad log q(z_s)."""
    if samples < 2:
        raise ValueError(f"leave-one-out needs at least 2 samples, got {samples}")
    b, n, k = logits.shape
    rep = logits.repeat_interleave(samples, 0)  # (B S, N, K): row-major, the S samples of a row together
    z = sample_one_hot(rep, generator)
    with torch.no_grad():
        values = f(z).view(b, samples)
        others = (values.sum(1, keepdim=True) - values) / (samples - 1)
        advantage = (values - others).reshape(-1)
    return (advantage * _log_q(rep, z)).view(b, samples).mean(1).mean()


def straight_through(logits: torch.Tensor, f: Reward, generator: torch.Generator | None) -> torch.Tensor:
    """f at a one-hot sample, the gradient passed through the probabilities:
    z = one_hot + p - stop_gradient(p)."""
    p = torch.softmax(logits, -1)
    z = sample_one_hot(logits, generator)
    return f(z + p - p.detach()).mean()


def relaxed_sample(logits: torch.Tensor, generator: torch.Generator | None, tau: float) -> torch.Tensor:
    g = gumbel_noise(logits.shape, generator, logits.device, logits.dtype)
    return torch.softmax((logits + g) / tau, -1)


def gumbel_softmax(logits: torch.Tensor, f: Reward, generator: torch.Generator | None, tau: float) -> torch.Tensor:
    """f at the relaxed sample softmax((logits + g) / tau)."""
    return f(relaxed_sample(logits, generator, tau)).mean()


def straight_through_gumbel(
    logits: torch.Tensor, f: Reward, generator: torch.Generator | None, tau: float
) -> torch.Tensor:
    """f at the one-hot argmax of the relaxed sample, the gradient through the relaxed sample."""
    y = relaxed_sample(logits, generator, tau)
    hard = F.one_hot(y.argmax(-1), y.shape[-1]).to(y.dtype)
    return f(hard + y - y.detach()).mean()


def annealed_temperature(step: int, rate: float, every: int, floor: float = 0.5, start: float = 1.0) -> float:
    """Jang et al.'s schedule: tau = max(floor, start exp(-rate t)), t updated every `every` steps."""
    return max(floor, start * math.exp(-rate * (step // every) * every))


def reparameterised(
    mu: torch.Tensor, logvar: torch.Tensor, f: Reward, generator: torch.Generator | None
) -> torch.Tensor:
    """Gaussian latents: f(mu + sigma eps), eps ~ N(0, I)."""
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype).to(mu.device)
    return f(mu + torch.exp(0.5 * logvar) * eps).mean()


def gaussian_score_function(
    mu: torch.Tensor, logvar: torch.Tensor, f: Reward, generator: torch.Generator | None, baseline: float = 0.0
) -> torch.Tensor:
    """Gaussian latents by REINFORCE: (f(z) - baseline) grad log N(z; mu, sigma^2), z drawn
    without a gradient path."""
    with torch.no_grad():
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype).to(mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps
        advantage = f(z) - baseline
    log_density = -0.5 * (logvar + (z - mu) ** 2 / logvar.exp() + math.log(2 * math.pi))
    return (advantage * log_density.flatten(1).sum(1)).mean()
