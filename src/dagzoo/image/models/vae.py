"""`vae`: Kingma & Welling 2014. Gaussian encoder q(z|x) = N(mu, diag sigma^2), standard normal
prior, reparameterised z = mu + sigma * eps, analytic KL, discretized-logistic decoder;
ELBO in bits/dim."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dagzoo.distributed import draw_sharded
from dagzoo.image.losses import gaussian_kl
from dagzoo.image.vae_base import VAEBase, VAEParams
from dagzoo.registry import Paper, param, register


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    return mu + torch.exp(0.5 * logvar) * eps


@register(
    "image",
    "vae",
    papers=(Paper("Auto-Encoding Variational Bayes", "Kingma & Welling", 2014, "https://arxiv.org/abs/1312.6114"),),
)
class VAE(VAEBase):
    """Gaussian VAE (reparameterisation trick)."""

    @dataclass
    class Params(VAEParams):
        latent_dim: int = param(32, "dimensions of z", min=1)

    def encoder_outputs(self):
        return 2 * self.params.latent_dim

    def latent_size(self):
        return self.params.latent_dim

    @staticmethod
    def posterior(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, log sigma^2) of q(z | x) from the encoder output."""
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(-30, 20)

    def sample_latent(self, h, step):
        mu, logvar = self.posterior(h)
        # drawn in float32 whatever mu's dtype, so the noise stream does not depend on precision
        eps = draw_sharded(lambda n: torch.randn(n, mu.shape[1]), mu.shape[0]).to(mu)
        return reparameterize(mu, logvar, eps)

    def kl(self, h):
        return gaussian_kl(*self.posterior(h))

    def prior_sample(self, n, generator):
        return torch.randn(n, self.params.latent_dim, generator=generator)
