"""What the diffusion and flow models share: a U-Net F sized by config, wrapped by a
pre-conditioning (dagzoo.image.preconditioning) into a denoiser D(x; sigma), trained with the one
EDM-form loss and sampled by the samplers of dagzoo.image.samplers."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dagzoo.errors import ConfigError
from dagzoo.image.base import ImageModel, ImageTrainParams, forward_flops
from dagzoo.image.losses import diffusion_loss
from dagzoo.image.preconditioning import Preconditioning
from dagzoo.image.samplers import Denoiser, sample
from dagzoo.nn.unet import UNet, UNetConfig
from dagzoo.registry import param


@dataclass
class UNetParams(ImageTrainParams):
    channels: int = param(64, "base width of the U-Net", min=4)
    channel_mult: list[int] = param(
        [1, 2, 2], "width multiplier per resolution level (one level per entry)", min_len=1, min=1
    )
    num_res_blocks: int = param(2, "residual blocks per level", min=1)
    attn_resolutions: list[int] = param([8], "resolutions (pixels) with self-attention", min=1)
    dropout: float = param(0.1, "dropout in the residual blocks", min=0.0, max=0.99)
    embedding: str = param("positional", "noise embedding", choices=("positional", "fourier"))
    adaptive_norm: bool = param(True, "ADM's AdaGN scale/shift (False: DDPM's additive embedding)")
    num_heads: int = param(1, "attention heads", min=1)

    def check(self, where: str) -> None:
        if self.channels % self.num_heads:
            raise ConfigError(f"{where}.num_heads: must divide channels ({self.channels}), got {self.num_heads}")


class DenoisingModel(ImageModel):
    def preconditioning(self) -> Preconditioning:
        raise NotImplementedError

    @classmethod
    def check_experiment(cls, params, image_cfg, where):
        from dagzoo.data.image_geometry import image_geometry

        _, size = image_geometry(image_cfg)
        levels = len(params.channel_mult)
        if size and size % 2 ** (levels - 1):
            raise ConfigError(
                f"{where}.channel_mult: {levels} levels halve the resolution {levels - 1} times; "
                f"the image size {size} must be divisible by {2 ** (levels - 1)}"
            )
        if size:  # a resolution the U-Net never has would silently mean no attention at all
            resolutions = [size // 2**i for i in range(levels)]
            for i, res in enumerate(params.attn_resolutions):
                if res not in resolutions:
                    raise ConfigError(
                        f"{where}.attn_resolutions.{i}: this U-Net has no {res}-pixel level; "
                        f"allowed: {', '.join(map(str, resolutions))}"
                    )

    def __init__(self, params, shape, device):
        super().__init__(params, shape, device)
        self.pre = self.preconditioning()

    def unet_config(self) -> UNetConfig:
        p, (c, h, _) = self.params, self.shape
        return UNetConfig(
            in_channels=c,
            out_channels=c,
            resolution=h,
            channels=p.channels,
            channel_mult=list(p.channel_mult),
            num_res_blocks=p.num_res_blocks,
            attn_resolutions=list(p.attn_resolutions),
            dropout=p.dropout,
            embedding=p.embedding,
            adaptive_norm=p.adaptive_norm,
            num_heads=p.num_heads,
        )

    def build(self):
        return UNet(self.unet_config()).channels_last()

    def batch_loss(self, net, x, step):
        return diffusion_loss(net, self.pre, x)

    def flops_per_image(self):
        net = UNet(self.unet_config())
        return 3.0 * forward_flops(net, (torch.zeros(1, *self.shape), torch.zeros(1)))

    def extra_summary(self):
        from dagzoo.eval.receptive_field import receptive_field

        rf = receptive_field(UNet(self.unet_config()), self.shape[0], call=lambda m, x: m(x, torch.zeros(1)))
        return {"unet_receptive_field": rf["receptive_field"], "unet_global_mixing": rf["global_mixing"]}

    def generate_batch(self, n, sampler, generator):
        den = Denoiser(self.net, self.pre)
        x = sample(den, sampler, (n, *self.shape), generator, self.device)
        return x, den.nfe
