"""Evaluations on frozen features, as pure functions of feature arrays.

- `linear_probe`: multinomial logistic regression (scikit-learn, L-BFGS) on standardised
  features; the L2 strength C is chosen on the validation split from a grid (probes fitted on
  train), the probe refitted with that C on train + val then scores the test split once.
- `knn_predict`: weighted kNN (Wu et al. 2018, InstDisc): cosine similarities to the train bank,
  the k nearest vote with weight exp(s / T).
- `train_linear`: a linear probe fitted with cross-entropy, with `dagzoo.repr.losses.soft_f1_loss`,
  or by REINFORCE on per-example accuracy (`reinforce_accuracy_loss`).
- `infonce_bound`: I(X; Y) >= log M - L_NCE (Poole et al. 2019, eq. 12) from a critic's scores.

Test labels are never an argument of a function that fits or chooses anything: the callers
score predictions last (see `FrozenFeatures`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dagzoo.data.integrity import load_npz
from dagzoo.errors import DataError
from dagzoo.repr.losses import reinforce_accuracy_loss, soft_f1_loss


@dataclass
class FrozenFeatures:
    """Features and labels of the three splits, read from features.npz; every read of a label
    array is logged in `reads` (a test checks that the test labels are read last)."""

    arrays: dict
    reads: list = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> "FrozenFeatures":
        if not Path(path).exists():
            raise DataError(f"{path} does not exist: run the repr_encode stage first")
        return cls(
            load_npz(
                path,
                tuple(f"{split}_{part}" for split in ("train", "val", "test") for part in "xy"),
                "delete it and rerun repr_encode",
            )
        )

    def x(self, split: str) -> np.ndarray:
        return self.arrays[f"{split}_x"]

    def projected(self) -> "FrozenFeatures | None":
        """The same splits with the post-projector features (SimCLR), sharing the read log."""
        if "proj_train_x" not in self.arrays:
            return None
        arrays = {**self.arrays, **{f"{s}_x": self.arrays[f"proj_{s}_x"] for s in ("train", "val", "test")}}
        return FrozenFeatures(arrays, self.reads)

    def y(self, split: str) -> np.ndarray:
        self.reads.append(split)
        y = self.arrays[f"{split}_y"]
        if (y < 0).any():
            raise DataError(f"the {split} split has no labels; the probe needs a labelled split")
        return y


def accuracy(pred: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(top-1 accuracy, its binomial standard error sqrt(p (1 - p) / n))."""
    p = float(np.mean(pred == y))
    return p, math.sqrt(p * (1 - p) / len(y))


def macro_f1(pred: np.ndarray, y: np.ndarray, classes: int) -> float:
    """The mean over classes of 2 TP / (2 TP + FP + FN) (a class absent from both: skipped)."""
    scores = []
    for c in range(classes):
        tp = np.sum((pred == c) & (y == c))
        fp, fn = np.sum((pred == c) & (y != c)), np.sum((pred != c) & (y == c))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 1e-8, std, 1.0)
    return [(a - mean) / std for a in (train, *others)]


#: L-BFGS iterations a probe fit may take; a fit that used them all stopped short of its optimum
MAX_ITER = 5000
#: L-BFGS's gradient tolerance of the refit whose accuracy is reported: at scikit-learn's default
#: 1e-4 a fit on raw pixels stops about 1% above the optimum of its objective and its accuracy
#: moves with the BLAS thread count; at 1e-8 the objective is within 1e-6 of an independent
#: optimiser's (tested)
TOL = 1e-8
#: the tolerance of the fits that only choose C (by validation accuracy, which a fit 1% short of
#: its optimum does not change); the refit starts from the chosen one's weights
GRID_TOL = 1e-4


def _logistic(c: float, bias: bool, seed: int, tol: float = TOL):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, fit_intercept=bias, max_iter=MAX_ITER, tol=tol, random_state=seed)


def logistic_objective(coef: np.ndarray, intercept: np.ndarray, x: np.ndarray, y: np.ndarray, c: float) -> float:
    """The objective scikit-learn's L2 multinomial logistic regression minimises:
    C * sum_i -log softmax(W x_i + b)[y_i] + ||W||^2 / 2 (the intercept unpenalised), in float64."""
    from scipy.special import logsumexp

    logits = np.asarray(x, np.float64) @ np.asarray(coef, np.float64).T + np.asarray(intercept, np.float64)
    if logits.shape[1] == 1:  # two classes: one logit, the softmax of (0, z)
        logits = np.concatenate([np.zeros_like(logits), logits], axis=1)
    nll = logsumexp(logits, axis=1) - logits[np.arange(len(y)), y]
    return float(c * nll.sum() + 0.5 * np.sum(np.asarray(coef, np.float64) ** 2))


def linear_probe(
    ff: FrozenFeatures, grid: list[float], seed: int = 0, bias: bool = True, standardise: bool = True
) -> dict:
    """Choose C on val (a probe per C of the grid, fitted on train), then refit with that C on
    train + val (standardised with their statistics) and predict the test split (its labels are
    not read here) -> {C, val accuracy per C, iterations of the refit, whether it converged
    (L-BFGS's own verdict: it met its tolerance, neither the iteration cap nor a failed line
    search stopped it), the refit's objective (`logistic_objective`), test predictions}: the
    protocol of Kornblith et al. 2019 and SimCLR's appendix B.6, so the validation images train the
    final probe too. `standardise` False: raw, uncentred features.

    Features are cast to float64 once: in float32 the line search of L-BFGS fails near the
    optimum of a poorly conditioned fit (raw pixels) and stops short of it without its
    convergence check noticing."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    x = {split: np.asarray(ff.x(split), dtype=np.float64) for split in ("train", "val", "test")}

    def scaled(fit_on: list[np.ndarray], *others: np.ndarray) -> list[np.ndarray]:
        return _standardise(np.concatenate(fit_on), *others) if standardise else [np.concatenate(fit_on), *others]

    ytr, yva = ff.y("train"), ff.y("val")
    xtr, xva = scaled([x["train"]], x["val"])
    val_acc, fits = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # only the refit's verdict is reported
        for c in grid:
            fits[c] = _logistic(c, bias, seed, GRID_TOL).fit(xtr, ytr)
            val_acc[c] = float(np.mean(fits[c].predict(xva) == yva))
    best = max(val_acc, key=lambda c: (val_acc[c], -c))  # ties: the stronger regularisation
    x_all, xte = scaled([x["train"], x["val"]], x["test"])
    y_all = np.concatenate([ytr, yva])
    final = _logistic(best, bias, seed)
    # from the chosen fit's weights (the objective is strictly convex: where L-BFGS starts
    # changes how long it takes, not where it ends)
    final.set_params(warm_start=True)
    final.coef_, final.intercept_ = fits[best].coef_.copy(), np.atleast_1d(fits[best].intercept_).copy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        final.fit(x_all, y_all)
    return {
        "C": best,
        "val_acc": {str(c): a for c, a in val_acc.items()},
        "iterations": int(np.max(final.n_iter_)),
        "converged": not any(issubclass(w.category, ConvergenceWarning) for w in caught),
        "objective": logistic_objective(final.coef_, final.intercept_, x_all, y_all, best),
        "test_pred": final.predict(xte),
    }


def knn_predict(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    classes: int,
    k: int,
    temperature: float,
    chunk: int = 1024,
) -> torch.Tensor:
    """Weighted kNN: for each query the k most cosine-similar bank rows vote exp(s / T) for their
    label; the class with the largest vote wins."""
    bank = F.normalize(bank.float(), dim=1)
    k = min(k, len(bank))
    out = []
    for start in range(0, len(queries), chunk):
        q = F.normalize(queries[start : start + chunk].float(), dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)
        # exp((s - s_max) / T): the same vote up to a factor per query, finite for any T (exp(s / T)
        # overflows float32 below T = 0.0113 and ties every vote at inf)
        weights = torch.exp((sim - sim[:, :1]) / temperature)
        votes = torch.zeros(len(q), classes).scatter_add_(1, bank_labels[idx], weights)
        out.append(votes.argmax(1))
    return torch.cat(out)


def soft_accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    """The seed's smoothed accuracy: the mean over examples of <1_y, p>, the probability the
    classifier gives the true class (the accuracy of one-hot probabilities)."""
    return float(np.mean(probs[np.arange(len(y)), y]))


def imbalanced_subset(y: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """Indices of a long-tailed subset: class c (in label order) keeps a fraction ratio^(-c/(C-1))
    of its examples (class 0 all, the last 1 / ratio), chosen at random with `seed`."""
    rng = np.random.default_rng(seed)
    classes = int(y.max()) + 1
    keep = []
    for c in range(classes):
        idx = np.flatnonzero(y == c)
        frac = ratio ** (-c / max(classes - 1, 1))
        keep.append(rng.permutation(idx)[: max(1, int(round(frac * len(idx))))])
    return np.sort(np.concatenate(keep))


def train_linear(
    x: np.ndarray, y: np.ndarray, classes: int, loss: str, epochs: int, lr: float, weight_decay: float, seed: int
) -> torch.nn.Linear:
    """A linear classifier fitted full-batch with Adam on `loss`: cross_entropy, soft_f1, or
    reinforce (a fresh class drawn per example per step, reward its accuracy, the baseline an
    exponential moving average (0.9) of the mean reward of the steps before)."""
    torch.manual_seed(seed)
    xt, yt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(y)
    lin = torch.nn.Linear(x.shape[1], classes)
    opt = torch.optim.Adam(lin.parameters(), lr=lr, weight_decay=weight_decay)
    draws = torch.Generator().manual_seed(seed)
    baseline = 1.0 / classes  # the expected accuracy of a uniform policy, the untrained probe's
    for _ in range(epochs):
        opt.zero_grad()
        logits = lin(xt)
        if loss == "reinforce":
            value, reward = reinforce_accuracy_loss(logits, yt, baseline, draws)
            baseline = 0.9 * baseline + 0.1 * float(reward.mean())
        elif loss == "soft_f1":
            value = soft_f1_loss(logits, yt, classes)
        else:
            value = F.cross_entropy(logits, yt)
        value.backward()
        opt.step()
    return lin


def infonce_bound(scores: torch.Tensor) -> tuple[float, float, float]:
    """(bound, log M, L_NCE) from critic scores (P, M) whose row i's positive is column i: L_NCE is
    the mean cross-entropy of the positives; log M - L_NCE <= log M always."""
    loss = float(F.cross_entropy(scores.double(), torch.arange(len(scores), device=scores.device)))
    log_m = math.log(scores.shape[1])
    return log_m - loss, log_m, loss
