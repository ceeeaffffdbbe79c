"""Discrete likelihoods of 8-bit images and the VAE bound in bits per dimension.

Pixels are integers 0..255, seen by models as x = k / 127.5 - 1; the decoder's discretized
logistic (Salimans et al. 2017, one component per sub-pixel) gives the probability of the bin
[x - 1/255, x + 1/255], with the edge bins extended to -inf / +inf, so -log p is a proper
code length and NELBO / (D ln 2) is the bits/dim that the papers report."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_SCALE_MIN = -7.0


def discretized_logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log P(x) per sub-pixel, x in [-1, 1] on the 256-level grid."""
    log_scale = log_scale.clamp(min=LOG_SCALE_MIN)
    inv_s = torch.exp(-log_scale)
    centered = x - mean
    plus_in = inv_s * (centered + 1.0 / 255.0)
    min_in = inv_s * (centered - 1.0 / 255.0)
    log_cdf_plus = plus_in - F.softplus(plus_in)          # log sigmoid(plus_in), for the bin at 0
    log_one_minus_cdf_min = -F.softplus(min_in)           # log(1 - sigmoid(min_in)), for the bin at 255
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    mid_in = inv_s * centered                             # density x bin width where cdf_delta underflows
    log_pdf_mid = mid_in - log_scale - 2.0 * F.softplus(mid_in) + math.log(2.0 / 255.0)
    inner = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid)
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, inner))


def bits_per_dim(nll_nats: torch.Tensor, dims: int) -> torch.Tensor:
    return nll_nats / (dims * math.log(2.0))
