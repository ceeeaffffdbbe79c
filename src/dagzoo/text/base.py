"""What every text model provides (neural or not: the neural backbone is dagzoo.text.neural)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from dagzoo.data.tokenize import TokenData
from dagzoo.lifecycle import Model

if TYPE_CHECKING:  # the n-gram model's stages run without torch (see Model.uses_torch)
    import torch

# (stream, window) -> (NLL or its upper bound per window in nats, variance of that estimate or None)
WindowNLL = Callable[[np.ndarray, int], "tuple[np.ndarray, np.ndarray | None]"]


def val_metrics_fn(data: TokenData, spec: dict) -> Callable[[WindowNLL], dict]:
    """window_nll_fn -> {"val/bpc": ..., ...} on the run's fixed validation subset (the first
    `text.eval.val_tokens` tokens of the val split, scored in the run's windows)."""
    from dagzoo.eval.perplexity import likelihood_metrics

    window = spec["eval"]["window"]
    val = data.tokens("val")[: spec["eval"]["val_tokens"]]
    chars = len(data.tokenizer().decode(val))

    def metrics(window_nll_fn: WindowNLL) -> dict:
        nll, var = window_nll_fn(val, window)
        return likelihood_metrics(nll, var, len(val), chars, "val")
    return metrics


class TextModel(Model):
    """Base class. A model trains on `data` (train split), saves itself into the run directory,
    scores streams under the window protocol and samples windows that start after a BOS."""

    #: True when log_probs is the exact likelihood; False when it is an upper bound on the NLL.
    exact_likelihood = True

    def log_probs(self, stream: np.ndarray, window: int) -> np.ndarray:
        """Natural-log probability of every token of `stream` (histories cut at window starts)."""
        raise NotImplementedError

    def window_nll(self, stream: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray | None]:
        """NLL of every window (nats) and the variance of the estimate (None: exact).

        Exact models sum their token log-probs; likelihood-bound models override this."""
        lp = self.log_probs(stream, window)
        return -np.add.reduceat(lp, np.arange(0, len(lp), window)), None

    def sample(self, n: int, length: int, generator: torch.Generator, temperature: float,
               top_k: int | None) -> tuple[np.ndarray, int]:
        """(n, length) token ids, each sample starting at a window start, and the number of
        network evaluations (NFE) it took."""
        raise NotImplementedError


def sample_from_logits(logits: torch.Tensor, generator: torch.Generator, temperature: float = 1.0,
                       top_k: int | None = None) -> torch.Tensor:
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
