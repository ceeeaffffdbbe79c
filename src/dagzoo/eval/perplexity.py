"""Likelihood metrics under dagzoo's window protocol.

Every text model scores the same token stream cut into the same consecutive windows of
`window` tokens (the last one may be shorter); the history of a token never reaches across a
window start, and the first token of each window is scored too (after a BOS). Totals are over
every token of the split, not a sample of batches.
"""

from __future__ import annotations

import math

import numpy as np


def window_history(n_tokens: int, window: int) -> np.ndarray:
    """For each position, how many earlier tokens belong to its window."""
    return np.arange(n_tokens) % window


def likelihood_metrics(log_probs: np.ndarray, n_chars: int, prefix: str) -> dict:
    """nats/token, perplexity, bits/token and bits per character from per-token log-probs."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    if not np.all(np.isfinite(log_probs)):
        raise ValueError(f"{np.count_nonzero(~np.isfinite(log_probs))} token log-probabilities are not finite")
    total = -float(log_probs.sum())
    n = int(log_probs.size)
    nll = total / n
    return {
        f"{prefix}/nll": nll,
        f"{prefix}/ppl": math.exp(nll),
        f"{prefix}/bits_per_token": nll / math.log(2),
        f"{prefix}/bpc": total / math.log(2) / n_chars,
        f"{prefix}/tokens": n,
        f"{prefix}/chars": int(n_chars),
    }
