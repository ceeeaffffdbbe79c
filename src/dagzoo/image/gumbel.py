"""The Gumbel-softmax (concrete) relaxation of a categorical sample (Jang et al. 2017; Maddison
et al. 2017): y = softmax((logits + g) / tau), g ~ Gumbel(0, 1). As tau -> 0, y -> one_hot(argmax
(logits + g)), which is an exact categorical draw (Gumbel-max). `hard`: the straight-through
estimator (forward one-hot, backward through the soft sample)."""

from __future__ import annotations

import torch


def gumbel_noise(shape, generator: torch.Generator | None = None, device=None, dtype=torch.float32) -> torch.Tensor:
    u = torch.rand(shape, generator=generator, dtype=torch.float64).clamp_(1e-20, 1.0 - 1e-16)
    return (-torch.log(-torch.log(u))).to(device=device, dtype=dtype)


def gumbel_softmax(
    logits: torch.Tensor, tau: float, hard: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    g = gumbel_noise(logits.shape, generator, logits.device, logits.dtype)
    y = torch.softmax((logits + g) / tau, dim=-1)
    if not hard:
        return y
    one_hot = torch.nn.functional.one_hot(y.argmax(-1), y.shape[-1]).to(y.dtype)
    return one_hot + y - y.detach()
