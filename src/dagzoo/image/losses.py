"""Every training objective of the image family, as a pure function of tensors.

- `diffusion_loss`: E[lambda(sigma) ||D(y + sigma n; sigma) - y||^2], the one loss of every
  diffusion and flow model in EDM's form (Karras et al. 2022, eq. 2 / 8; the preconditionings in
  `dagzoo.image.preconditioning`).
- `discretized_logistic_log_prob`, `bits_per_dim`: the VAE decoder's likelihood of 8-bit images.
  Pixels are integers 0..255, seen by models as x = k / 127.5 - 1; the discretized logistic
  (Salimans et al. 2017, one component per sub-pixel) gives the probability of the bin
  [x - 1/255, x + 1/255], with the edge bins extended to -inf / +inf, so -log p is a proper code
  length and NELBO / (D ln 2) is the bits/dim that the papers report.
- `gaussian_kl`: the Gaussian VAE's analytic KL to N(0, I) (Kingma & Welling 2014, appendix B).
- `categorical_kl_uniform`: the Gumbel-softmax VAE's KL of q(z|x) to a uniform prior (Jang et al. 2017).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dagzoo.augment import per_example
from dagzoo.distributed import draw_sharded
from dagzoo.image.preconditioning import Preconditioning, denoise

LOG_SCALE_MIN = -7.0


def diffusion_loss(
    net, pre: Preconditioning, y: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """E[lambda(sigma) ||D(y + sigma n; sigma) - y||^2], mean over dimensions (EDM's loss, eq. 2 / 8).
    In a data-parallel step, y is this rank's shard and sigma, n its shard of the global draws."""
    sigma = per_example(draw_sharded(lambda n: pre.sample_sigma(n, generator), y.shape[0]).to(y.device), y)
    noise = draw_sharded(lambda n: torch.randn((n, *y.shape[1:]), generator=generator), y.shape[0]).to(y.device)
    D = denoise(net, pre, y + sigma * noise, sigma.reshape(-1))
    return (pre.loss_weight(sigma) * (D - y) ** 2).mean()


def discretized_logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log P(x) per sub-pixel, x in [-1, 1] on the 256-level grid."""
    log_scale = log_scale.clamp(min=LOG_SCALE_MIN)
    inv_s = torch.exp(-log_scale)
    centered = x - mean
    plus_in = inv_s * (centered + 1.0 / 255.0)
    min_in = inv_s * (centered - 1.0 / 255.0)
    log_cdf_plus = plus_in - F.softplus(plus_in)  # log sigmoid(plus_in), for the bin at 0
    log_one_minus_cdf_min = -F.softplus(min_in)  # log(1 - sigmoid(min_in)), for the bin at 255
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    mid_in = inv_s * centered  # density x bin width where cdf_delta underflows
    log_pdf_mid = mid_in - log_scale - 2.0 * F.softplus(mid_in) + math.log(2.0 / 255.0)
    inner = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid)
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, inner))


def bits_per_dim(nll_nats: torch.Tensor, dims: int) -> torch.Tensor:
    return nll_nats / (dims * math.log(2.0))


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over the last axis."""
    return 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)


def categorical_kl_uniform(logits: torch.Tensor) -> torch.Tensor:
    """KL(q || uniform over K classes) = sum_k q_k (log q_k + log K), summed over all but the batch axis."""
    logq = torch.log_softmax(logits, dim=-1)
    K = logits.shape[-1]
    return (logq.exp() * (logq + torch.log(torch.tensor(float(K))))).flatten(1).sum(1)
