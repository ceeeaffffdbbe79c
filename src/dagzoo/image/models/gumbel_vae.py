"""`gumbel_vae`: a VAE with `n_latents` categorical latents of `n_classes` classes, trained with
the Gumbel-softmax relaxation (soft, or straight-through with `hard`) at a temperature annealed
as tau = max(tau_min, tau0 exp(-r step)) (Jang et al. 2017); uniform prior, analytic categorical KL.
Evaluation uses exact one-hot samples of q(z|x), so the reported NELBO is a true bound for the
discrete-latent model."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dagzoo.distributed import draw_sharded
from dagzoo.image.gumbel import gumbel_noise
from dagzoo.image.losses import categorical_kl_uniform
from dagzoo.image.vae_base import VAEBase, VAEParams
from dagzoo.registry import Paper, param, register


def relaxed_one_hot(logits: torch.Tensor, g: torch.Tensor, tau: float, hard: bool) -> torch.Tensor:
    """dagzoo.image.gumbel.gumbel_softmax with the Gumbel noise g given: training draws it for the
    whole data-parallel batch and keeps this rank's shard (gumbel_softmax draws its own)."""
    y = torch.softmax((logits + g) / tau, dim=-1)
    if not hard:
        return y
    one_hot = torch.nn.functional.one_hot(y.argmax(-1), y.shape[-1]).to(y.dtype)
    return one_hot + y - y.detach()


@register(
    "image",
    "gumbel_vae",
    papers=(
        Paper(
            "Categorical Reparameterization with Gumbel-Softmax",
            "Jang, Gu & Poole",
            2017,
            "https://arxiv.org/abs/1611.01144",
        ),
    ),
)
class GumbelVAE(VAEBase):
    """Categorical-latent VAE, Gumbel-softmax relaxation."""

    @dataclass
    class Params(VAEParams):
        n_latents: int = param(32, "categorical latent variables", min=1)
        n_classes: int = param(10, "classes per latent variable", min=2)
        tau0: float = param(1.0, "initial temperature", min=0.0)
        tau_min: float = param(0.5, "final temperature", min=0.0)
        anneal_rate: float | None = param(
            None, "r in tau = max(tau_min, tau0 exp(-r step)); null: reach tau_min at the last step", min=0.0
        )
        hard: bool = param(False, "straight-through: one-hot forward, soft gradient")

    def encoder_outputs(self):
        return self.params.n_latents * self.params.n_classes

    def latent_size(self):
        return self.params.n_latents * self.params.n_classes

    def temperature(self, step: int) -> float:
        p = self.params
        rate = p.anneal_rate if p.anneal_rate is not None else math.log(p.tau0 / p.tau_min) / max(p.steps, 1)
        return max(p.tau_min, p.tau0 * math.exp(-rate * step))

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return h.reshape(-1, self.params.n_latents, self.params.n_classes)

    def sample_latent(self, h, step):
        p = self.params
        logits = self.logits(h)
        if step is None:  # evaluation: exact categorical samples
            idx = torch.distributions.Categorical(logits=logits).sample()
            return torch.nn.functional.one_hot(idx, p.n_classes).to(logits.dtype).flatten(1)
        g = draw_sharded(lambda n: gumbel_noise((n, p.n_latents, p.n_classes)), logits.shape[0])
        return relaxed_one_hot(logits, g.to(logits), self.temperature(step), p.hard).flatten(1)

    def kl(self, h):
        return categorical_kl_uniform(self.logits(h))

    def prior_sample(self, n, generator):
        p = self.params
        idx = torch.randint(0, p.n_classes, (n, p.n_latents), generator=generator)
        return torch.nn.functional.one_hot(idx, p.n_classes).float().flatten(1)

    def extra_summary(self):
        return {"final_temperature": self.temperature(self.params.steps)}
