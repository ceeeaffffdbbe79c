"""`gumbel_vae`: a VAE with `n_latents` categorical latents of `n_classes` classes, trained with
the Gumbel-softmax relaxation (soft, or straight-through with `hard`) at a temperature annealed
as tau = max(tau_min, tau0 exp(-r step)) (Jang et al. 2017); uniform prior, analytic categorical KL.
Evaluation uses exact one-hot samples of q(z|x), so the reported NELBO is a true bound for the
discrete-latent model."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dagzoo.image.gumbel import categorical_kl_uniform, gumbel_softmax
from dagzoo.image.vae_base import VAEBase, VAEParams
from dagzoo.registry import param, register


@register("image", "gumbel_vae")
class GumbelVAE(VAEBase):
    """Categorical-latent VAE, Gumbel-softmax relaxation."""

    @dataclass
    class Params(VAEParams):
        n_latents: int = param(32, "categorical latent variables", min=1)
        n_classes: int = param(10, "classes per latent variable", min=2)
        tau0: float = param(1.0, "initial temperature", min=0.0)
        tau_min: float = param(0.5, "final temperature", min=0.0)
        anneal_rate: float | None = param(None, "r in tau = max(tau_min, tau0 exp(-r step)); null: reach "
                                          "tau_min at the last step", min=0.0)
        hard: bool = param(False, "straight-through: one-hot forward, soft gradient")

    def encoder_outputs(self):
        return self.params.n_latents * self.params.n_classes

    def latent_size(self):
        return self.params.n_latents * self.params.n_classes

    def temperature(self, step: int) -> float:
        p = self.params
        rate = p.anneal_rate if p.anneal_rate is not None else math.log(p.tau0 / p.tau_min) / max(p.steps, 1)
        return max(p.tau_min, p.tau0 * math.exp(-rate * step))

    def nelbo(self, net, x, step):
        p = self.params
        logits = net["encoder"](x).reshape(-1, p.n_latents, p.n_classes)
        if step is None:  # evaluation: exact categorical samples
            idx = torch.distributions.Categorical(logits=logits).sample()
            z = torch.nn.functional.one_hot(idx, p.n_classes).to(logits.dtype)
        else:
            z = gumbel_softmax(logits, self.temperature(step), p.hard)
        return -self.log_likelihood(net, x, z.flatten(1)) + categorical_kl_uniform(logits)

    def prior_sample(self, n, generator):
        p = self.params
        idx = torch.randint(0, p.n_classes, (n, p.n_latents), generator=generator)
        return torch.nn.functional.one_hot(idx, p.n_classes).float().flatten(1)

    def extra_summary(self):
        return {"final_temperature": self.temperature(self.params.steps)}
