"""Every training objective of the representations family, as a pure function of tensors.

- `nt_xent`: SimCLR's normalised temperature-scaled cross-entropy (Chen et al. 2020, eq. 1).
- `margin_contrastive_loss`: the pairwise margin loss (Hadsell, Chopra & LeCun 2006), y = 1 for a
  matching pair (DrLIM's paper writes Y = 0 for similar pairs, with the same two halves).
- `infonce`: CPC's InfoNCE (van den Oord et al. 2018, eq. 4) over a critic's score matrix.
- `soft_f1_loss`: 1 - macro F1 with softmax probabilities in place of the one-hot argmax
  (`soft_macro_f1`), so it has a gradient; a probe trained with it is compared with cross-entropy.
- `reinforce_accuracy_loss`: the other answer to a metric without a gradient: the classifier is a
  policy, each example's accuracy (1 for the right class) its reward, and the score-function
  estimator (Williams 1992) with a baseline gives the gradient of the expected accuracy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent of N positive pairs (z1_i, z2_i): with u the 2N L2-normalised views and
    s_ij = u_i . u_j / T, loss = mean over the 2N anchors i of -log(exp(s_i,p(i)) / sum_{k != i}
    exp(s_ik)), p(i) the other view of i's image (SimCLR eq. 1, averaged over both orders)."""
    u = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    sim = u @ u.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=u.device), float("-inf"))
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(u.device)
    return F.cross_entropy(sim, positive)


def margin_contrastive_loss(e_a: torch.Tensor, e_b: torch.Tensor, y: torch.Tensor, margin: float) -> torch.Tensor:
    """1/(2P) sum over the P pairs of y d^2 + (1 - y) max(margin - d, 0)^2 (y = 1: a matching
    pair): half the mean, as the seed's formula, Caffe's ContrastiveLoss and DrLIM's 1/2 factors."""
    d = torch.linalg.vector_norm(e_a - e_b, dim=1)
    y = y.to(d.dtype)
    return 0.5 * (y * d**2 + (1 - y) * torch.clamp(margin - d, min=0) ** 2).mean()


def infonce(scores: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each row's positive (column i for row i) against all columns."""
    return F.cross_entropy(scores, torch.arange(len(scores), device=scores.device))


def soft_macro_f1(probs: torch.Tensor, y: torch.Tensor, classes: int) -> torch.Tensor:
    """Macro F1 with class probabilities in place of the one-hot prediction: per class c,
    TP = sum p_c y_c, FP = sum p_c (1 - y_c), FN = sum (1 - p_c) y_c, F1_c = 2 TP / (2 TP + FP + FN),
    averaged over the classes present in the predictions or the labels. With one-hot probs it is
    exactly the hard macro F1."""
    onehot = F.one_hot(y, classes).to(probs.dtype)
    tp = (probs * onehot).sum(0)
    fp, fn = (probs * (1 - onehot)).sum(0), ((1 - probs) * onehot).sum(0)
    denom = 2 * tp + fp + fn
    present = denom > 0
    return (2 * tp[present] / denom[present]).mean()


def soft_f1_loss(logits: torch.Tensor, y: torch.Tensor, classes: int) -> torch.Tensor:
    """1 - the soft macro F1 of the softmax probabilities (differentiable)."""
    return 1 - soft_macro_f1(logits.softmax(1), y, classes)


def reinforce_accuracy_loss(
    logits: torch.Tensor, y: torch.Tensor, baseline: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(surrogate loss, rewards): a class a_i ~ softmax(logits_i) per example, reward
    r_i = 1[a_i = y_i], surrogate -mean_i (r_i - b) log pi(a_i | x_i), whose gradient is an unbiased
    estimate of -grad mean_i pi(y_i | x_i), the expected accuracy's (the baseline b, fixed before the
    draws, changes the variance only)."""
    log_pi = logits.log_softmax(1)
    action = torch.multinomial(log_pi.detach().exp(), 1, generator=generator).squeeze(1)
    reward = (action == y).to(logits.dtype)
    chosen = log_pi.gather(1, action[:, None]).squeeze(1)
    return -((reward - baseline) * chosen).mean(), reward
