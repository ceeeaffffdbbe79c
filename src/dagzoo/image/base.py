"""What every image model shares: the training loop on the in-memory train split (batches chosen
by (seed, step), augmentation on the device), saving and loading, batched generation.

A model defines `build()` (its network), `batch_loss(net, x, step)` (x in [-1, 1]) and
`generate_batch(n, sampler, generator)`; likelihood models also `test_nll_bits_per_dim`. The two
kinds of image model each have a base of their own below this one: a denoiser under an EDM-form
preconditioning (dagzoo.image.denoising) and a VAE (dagzoo.image.vae_base).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dagzoo import distributed
from dagzoo.errors import ConfigError
from dagzoo.image.data import random_batch, to_uint8
from dagzoo.lifecycle import Model
from dagzoo.registry import param
from dagzoo.train import EMA, TrainParams


@dataclass
class ImageTrainParams(TrainParams):
    """Optimisation of every image model; EMA by EDM's half-life rule when ema_halflife_kimg is set."""

    lr: float = param(2e-4, "peak learning rate (AdamW)", gt=0.0)
    warmup_steps: int = param(200, "linear warm-up steps", min=0)
    min_lr_ratio: float = param(
        1.0, "final lr / peak lr of the cosine decay (1: constant, as DDPM/EDM)", min=0.0, max=1.0
    )
    weight_decay: float = param(0.0, "AdamW weight decay on matrices", min=0.0)
    beta2: float = param(0.999, "AdamW beta2", min=0.0, max=1.0)
    batch_size: int = param(64, "images per step", min=1)
    ema_halflife_kimg: float | None = param(
        None, "EMA half-life in thousands of images (EDM; null: use ema_decay)", min=0.0
    )
    ema_rampup_ratio: float | None = param(0.05, "EDM EMA warm-up: half-life <= this x images seen", min=0.0)
    hflip: bool = param(False, "random horizontal flips (on the device); off for digits and text-like data")
    eval_batch_size: int = param(
        256, "images per forward pass when evaluating or sampling", min=1, stage=("sample", "evaluate")
    )

    def make_ema(self, model):
        if not self.ema_halflife_kimg:
            return super().make_ema(model)
        return EMA(model, self.ema_decay, self.ema_halflife_kimg * 1000, self.ema_rampup_ratio, self.batch_size)


def forward_flops(net: nn.Module, example_args: tuple) -> int:
    """FLOPs of one forward pass (torch's FlopCounterMode: matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(*example_args)
    return int(counter.get_total_flops())


class ImageModel(Model):
    Params: type
    #: sampler kinds this model accepts (see dagzoo.image.samplers); () -> samples from its prior
    sampler_kinds: tuple[str, ...] = ()
    #: {name: sampler spec} used when an experiment names no samplers
    default_samplers: dict = {}
    #: True when the model reports a likelihood bound (bits/dim) on the test split
    has_likelihood = False

    def __init__(self, params, data, device: torch.device):
        """`data`: the prepared ImageData, or just the (C, H, W) shape of its images."""
        super().__init__(params, data, device)
        self.shape = tuple(getattr(data, "shape", data))
        self._train: torch.Tensor | None = None

    # ------------------------------------------------------------------ what a model defines
    def build(self) -> nn.Module:
        raise NotImplementedError

    def batch_loss(self, net, x: torch.Tensor, step: int) -> torch.Tensor:
        raise NotImplementedError

    def generate_batch(self, n: int, sampler, generator: torch.Generator) -> tuple[torch.Tensor, int]:
        """(n images in [-1, 1], NFE per image)."""
        raise NotImplementedError

    def flops_per_image(self) -> float | None:
        """Training FLOPs per image (forward + backward ~ 3 x forward)."""
        return None

    @classmethod
    def check_sampler(cls, params, sampler, where: str) -> None:
        """Cross-checks of one parsed sampler against the model's params (optional)."""

    # ------------------------------------------------------------------ the lifecycle's hooks
    def prepare(self, ctx) -> None:
        self._train = torch.from_numpy(self.data.images("train")).to(self.device)

    def step_loss(self, net, step: int, seed: int) -> torch.Tensor:
        x = distributed.shard(random_batch(self._train, self.params.batch_size, seed, step, self.params.hflip))
        return self.batch_loss(net, x, step)

    def units_per_step(self) -> int:
        return self.params.batch_size

    def flops_per_step(self) -> float | None:
        fpi = self.flops_per_image()
        return None if fpi is None else fpi * self.params.batch_size

    def save_meta(self) -> dict:
        return {"shape": list(self.shape)}

    def restore_meta(self, meta: dict, path: Path) -> None:
        if list(meta.get("shape", [])) != list(self.shape):
            raise ConfigError(f"{path} was trained on images of shape {meta.get('shape')}, not {list(self.shape)}")

    @torch.no_grad()
    def generate(self, n: int, sampler, generator: torch.Generator, batch: int | None = None) -> tuple[np.ndarray, int]:
        """n uint8 images (N, C, H, W) and the NFE per image."""
        self.net.eval()
        batch = batch or self.params.eval_batch_size
        out, nfe = [], 0
        for start in range(0, n, batch):
            x, nfe = self.generate_batch(min(batch, n - start), sampler, generator)
            out.append(to_uint8(x.float()).cpu())
        return (torch.cat(out).numpy() if out else np.zeros((0, *self.shape), np.uint8)), nfe
