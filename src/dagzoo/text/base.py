"""What every text model provides, and the context a training job hands it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from dagzoo.data.tokenize import TokenData


@dataclass
class RunContext:
    run_dir: Path
    seed: int
    config_hash: str
    device: torch.device
    window: int
    # val_metrics(log_probs_fn) -> {"val/bpc": ..., ...} on the fixed validation subset
    val_metrics: Callable[[Callable[[np.ndarray, int], np.ndarray]], dict]
    on_progress: Callable[[], None]
    desc: str = "train"


class TextModel:
    """Base class. A model trains on `data` (train split), saves itself into the run directory,
    scores streams under the window protocol and samples windows that start after a BOS."""

    Params: type
    #: True when log_probs is the exact likelihood; False when it is an upper bound on the NLL.
    exact_likelihood = True

    def __init__(self, params, data: TokenData, device: torch.device):
        self.params, self.data, self.device = params, data, device

    @classmethod
    def check_experiment(cls, params, text_cfg: dict, where: str) -> None:
        """Cross-checks between the model's params and the family config (optional)."""

    def fit(self, ctx: RunContext) -> dict:
        """Train, save into ctx.run_dir, return a summary (tokens, flops, params, ...)."""
        raise NotImplementedError

    @classmethod
    def load(cls, params, data: TokenData, run_dir: Path, device: torch.device) -> "TextModel":
        raise NotImplementedError

    def log_probs(self, stream: np.ndarray, window: int) -> np.ndarray:
        """Natural-log probability of every token of `stream` (histories cut at window starts)."""
        raise NotImplementedError

    def sample(self, n: int, length: int, generator: torch.Generator, temperature: float,
               top_k: int | None) -> np.ndarray:
        """(n, length) token ids, each sample starting at a window start."""
        raise NotImplementedError


def sample_from_logits(logits: torch.Tensor, generator: torch.Generator, temperature: float = 1.0,
                       top_k: int | None = None) -> torch.Tensor:
    """One categorical draw per row of (B, V) logits, by Gumbel-max in float64."""
    logits = logits.detach().cpu().to(torch.float64) / max(temperature, 1e-8)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    u = torch.rand(logits.shape, generator=generator, dtype=torch.float64).clamp_(1e-300, 1.0)
    return torch.argmax(logits - torch.log(-torch.log(u)), dim=-1)
