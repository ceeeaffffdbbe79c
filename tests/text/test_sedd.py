"""SEDD: graphs against dense matrix exponentials, score entropy, the ELBO of an exact model."""

import math
from types import SimpleNamespace

import pytest
import torch

from dagzoo.text.diffusion import nelbo_windows
from dagzoo.text.losses import score_entropy
from dagzoo.text.models.sedd import SEDD
from dagzoo.text.sedd import AbsorbingGraph, GeometricNoise, LogLinearNoise, UniformGraph

V = 5


def dense_q(graph):
    S = graph.n_states
    q = torch.zeros(S, S, dtype=torch.float64)
    if graph.absorbing:
        for y in range(V):
            q[graph.mask, y] += 1.0
            q[y, y] -= 1.0
    else:
        q[:] = 1.0 / V
        q -= torch.eye(V, dtype=torch.float64)
    return q  # q[x, y] = rate y -> x; columns sum to 0


@pytest.mark.parametrize("graph", [AbsorbingGraph(V), UniformGraph(V)])
def test_graph_closed_forms_match_dense_matrix_exponentials(graph):
    Q = dense_q(graph)
    assert torch.allclose(Q.sum(0), torch.zeros(graph.n_states, dtype=torch.float64))
    S = graph.n_states
    states = torch.arange(S)[None, :]  # (1, S)
    for sigmabar in (0.05, 0.7, 3.0):
        sb = torch.tensor([[sigmabar]])
        P = torch.linalg.matrix_exp(sigmabar * Q)  # P[x, y] = p(x_t = x | x_0 = y)
        torch.testing.assert_close(graph.rates_into(states)[0].double(), Q)
        torch.testing.assert_close(graph.transition_row(states, sb)[0].double(), P, atol=1e-6, rtol=1e-6)
        # conditional ratios r_y = p(y | a) / p(x | a), for every (x, a) with a real token
        for a in range(V):
            x0 = torch.full((1, S), a)
            r = graph.conditional_ratios(states, x0, sb)[0].double()
            for x in range(S):
                rows = Q[x] != 0
                rows[x] = False
                expect = P[:, a] / P[x, a]
                torch.testing.assert_close(r[x][rows], expect[rows], atol=1e-5, rtol=1e-5)
        s = torch.rand(1, 3, S, dtype=torch.float64) + 0.1
        stag = graph.staggered(s, torch.tensor([[0.3]], dtype=torch.float64))
        torch.testing.assert_close(stag[0], (torch.linalg.matrix_exp(-0.3 * Q) @ s[0].T).T)
    if not graph.absorbing:
        sb = torch.tensor(2.0, dtype=torch.float64)
        p = torch.linalg.matrix_exp(sb * Q)[:, 0]
        torch.testing.assert_close(graph.prior_kl(sb), (p * torch.log(p * V)).sum())


@pytest.mark.parametrize("graph", [AbsorbingGraph(V), UniformGraph(V)])
def test_score_entropy_is_nonnegative_and_zero_at_the_true_ratios(graph):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, V, (4, 50), generator=g)
    sb = torch.full((4, 1), 0.8)
    x = graph.sample_forward(x0, sb, g)
    log_s = torch.randn(4, 50, graph.n_states, generator=g)
    assert (score_entropy(log_s, x, x0, sb, graph) >= -1e-6).all()
    r = graph.conditional_ratios(x, x0, sb)
    exact = score_entropy(torch.log(r), x, x0, sb, graph)
    torch.testing.assert_close(exact, torch.zeros_like(exact), atol=1e-5, rtol=0)
    assert (score_entropy(torch.log(r) + 0.1, x, x0, sb, graph)[exact == 0] >= 0).all()
    moved = (graph.rates_into(x).scatter(-1, x[..., None], 0) > 0).any(-1)
    assert (score_entropy(torch.log(r) + 0.1, x, x0, sb, graph)[moved] > 0).all()


def test_noise_rate_is_derivative_of_total():
    for noise in (LogLinearNoise(1e-3), GeometricNoise()):
        t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64, requires_grad=True)
        (d,) = torch.autograd.grad(noise.total(t).sum(), t)
        torch.testing.assert_close(d, noise.rate(t.detach()))


@pytest.mark.parametrize("graph_name", ["absorbing", "uniform"])
def test_nelbo_of_exact_scores_equals_entropy_on_iid_source(graph_name):
    """With the exact ratios of an i.i.d. source, int sigma(t) DSE dt (+ prior) = entropy."""
    pi = torch.tensor([0.45, 0.25, 0.15, 0.1, 0.05])
    H = float(-(pi * pi.log()).sum())
    model = SEDD(SEDD.Params(graph=graph_name, eps=1e-3), SimpleNamespace(vocab_size=V), torch.device("cpu"))
    graph = model.graph

    def oracle_log_score(net, x, sigmabar):
        e = torch.exp(-sigmabar)[..., None]
        if graph.absorbing:  # masked positions: p_t(y)/p_t(M) = pi_y e / (1 - e)
            ratios = torch.cat([pi * e / (1 - e), torch.ones_like(e)], dim=-1).expand(*x.shape, V + 1)
            return torch.log(ratios)
        p_t = e * pi + (1 - e) / V  # marginal of one position at time t
        return torch.log(p_t / p_t.expand(*x.shape, V).gather(-1, x[..., None]))

    model.log_score = oracle_log_score
    g = torch.Generator().manual_seed(0)
    windows = [torch.multinomial(pi, 16, replacement=True, generator=g) for _ in range(400)]
    means, var = nelbo_windows(windows, 8, g, lambda x0, t: model.nelbo_sample(None, x0, t, g), eps=1e-3)
    n = 16 * len(windows)
    per_token, se = means.sum() / n, math.sqrt(var.sum()) / n
    assert abs(per_token - H) < 3 * se + 0.01 * H, (per_token, H, se)


@pytest.mark.parametrize("graph", ["absorbing", "uniform"])
@pytest.mark.parametrize("sampler", ["euler", "tweedie"])
def test_samplers_return_tokens(graph, sampler):
    m = SEDD(
        SEDD.Params(graph=graph, sampler=sampler, n_layer=1, n_head=2, d_model=16, sample_steps=6),
        SimpleNamespace(vocab_size=V),
        torch.device("cpu"),
    )
    m.window = 12
    m.init_network(0)
    out, nfe = m.sample(3, 12, torch.Generator().manual_seed(0), 1.0, None)
    assert out.shape == (3, 12) and (out >= 0).all() and (out < V).all() and nfe == 7
