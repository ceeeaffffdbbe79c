"""What every image model shares: the training loop on the in-memory train split (batches chosen
by (seed, step), augmentation on the device), saving and loading, batched generation.

A model defines `build()` (its network), `loss(net, x, step)` (x in [-1, 1]) and `generate(n,
sampler, generator)`; likelihood models also `test_nll_bits_per_dim`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from dagzoo import distributed
from dagzoo.data.images import ImageData, to_model_range, to_uint8
from dagzoo.errors import ConfigError
from dagzoo.registry import param
from dagzoo.train import Trainer, TrainParams, step_seed


@dataclass
class ImageTrainParams(TrainParams):
    """Optimisation of every image model; EMA by EDM's half-life rule when ema_halflife_kimg is set."""

    lr: float = param(2e-4, "peak learning rate (AdamW)", min=0.0)
    warmup_steps: int = param(200, "linear warm-up steps", min=0)
    min_lr_ratio: float = param(1.0, "final lr / peak lr of the cosine decay (1: constant, as DDPM/EDM)",
                                min=0.0, max=1.0)
    weight_decay: float = param(0.0, "AdamW weight decay on matrices", min=0.0)
    beta2: float = param(0.999, "AdamW beta2", min=0.0, max=1.0)
    batch_size: int = param(64, "images per step", min=1)
    ema_halflife_kimg: float | None = param(None, "EMA half-life in thousands of images (EDM; null: use ema_decay)",
                                            min=0.0)
    ema_rampup_ratio: float | None = param(0.05, "EDM EMA warm-up: half-life <= this x images seen", min=0.0)
    hflip: bool = param(False, "random horizontal flips (on the device); off for digits and text-like data")
    eval_batch_size: int = param(256, "images per forward pass when evaluating or sampling", min=1)


@dataclass
class ImageRunContext:
    run_dir: Path
    seed: int
    config_hash: str
    device: torch.device
    on_progress: Callable[[], None]
    desc: str = "train"


def random_batch(train: torch.Tensor, batch: int, seed: int, step: int, hflip: bool) -> torch.Tensor:
    """Images of step `step` (a function of (seed, step) only), in [-1, 1], optionally flipped."""
    g = torch.Generator().manual_seed(step_seed(seed, step) ^ 0x1A6E)
    idx = torch.randint(0, train.shape[0], (batch,), generator=g)
    flip = torch.rand(batch, generator=g) < 0.5 if hflip else None
    x = to_model_range(train[idx.to(train.device)])
    if flip is not None:
        x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)
    return x


def forward_flops(net: nn.Module, example_args: tuple) -> int:
    """FLOPs of one forward pass (torch's FlopCounterMode: matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(*example_args)
    return int(counter.get_total_flops())


class ImageModel:
    Params: type
    #: sampler kinds this model accepts (see dagzoo.image.samplers); () -> samples from its prior
    sampler_kinds: tuple[str, ...] = ()
    #: {name: sampler spec} used when an experiment names no samplers
    default_samplers: dict = {}
    #: True when the model reports a likelihood bound (bits/dim) on the test split
    has_likelihood = False

    def __init__(self, params, shape: tuple[int, int, int], device: torch.device):
        self.params, self.shape, self.device = params, tuple(shape), device
        self.net: nn.Module | None = None

    @classmethod
    def check_experiment(cls, params, image_cfg: dict, where: str) -> None:
        """Cross-checks between the model's params and the data (optional)."""

    # ------------------------------------------------------------------ what a model defines
    def build(self) -> nn.Module:
        raise NotImplementedError

    def loss(self, net, x: torch.Tensor, step: int) -> torch.Tensor:
        raise NotImplementedError

    def generate_batch(self, n: int, sampler, generator: torch.Generator) -> tuple[torch.Tensor, int]:
        """(n images in [-1, 1], NFE per image)."""
        raise NotImplementedError

    def flops_per_image(self) -> float | None:
        """Training FLOPs per image (forward + backward ~ 3 x forward)."""
        return None

    def extra_summary(self) -> dict:
        return {}

    # ------------------------------------------------------------------ shared
    def init_network(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        self.net = self.build().to(self.device)
        return self.net

    def fit(self, ctx: ImageRunContext, data: ImageData) -> dict:
        p = self.params
        net = self.init_network(ctx.seed)
        train = torch.from_numpy(data.images("train")).to(self.device)

        def loss_fn(model, step):
            x = distributed.shard(random_batch(train, p.batch_size, ctx.seed, step, p.hflip))
            return self.loss(model, x, step)

        fpi = self.flops_per_image()
        trainer = Trainer(net, p, ctx.run_dir, ctx.seed, ctx.config_hash, loss_fn, tokens_per_step=p.batch_size,
                          flops_per_step=None if fpi is None else fpi * p.batch_size,
                          eval_fn=None, on_progress=ctx.on_progress, device=self.device, desc=ctx.desc)
        summary = trainer.fit()
        net.load_state_dict(trainer.final_state_dict())
        if distributed.state().is_main:
            torch.save({"state_dict": net.state_dict(), "shape": list(self.shape)}, ctx.run_dir / "model.pt")
        summary.update(params=sum(q.numel() for q in net.parameters()), flops_per_image=fpi, images=summary["tokens"])
        return summary

    @classmethod
    def load(cls, params, shape, run_dir: Path | None, device: torch.device, seed: int = 0) -> "ImageModel":
        """The trained model of `run_dir` (EMA weights when EMA was on); run_dir None: the
        untrained network of `seed` (the baseline every trained model must beat)."""
        model = cls(params, shape, device)
        net = model.init_network(seed)
        if run_dir is not None:
            state = torch.load(Path(run_dir) / "model.pt", map_location="cpu", weights_only=True)
            if list(state["shape"]) != list(shape):
                raise ConfigError(f"{run_dir}/model.pt was trained on images of shape {state['shape']}, not {list(shape)}")
            net.load_state_dict(state["state_dict"])
        net.eval()
        return model

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
