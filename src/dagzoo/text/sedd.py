"""Score-entropy discrete diffusion (SEDD, Lou et al., ICML 2024) as small, formula-shaped pieces.

The forward process is a continuous-time Markov chain dp_t/dt = sigma(t) Q p_t on the token
states, Q[x, y] being the rate from y to x (columns sum to zero), so
p_{t|0} = exp(sigmabar(t) Q) with sigmabar(t) = int_0^t sigma. Graphs:

- absorbing: states = the V tokens + MASK (index V); every token jumps to MASK at rate 1;
- uniform:   states = the V tokens; Q = 1 1^T / V - I (every token jumps to a uniform one).

The network outputs log-ratios log s_theta(x_t)_y ~ log p_t(y)/p_t(x_t) per position. The
denoising score entropy of one position (x = x_t, a = x_0) is

    DSE = sum_{y != x} Q[x, y] * ( s_y - r_y log s_y + K(r_y) ),   r_y = p_{t|0}(y|a) / p_{t|0}(x|a),
    K(r) = r (log r - 1),

>= 0 with equality exactly at s = r, and the NELBO is int_eps^1 sigma(t) sum_positions DSE dt
(plus the prior term, which is computed for the uniform graph and, as in the paper, omitted for
the absorbing one, where the chain ends in MASK with probability 1 - eps). Samplers: Euler steps
of the reverse CTMC, Tweedie tau-leaping, and a final denoising step. The loss (DSE) is
`dagzoo.text.losses.score_entropy`.
"""

from __future__ import annotations

import math

import torch

from dagzoo.distributed import shard_rand
from dagzoo.text.sampling import sample_from_logits


# ---------------------------------------------------------------------------------- noise
class LogLinearNoise:
    """sigmabar(t) = -log(1 - (1 - eps) t): the absorbing chain keeps a token with prob ~ 1 - t."""

    def __init__(self, eps: float = 1e-3):
        self.eps = eps

    def total(self, t):
        return -torch.log1p(-(1 - self.eps) * t)

    def rate(self, t):
        return (1 - self.eps) / (1 - (1 - self.eps) * t)


class GeometricNoise:
    """sigmabar(t) = sigma_min^(1-t) sigma_max^t."""

    def __init__(self, sigma_min: float = 1e-4, sigma_max: float = 20.0):
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def total(self, t):
        return self.sigma_min ** (1 - t) * self.sigma_max**t

    def rate(self, t):
        return self.total(t) * math.log(self.sigma_max / self.sigma_min)


NOISES = {"loglinear": LogLinearNoise, "geometric": GeometricNoise}


def _expm1(s):
    return torch.expm1(s)


# ---------------------------------------------------------------------------------- graphs
class AbsorbingGraph:
    absorbing = True

    def __init__(self, vocab: int):
        self.vocab, self.mask, self.n_states = vocab, vocab, vocab + 1

    def rates_into(self, x):
        """Q[x, y] for every y: (..., n_states)."""
        q = torch.zeros(*x.shape, self.n_states, device=x.device)
        is_mask = x == self.mask
        q[is_mask] = 1.0
        q[..., self.mask] = torch.where(is_mask, 0.0, q[..., self.mask])
        q.scatter_(-1, x[..., None], torch.where(is_mask, 0.0, -1.0)[..., None])
        return q

    def transition_row(self, x, sigmabar):
        """exp(sigmabar Q)[x, y] = P(y -> x over sigmabar) for every y."""
        e = torch.exp(-sigmabar)[..., None].expand(*x.shape, 1)
        row = torch.zeros(*x.shape, self.n_states, device=x.device)
        is_mask = (x == self.mask)[..., None]
        row = torch.where(is_mask, (1 - e).expand_as(row), row)
        row[..., self.mask] = torch.where(is_mask[..., 0], 1.0, 0.0)
        return row.scatter_add(-1, x[..., None], torch.where(is_mask, 0.0, e))

    def conditional_ratios(self, x, x0, sigmabar):
        """r_y = p_{t|0}(y|x0) / p_{t|0}(x|x0) (only rows with x = MASK matter: other rates are 0)."""
        r = torch.zeros(*x.shape, self.n_states, device=x.device)
        ratio = 1.0 / _expm1(sigmabar).expand(x.shape)
        r.scatter_(-1, x0[..., None], ratio[..., None])
        r[..., self.mask] = 1.0
        return r

    def sample_forward(self, x0, sigmabar, generator):
        move = shard_rand(x0.shape, generator).to(x0.device) < -torch.expm1(-sigmabar).expand(x0.shape)
        return torch.where(move, torch.full_like(x0, self.mask), x0)

    def staggered(self, s, dsigma):
        """exp(-dsigma Q) s: the ratios at the earlier time (Tweedie)."""
        e = torch.exp(dsigma)[..., None]
        out = s * e
        out[..., self.mask] = s[..., self.mask] + (1 - e[..., 0]) * s[..., : self.vocab].sum(-1)
        return out

    def limit(self, shape, generator):
        return torch.full(shape, self.mask, dtype=torch.long)

    def prior_kl(self, sigmabar):
        return torch.zeros_like(sigmabar)  # see the module docstring

    def full_log_score(self, out, x, sigmabar):
        """Network outputs over the V tokens -> log s over all states. As in SEDD, outputs are put
        on the scale of the true ratios (log s_y ~ log p(y|.) - log(e^sigmabar - 1)), and the
        ratio of MASK to itself is 1."""
        scale = torch.log(_expm1(sigmabar)) + math.log(max(self.vocab - 1, 1))
        log_s = out - scale.reshape(-1, *([1] * (out.dim() - 1)))
        return torch.cat([log_s, torch.zeros(*log_s.shape[:-1], 1, device=out.device)], dim=-1)


class UniformGraph:
    absorbing = False

    def __init__(self, vocab: int):
        self.vocab, self.n_states = vocab, vocab

    def rates_into(self, x):
        q = torch.full((*x.shape, self.vocab), 1.0 / self.vocab, device=x.device)
        return q.scatter(-1, x[..., None], 1.0 / self.vocab - 1.0)

    def transition_row(self, x, sigmabar):
        e = torch.exp(-sigmabar)[..., None].expand(*x.shape, 1)
        row = ((1 - e) / self.vocab).expand(*x.shape, self.vocab).clone()
        return row.scatter_add(-1, x[..., None], e)

    def conditional_ratios(self, x, x0, sigmabar):
        e = torch.exp(-sigmabar).expand(x.shape)[..., None]
        p = ((1 - e) / self.vocab).expand(*x.shape, self.vocab).clone().scatter_add(-1, x0[..., None], e)
        return p / p.gather(-1, x[..., None])

    def sample_forward(self, x0, sigmabar, generator):
        move = shard_rand(x0.shape, generator).to(x0.device) < -torch.expm1(-sigmabar).expand(x0.shape)
        other = (shard_rand(x0.shape, generator) * self.vocab).long().clamp_(max=self.vocab - 1).to(x0.device)
        return torch.where(move, other, x0)

    def staggered(self, s, dsigma):
        e = torch.exp(dsigma)[..., None]
        return e * s + (1 - e) / self.vocab * s.sum(-1, keepdim=True)

    def limit(self, shape, generator):
        return torch.randint(0, self.vocab, shape, generator=generator)

    def prior_kl(self, sigmabar):
        """KL(p_{1|0} || uniform) per token (the same for every x0)."""
        e = torch.exp(-sigmabar)
        p_same = (1 - e) / self.vocab + e
        p_other = (1 - e) / self.vocab
        return p_same * torch.log(p_same * self.vocab) + (self.vocab - 1) * torch.xlogy(p_other, p_other * self.vocab)

    def full_log_score(self, out, x, sigmabar):
        return out.scatter(-1, x[..., None], 0.0)  # the ratio of x_t to itself is 1


GRAPHS = {"absorbing": AbsorbingGraph, "uniform": UniformGraph}


# ---------------------------------------------------------------------------------- samplers
def euler_step(log_s, x, rate, dt, graph, generator):
    """One Euler step of the reverse chain: jump x -> y with probability dt sigma Q[x, y] s_y."""
    q = graph.rates_into(x).scatter(-1, x[..., None], 0.0)
    jump = dt * rate.reshape(-1, *([1] * (x.dim()))) * q * log_s.exp()
    stay = (1 - jump.sum(-1, keepdim=True)).clamp_min(0)
    probs = jump.scatter(-1, x[..., None], stay)
    return sample_from_logits(torch.log(probs.clamp_min(0)), generator).to(x.device)


def tweedie_step(log_s, x, dsigma, graph, generator, drop_mask=False):
    """Tweedie tau-leaping: p(x_s = y | x_t = x) ~ [exp(-dsigma Q) s]_y * exp(dsigma Q)[x, y]."""
    ds = dsigma.reshape(-1, *([1] * (x.dim() - 1)))
    probs = graph.staggered(log_s.exp(), ds) * graph.transition_row(x, ds)
    if drop_mask:
        probs = probs[..., : graph.vocab]
    return sample_from_logits(torch.log(probs.clamp_min(0)), generator).to(x.device)
