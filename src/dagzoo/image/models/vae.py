"""`vae`: Kingma & Welling 2014. Gaussian encoder q(z|x) = N(mu, diag sigma^2), standard normal
prior, reparameterised z = mu + sigma * eps, analytic KL, discretized-logistic decoder;
ELBO in bits/dim."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dagzoo.image.vae_base import VAEBase, VAEParams
from dagzoo.registry import param, register


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over the last axis."""
    return 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    return mu + torch.exp(0.5 * logvar) * eps


@register("image", "vae")
class VAE(VAEBase):
    """Gaussian VAE (reparameterisation trick)."""

    @dataclass
    class Params(VAEParams):
        latent_dim: int = param(32, "dimensions of z", min=1)

    def encoder_outputs(self):
        return 2 * self.params.latent_dim

    def latent_size(self):
        return self.params.latent_dim

    def nelbo(self, net, x, step):
        mu, logvar = net["encoder"](x).chunk(2, dim=1)
        logvar = logvar.clamp(-30, 20)
        z = reparameterize(mu, logvar, torch.randn_like(mu))
        return -self.log_likelihood(net, x, z) + gaussian_kl(mu, logvar)

    def prior_sample(self, n, generator):
        return torch.randn(n, self.params.latent_dim, generator=generator)
