"""Likelihood metrics under dagzoo's window protocol.

Every text model scores the same token stream cut into the same consecutive windows of
`window` tokens (the last one may be shorter); the history of a token never reaches across a
window start, and the first token of each window is scored too (after a BOS). Totals are over
every token of the split, not a sample of batches. Diffusion models report an upper bound
(NELBO) estimated by sampling; its standard error is reported next to it (`*_se`), NaN when it
cannot be estimated (one sample per window).
"""

from __future__ import annotations

import math

import numpy as np


def window_history(n_tokens: int, window: int) -> np.ndarray:
    """For each position, how many earlier tokens belong to its window."""
    return np.arange(n_tokens) % window


def likelihood_metrics(
    window_nll: np.ndarray, window_var: np.ndarray | None, n_tokens: int, n_chars: int, prefix: str
) -> dict:
    """nats/token, perplexity, bits/token and bits per character from per-window NLLs (nats)."""
    window_nll = np.asarray(window_nll, dtype=np.float64)
    if not np.all(np.isfinite(window_nll)):
        raise ValueError(f"{np.count_nonzero(~np.isfinite(window_nll))} window likelihoods are not finite")
    total = float(window_nll.sum())
    nll = total / n_tokens
    out = {
        f"{prefix}/nll": nll,
        f"{prefix}/ppl": math.exp(nll),
        f"{prefix}/bits_per_token": nll / math.log(2),
        f"{prefix}/bpc": total / math.log(2) / n_chars,
        f"{prefix}/tokens": int(n_tokens),
        f"{prefix}/chars": int(n_chars),
    }
    # an exact likelihood has no estimation error (SE 0: a claim can weigh it); a bound's SE is
    # that of its sampled estimate (NaN when it cannot be estimated)
    se_total = 0.0 if window_var is None else _total_se(np.asarray(window_var, dtype=np.float64))
    out[f"{prefix}/nll_se"] = se_total / n_tokens
    out[f"{prefix}/bpc_se"] = se_total / math.log(2) / n_chars
    return out


def _total_se(window_var: np.ndarray) -> float:
    """Standard error of the summed estimate from the variances of the per-window estimates;
    NaN when it cannot be estimated, never 0.

    A variance array means the NLL is a stochastic estimate (exact models pass None). A window's
    variance is unestimable from a single draw: the estimator marks it NaN, or (nelbo_windows
    with nelbo_samples: 1) reports 0. A Monte-Carlo NELBO from two or more draws of a window has a
    positive sample variance, so an all-zero array is that single-draw case, not a certain bound:
    reporting its SE as 0 would claim an exact value."""
    if window_var.size == 0 or np.isnan(window_var).any() or not np.any(window_var > 0):
        return math.nan
    return math.sqrt(float(np.sum(window_var)))
