"""`sedd`: score-entropy discrete diffusion (Lou et al., ICML 2024); see dagzoo.text.sedd.

Absorbing or uniform graph, log-linear or geometric noise, a sigma-conditioned bidirectional
transformer that outputs log-ratios, the denoising score entropy loss, the NELBO
int sigma(t) DSE dt estimated with K stratified t per window, and Euler or Tweedie tau-leaping
samplers followed by a final denoising step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dagzoo.registry import Paper, param, register
from dagzoo.text.base import TextModel
from dagzoo.text.losses import score_entropy
from dagzoo.text.params import MaskedDiffusionParams
from dagzoo.text.sedd import GRAPHS, NOISES, euler_step, tweedie_step


@register(
    "text",
    "sedd",
    papers=(
        Paper(
            "Discrete Diffusion Modeling by Estimating the Ratios of the Data Distribution",
            "Lou, Meng & Ermon",
            2024,
            "https://arxiv.org/abs/2310.16834",
        ),
    ),
)
class SEDD(TextModel):
    """Score-entropy discrete diffusion (absorbing or uniform graph; NELBO upper bound)."""

    exact_likelihood = False

    @dataclass
    class Params(MaskedDiffusionParams):
        time_conditioning: bool = param(True, "condition the network on sigmabar(t) (adaLN)")
        graph: str = param("absorbing", "forward graph", choices=tuple(GRAPHS))
        noise: str = param("loglinear", "noise schedule", choices=tuple(NOISES))
        sampler: str = param(
            "tweedie",
            "euler or tweedie (tau-leaping); both end with a denoising step",
            choices=("euler", "tweedie"),
            stage="sample",
        )

    def __init__(self, params, data, device):
        super().__init__(params, data, device)
        self.graph = GRAPHS[params.graph](data.vocab_size)
        self.noise = NOISES[params.noise]() if params.noise == "geometric" else NOISES[params.noise](params.eps)

    def _inputs(self, x):
        """Graph states -> network input ids (the absorbing MASK state is the input id V+1)."""
        return (
            torch.where(x == self.data.vocab_size, torch.full_like(x, self.mask_id), x) if self.graph.absorbing else x
        )

    def log_score(self, net, x, sigmabar):
        out = self.logits(net, self._inputs(x), sigmabar[:, 0]).float()
        return self.graph.full_log_score(out, x, sigmabar)

    def nelbo_sample(self, net, x0, t, generator):
        t = t.to(x0.device).float().reshape(-1)
        sigmabar = self.noise.total(t)[:, None]
        x_t = self.graph.sample_forward(x0, sigmabar, generator)
        dse = score_entropy(self.log_score(net, x_t, sigmabar), x_t, x0, sigmabar, self.graph)
        prior = self.graph.prior_kl(self.noise.total(torch.ones(1, device=x0.device)))
        return self.noise.rate(t) * dse.sum(1) + x0.shape[1] * prior

    @torch.no_grad()
    def sample(self, n, length, generator, temperature, top_k):
        """Temperature and top-k do not apply to SEDD's samplers and are ignored."""
        self.net.eval()
        p, dev = self.params, self.device
        eps = p.eps
        x = self.graph.limit((n, length), generator).to(dev)
        ts = torch.linspace(1.0, eps, p.sample_steps + 1)
        dt = (1.0 - eps) / p.sample_steps
        for i in range(p.sample_steps):
            t = torch.full((n,), float(ts[i]), device=dev)
            sigmabar = self.noise.total(t)[:, None]
            log_s = self.log_score(self.net, x, sigmabar)
            if p.sampler == "euler":
                x = euler_step(log_s, x, self.noise.rate(t), dt, self.graph, generator)
            else:
                dsigma = self.noise.total(t) - self.noise.total(t - dt)
                x = tweedie_step(log_s, x, dsigma, self.graph, generator)
        t = torch.full((n,), eps, device=dev)
        sigmabar = self.noise.total(t)[:, None]
        x = tweedie_step(
            self.log_score(self.net, x, sigmabar),
            x,
            sigmabar[:, 0],
            self.graph,
            generator,
            drop_mask=self.graph.absorbing,
        )
        return x.cpu().numpy(), p.sample_steps + 1
