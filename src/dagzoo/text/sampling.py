"""The one categorical draw every text sampler makes (autoregressive, n-gram and diffusion alike)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the n-gram model's stages run without torch (see Model.uses_torch)
    import torch


def sample_from_logits(
    logits: torch.Tensor, generator: torch.Generator, temperature: float = 1.0, top_k: int | None = None
) -> torch.Tensor:
    """One categorical draw per row (last axis) of logits, by Gumbel-max in float64; the argmax
    (no noise drawn) at temperature <= 0."""
    import torch

    logits = logits.detach().cpu().to(torch.float64)
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    u = torch.rand(logits.shape, generator=generator, dtype=torch.float64).clamp_(1e-300, 1.0)
    return torch.argmax(logits - torch.log(-torch.log(u)), dim=-1)
