"""Every objective of dagzoo.text.losses against an independent reference: a loop over the
paper's equation, with dense matrix exponentials where the formula needs the forward process."""

import numpy as np
import pytest
import torch
from scipy.linalg import expm

from dagzoo.text.losses import ar_cross_entropy, masked_nelbo_terms, score_entropy
from dagzoo.text.sedd import AbsorbingGraph, UniformGraph


def _log_softmax(row: np.ndarray) -> np.ndarray:
    row = row - row.max()
    return row - np.log(np.exp(row).sum())


def test_ar_cross_entropy_is_the_mean_next_token_nll():
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(3, 5, 7, generator=g), torch.randint(0, 7, (3, 5), generator=g)
    nll = [-_log_softmax(logits[b, i].double().numpy())[targets[b, i]] for b in range(3) for i in range(5)]
    assert float(ar_cross_entropy(logits, targets)) == pytest.approx(np.mean(nll), rel=1e-6)


def test_masked_nelbo_terms_weights_each_masked_token_by_one_over_t():
    # MDLM eq. 10 under alpha_t = 1 - t: sum over masked positions of -log p(x0 | x_t) / t
    g = torch.Generator().manual_seed(1)
    logits, x0 = torch.randn(2, 6, 5, generator=g), torch.randint(0, 5, (2, 6), generator=g)
    masked = torch.rand(2, 6, generator=g) < 0.5
    t_tok = torch.rand(2, 6, generator=g) * 0.9 + 0.1
    expected = [
        sum(
            -_log_softmax(logits[b, i].double().numpy())[x0[b, i]] / float(t_tok[b, i])
            for i in range(6)
            if masked[b, i]
        )
        for b in range(2)
    ]
    np.testing.assert_allclose(masked_nelbo_terms(logits, x0, masked, t_tok).double().numpy(), expected, rtol=1e-6)
    assert float(masked_nelbo_terms(logits, x0, torch.zeros_like(masked), t_tok).abs().sum()) == 0.0


def _dense_rates(graph) -> np.ndarray:
    """Q[x, y], the rate from y to x, written out for the two graphs of SEDD (Lou et al. 2024, eq. 15-16)."""
    n = graph.n_states
    if graph.absorbing:
        q = np.zeros((n, n))
        q[graph.mask, : graph.vocab] = 1.0
        q[np.arange(graph.vocab), np.arange(graph.vocab)] = -1.0
        return q
    return np.ones((n, n)) / n - np.eye(n)


@pytest.mark.parametrize("graph", [AbsorbingGraph(4), UniformGraph(4)], ids=["absorbing", "uniform"])
def test_score_entropy_equals_the_dse_sum_with_dense_transition_matrices(graph):
    # DSE = sum_{y != x} Q[x, y] (s_y - r_y log s_y + r_y (log r_y - 1)), r_y = P[y, a] / P[x, a], P = exp(sb Q)
    g = torch.Generator().manual_seed(2)
    sb = 0.7
    q = _dense_rates(graph)
    p = expm(sb * q)
    x0 = torch.randint(0, graph.vocab, (3, 4), generator=g)
    x = graph.sample_forward(x0, torch.full((3, 1), sb), g)
    log_s = torch.randn(3, 4, graph.n_states, generator=g)
    got = score_entropy(log_s, x, x0, torch.full((3, 1), sb), graph)
    for b in range(3):
        for i in range(4):
            xi, a = int(x[b, i]), int(x0[b, i])
            ref = 0.0
            for y in range(graph.n_states):
                if y == xi or q[xi, y] == 0:
                    continue
                r = p[y, a] / p[xi, a]
                s = float(log_s[b, i, y].exp())
                ref += q[xi, y] * (s - r * np.log(s) + (r * np.log(r) - r if r > 0 else 0.0))
            assert float(got[b, i]) == pytest.approx(ref, rel=1e-5, abs=1e-6)
