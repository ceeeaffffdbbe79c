"""What the two VAEs share: the convolutional encoder and decoder, the discretized-logistic
decoder likelihood, the test NELBO in bits/dim and sampling from the prior."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from dagzoo.errors import ConfigError
from dagzoo.image.base import ImageModel, ImageTrainParams, forward_flops
from dagzoo.image.data import to_model_range
from dagzoo.image.losses import bits_per_dim, discretized_logistic_log_prob
from dagzoo.registry import param


@dataclass
class VAEParams(ImageTrainParams):
    lr: float = param(1e-3, "peak learning rate (AdamW)", gt=0.0)
    warmup_steps: int = param(100, "linear warm-up steps", min=0)
    channels: int = param(32, "width of the first conv layer (x2 after each stride-2 layer)", min=4)
    hidden: int = param(256, "width of the dense layer between the conv stack and the latent", min=8)
    elbo_samples: int = param(1, "latent samples per test image in the NELBO estimate", min=1, stage="evaluate")


def _encoder(c: int, ch: int, h: int, w: int, hidden: int, out: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(c, ch, 3, padding=1),
        nn.SiLU(),
        nn.Conv2d(ch, 2 * ch, 4, stride=2, padding=1),
        nn.SiLU(),
        nn.Conv2d(2 * ch, 4 * ch, 4, stride=2, padding=1),
        nn.SiLU(),
        nn.Flatten(),
        nn.Linear(4 * ch * (h // 4) * (w // 4), hidden),
        nn.SiLU(),
        nn.Linear(hidden, out),
    )


class _Decoder(nn.Module):
    """z -> (mean, log_scale) of the discretized logistic per sub-pixel."""

    def __init__(self, c: int, ch: int, h: int, w: int, hidden: int, latent: int):
        super().__init__()
        self.c, self.shape = c, (4 * ch, h // 4, w // 4)
        self.dense = nn.Sequential(
            nn.Linear(latent, hidden), nn.SiLU(), nn.Linear(hidden, int(np.prod(self.shape))), nn.SiLU()
        )
        self.conv = nn.Sequential(
            nn.ConvTranspose2d(4 * ch, 2 * ch, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.ConvTranspose2d(2 * ch, ch, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(ch, 2 * c, 3, padding=1),
        )

    def forward(self, z):
        out = self.conv(self.dense(z).reshape(-1, *self.shape))
        return out[:, : self.c], out[:, self.c :]


class VAENet(nn.ModuleDict):
    """The encoder and decoder, with the whole training pass as `forward`: the loss must call the
    network it is handed (a DistributedDataParallel wrapper in data-parallel training, which
    all-reduces the gradients of what runs in its forward, and cannot be indexed), never its
    parts. Still indexable (`net["decoder"]`) for sampling; same state_dict keys as a ModuleDict."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__({"encoder": encoder, "decoder": decoder})

    def forward(self, x: torch.Tensor, latent: Callable[[torch.Tensor], torch.Tensor]):
        """-> (encoder output h, decoder mean, decoder log_scale) at z = latent(h)."""
        h = self["encoder"](x)
        mean, log_scale = self["decoder"](latent(h))
        return h, mean, log_scale


class VAEBase(ImageModel):
    sampler_kinds = ("prior",)
    default_samplers = {"prior": {"kind": "prior"}}
    has_likelihood = True

    @classmethod
    def check_experiment(cls, params, image_cfg, where):
        size = image_cfg["data"].get("resize")
        if size and size % 4:
            raise ConfigError(
                f"{where}: the VAE encoder halves the image twice; image size {size} must be divisible by 4"
            )

    # --- defined by each VAE
    def encoder_outputs(self) -> int:
        raise NotImplementedError

    def latent_size(self) -> int:
        raise NotImplementedError

    def sample_latent(self, h: torch.Tensor, step: int | None) -> torch.Tensor:
        """z ~ q(z | x) (flat, `latent_size()` wide) from the encoder output h; step None:
        evaluation (exact discrete latents where relevant). Training noise must come from
        `draw_sharded`, so data-parallel ranks draw their own shard of the step's noise."""
        raise NotImplementedError

    def kl(self, h: torch.Tensor) -> torch.Tensor:
        """KL(q(z | x) || p(z)) per image, nats."""
        raise NotImplementedError

    def prior_sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    # --- shared
    def build(self):
        c, h, w = self.shape
        p = self.params
        return VAENet(
            _encoder(c, p.channels, h, w, p.hidden, self.encoder_outputs()),
            _Decoder(c, p.channels, h, w, p.hidden, self.latent_size()),
        )

    def nelbo(self, net, x: torch.Tensor, step: int | None) -> torch.Tensor:
        """-ELBO per image in nats: -log p(x | z) + KL, z one sample of q(z | x)."""
        h, mean, log_scale = net(x, lambda enc: self.sample_latent(enc, step))
        return -discretized_logistic_log_prob(x, mean, log_scale).flatten(1).sum(1) + self.kl(h)

    def batch_loss(self, net, x, step):
        # per dimension, so the learning rate does not depend on the image size
        return self.nelbo(net, x, step).mean() / float(np.prod(self.shape))

    def flops_per_image(self):
        net = self.build()
        z = torch.zeros(1, self.latent_size())
        return 3.0 * (
            forward_flops(net["encoder"], (torch.zeros(1, *self.shape),)) + forward_flops(net["decoder"], (z,))
        )

    @torch.no_grad()
    def test_nll_bits_per_dim(self, images: np.ndarray) -> dict:
        """NELBO on the test split (an upper bound on -log p), bits/dim, with its standard error."""
        self.net.eval()
        D = int(np.prod(self.shape))
        per_image = []
        for start in range(0, len(images), self.params.eval_batch_size):
            x = to_model_range(torch.from_numpy(images[start : start + self.params.eval_batch_size]).to(self.device))
            est = torch.stack([self.nelbo(self.net, x, None) for _ in range(self.params.elbo_samples)]).mean(0)
            per_image.append(est.double().cpu())
        nll = torch.cat(per_image)
        bpd = bits_per_dim(nll, D)
        return {
            "test/bits_per_dim": float(bpd.mean()),
            "test/bits_per_dim_se": float(bpd.std() / math.sqrt(len(bpd))) if len(bpd) > 1 else float("nan"),
            "test/nelbo_nats": float(nll.mean()),
        }

    def generate_batch(self, n, sampler, generator):
        z = self.prior_sample(n, generator).to(self.device)
        mean, log_scale = self.net["decoder"](z)
        if sampler.decoder_output == "mean":
            return mean.clamp(-1, 1), 1
        # a draw of the discretized logistic: logistic noise, then the 256-level grid
        u = torch.rand(mean.shape, generator=generator).to(self.device).clamp(1e-5, 1 - 1e-5)
        x = mean + torch.exp(log_scale.clamp(min=-7)) * (torch.log(u) - torch.log1p(-u))
        return (torch.round((x.clamp(-1, 1) + 1) * 127.5) / 127.5 - 1), 1
