"""Masked (absorbing-state) discrete diffusion: schedules, masks, bounds and samplers (loss: text.losses).

Notation (MDLM, Sahoo et al. 2024): x_0 clean tokens, x_t noised tokens, alpha_t the probability
that a token is still clean at time t. Under the log-linear schedule alpha_t = 1 - t, each token is
independently replaced by MASK with probability t. The continuous-time NELBO is

    NELBO(x_0) = E_{t ~ U[0,1]} [ w(t) * sum_{i: x_t^i = MASK} -log p_theta(x_0^i | x_t) ],
    w(t) = -alpha'_t / (1 - alpha_t) = 1 / t     (log-linear),

with the SUBS parameterisation: the network never predicts MASK and unmasked positions are
copied, so only masked positions contribute. BD3-LM (Arriola et al. 2025) applies the same bound
block by block, each block with its own t, conditioned on the clean previous blocks.

`logits_fn(x_t, t) -> (B, T, V)` stands for the network everywhere, so each formula can be tested
with an oracle in place of a trained model.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from dagzoo.distributed import shard_rand
from dagzoo.text.sampling import sample_from_logits

LogitsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------------- schedule
def alpha_loglinear(t: torch.Tensor) -> torch.Tensor:
    return 1.0 - t


def nelbo_weight(t: torch.Tensor, alpha: Callable[[torch.Tensor], torch.Tensor] = alpha_loglinear) -> torch.Tensor:
    """w(t) = -alpha'(t) / (1 - alpha(t)), alpha' by autograd (1/t for the log-linear schedule)."""
    t = t.detach().clone().requires_grad_(True)
    a = alpha(t)
    (da,) = torch.autograd.grad(a.sum(), t)
    return (-da / (1 - a)).detach()


def stratified_times(n: int, generator: torch.Generator, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """n low-discrepancy samples of U[low, high]: one uniform offset, n evenly spaced strata."""
    u = torch.rand((), generator=generator)
    return low + (high - low) * ((u + torch.arange(n) / n) % 1.0)


# ---------------------------------------------------------------------------------- masking
def mask_tokens(x0: torch.Tensor, t_tok: torch.Tensor, mask_id: int, generator: torch.Generator):
    """Replace each token by MASK with probability t (t broadcast to x0's shape). -> (x_t, masked)."""
    u = shard_rand(x0.shape, generator).to(x0.device)
    masked = u < t_tok
    return torch.where(masked, torch.full_like(x0, mask_id), x0), masked


# ---------------------------------------------------------------------------------- BD3-LM
def bd3_attention_mask(length: int, block: int, device=None) -> torch.Tensor:
    """The block-diffusion mask over the concatenation [x_t (length) ; x_0 (length)], True = attend.

    x_t block b attends to its own block (bidirectional) and to x_0 blocks < b;
    x_0 block b attends to x_0 blocks <= b (block-causal); x_0 never attends to x_t.
    """
    idx = torch.arange(2 * length, device=device)
    is_xt = idx < length
    blk = (idx % length) // block
    q_xt, k_xt = is_xt[:, None], is_xt[None, :]
    q_b, k_b = blk[:, None], blk[None, :]
    xt_xt = q_xt & k_xt & (q_b == k_b)
    xt_x0 = q_xt & ~k_xt & (k_b < q_b)
    x0_x0 = ~q_xt & ~k_xt & (k_b <= q_b)
    return xt_xt | xt_x0 | x0_x0


def block_times(
    batch: int, length: int, block: int, generator: torch.Generator, low: float, high: float
) -> torch.Tensor:
    """One t per block (stratified over all blocks of the batch), expanded to tokens: (batch, length)."""
    n_blocks = math.ceil(length / block)
    t = stratified_times(batch * n_blocks, generator, low, high)
    t = t[torch.randperm(t.numel(), generator=generator)].view(batch, n_blocks)
    return t.repeat_interleave(block, dim=1)[:, :length]


# ---------------------------------------------------------------------------------- bound estimate
def nelbo_windows(
    windows: list[torch.Tensor],
    k: int,
    generator: torch.Generator,
    nelbo_sample: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    eps: float = 1e-4,
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """K stratified t-samples per window -> (NELBO estimate per window, variance of that estimate).

    `nelbo_sample(x0 (B, W), t (B,)) -> (B,)` draws one NELBO sample per row at the given t.
    The variance is the sample variance over the K draws / K (conservative under stratification).
    """
    means, variances = [], []
    for i in range(0, len(windows), batch_size):
        group = windows[i : i + batch_size]
        for length in sorted({w.numel() for w in group}):
            rows = torch.stack([w for w in group if w.numel() == length])
            t = torch.stack([stratified_times(k, generator, eps, 1.0) for _ in range(rows.shape[0])])  # (n, K)
            draws = nelbo_sample(rows.repeat_interleave(k, dim=0), t.reshape(-1)).view(-1, k).double()
            means.append(draws.mean(dim=1).cpu().numpy())
            variances.append((draws.var(dim=1, unbiased=True) / k if k > 1 else torch.zeros(len(rows))).cpu().numpy())
    return np.concatenate(means), np.concatenate(variances)


def split_windows(stream: np.ndarray, window: int) -> list[torch.Tensor]:
    s = torch.from_numpy(np.asarray(stream, dtype=np.int64))
    return [s[i : i + window] for i in range(0, s.numel(), window)]


# ---------------------------------------------------------------------------------- samplers
def ancestral_sample(
    logits_fn: LogitsFn,
    n: int,
    length: int,
    mask_id: int,
    steps: int,
    generator: torch.Generator,
    temperature: float = 1.0,
    device="cpu",
    x: torch.Tensor | None = None,
) -> tuple[torch.Tensor, int]:
    """MDLM ancestral sampling on the grid t_i = 1 - i/steps: from t to s each still-masked token
    is revealed with probability (alpha_s - alpha_t)/(1 - alpha_t) = (t - s)/t, its value drawn
    from p_theta(x_0 | x_t); revealed tokens are never changed (carry-over). -> (tokens, NFE)."""
    x = torch.full((n, length), mask_id, dtype=torch.long, device=device) if x is None else x
    nfe = 0
    for i in range(steps):
        t, s = 1.0 - i / steps, 1.0 - (i + 1) / steps
        masked = (x == mask_id).cpu()
        if not masked.any():
            break
        logits = logits_fn(x, torch.full((n,), t, device=device))
        nfe += 1
        draw = sample_from_logits(logits, generator, temperature)
        reveal = masked & (torch.rand(masked.shape, generator=generator, dtype=torch.float64) < (t - s) / t)
        x = torch.where(reveal.to(device), draw.to(device), x)
    return x, nfe


def llada_sample(
    logits_fn: LogitsFn,
    n: int,
    length: int,
    mask_id: int,
    steps: int,
    block_length: int,
    generator: torch.Generator,
    temperature: float = 1.0,
    remasking: str = "low_confidence",
    device="cpu",
) -> tuple[torch.Tensor, int]:
    """LLaDA's sampler: semi-autoregressive blocks left to right; each step predicts every masked
    token, then keeps the k most confident predictions of the current block (k spreads the block's
    masks evenly over its steps) and leaves the rest masked ("low_confidence" remasking), or
    keeps k random ones ("random"). Draws are Gumbel-max in float64. -> (tokens, NFE)."""
    if remasking not in ("low_confidence", "random"):
        raise ValueError(f"remasking must be 'low_confidence' or 'random', got {remasking!r}")
    x = torch.full((n, length), mask_id, dtype=torch.long, device=device)
    n_blocks = math.ceil(length / block_length)
    steps_per_block = max(1, steps // n_blocks)
    nfe = 0
    for b in range(n_blocks):
        lo, hi = b * block_length, min(length, (b + 1) * block_length)
        in_block = torch.zeros(length, dtype=torch.bool)
        in_block[lo:hi] = True
        n_masked = hi - lo
        # LLaDA: the block's masks are spread evenly over its steps (remainder first)
        per_step = [
            n_masked // steps_per_block + (1 if j < n_masked % steps_per_block else 0) for j in range(steps_per_block)
        ]
        for k in per_step:
            if k == 0:
                continue
            masked = (x == mask_id).cpu()
            t = masked.float().mean(dim=1).to(device)
            logits = logits_fn(x, t)
            nfe += 1
            draw = sample_from_logits(logits, generator, temperature)
            probs = torch.softmax(logits.detach().cpu().double(), dim=-1)
            if remasking == "low_confidence":
                score = probs.gather(-1, draw[..., None])[..., 0]
            else:
                score = torch.rand(masked.shape, generator=generator, dtype=torch.float64)
            score = torch.where(masked & in_block, score, torch.full_like(score, -math.inf))
            keep = torch.zeros_like(masked)
            keep.scatter_(1, score.topk(k, dim=1).indices, True)
            keep &= masked & in_block
            x = torch.where(keep.to(device), draw.to(device), x)
    return x, nfe
