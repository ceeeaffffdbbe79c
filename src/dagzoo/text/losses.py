"""Every training objective of the text family, as a pure function of tensors.

- `ar_cross_entropy`: next-token cross-entropy of an autoregressive LM (nats per token).
- `masked_nelbo_terms`: the masked-diffusion NELBO of MDLM (Sahoo et al. 2024, eq. 10 under the
  log-linear schedule, w(t) = 1/t), also BD3-LM's per-block bound (Arriola et al. 2025).
- `score_entropy`: SEDD's denoising score entropy (Lou et al. 2024, eq. 9), for any graph of
  `dagzoo.text.sedd` (absorbing or uniform).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ar_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean -log p(x_i | x_<i) over every position: logits (B, T, V) scored against targets (B, T)."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))


def masked_nelbo_terms(
    logits: torch.Tensor, x0: torch.Tensor, masked: torch.Tensor, t_tok: torch.Tensor
) -> torch.Tensor:
    """Per-sequence NELBO sample sum_i [x_t^i = MASK] * w(t_i) * CE_i (nats), w = 1/t."""
    ce = F.cross_entropy(logits.float().transpose(1, 2), x0, reduction="none")
    return (ce * masked / t_tok).sum(dim=1)


def score_entropy(log_s, x, x0, sigmabar, graph) -> torch.Tensor:
    """Denoising score entropy per position (..., ) from log-ratios (..., n_states)."""
    q = graph.rates_into(x)
    q = q.scatter(-1, x[..., None], 0.0)  # y != x
    r = graph.conditional_ratios(x, x0, sigmabar)
    k = torch.xlogy(r, r) - r
    r_log_s = torch.where(r > 0, r * log_s, torch.zeros_like(log_s))  # 0 * log 0 = 0
    return (q * (log_s.exp() - r_log_s + k)).sum(-1)
