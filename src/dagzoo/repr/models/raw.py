"""`raw`: the pixels themselves as features (in [0, 1], flattened): the reference a learned
representation is compared with when nothing is learned at all."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dagzoo.registry import register
from dagzoo.repr.base import ReprModel, ReprNet


class Pixels(nn.Module):
    """The identity encoder: feature map = the image, features = its pixels."""

    dim = 0

    def forward(self, x):
        return x.flatten(1)

    def feature_map(self, x):
        return x

    def rf_layers(self):
        return []


@register("repr", "raw")
class RawPixels(ReprModel):
    """The raw pixels in [0, 1] (reference: no encoder)."""

    @dataclass
    class Params:
        """No hyper-parameters: nothing is learned."""

    distributed_training = False
    threaded_training = False

    @classmethod
    def check_experiment(cls, params, section, where) -> None:
        pass

    def build(self) -> nn.Module:
        return ReprNet(Pixels(), nn.Identity(), None, None)

    def fit(self, ctx) -> dict:
        self.init_network(ctx.seed)
        return {
            "steps": 0,
            "unit": ctx.unit,
            ctx.unit: 0,
            "flops": None,
            "train_time_s": 0.0,
            "resumed_from": None,
            "params": 0,
        }

    @classmethod
    def load(cls, params, data, run_dir: Path | None, device: torch.device, seed: int = 0) -> "RawPixels":
        model = cls(params, data, device)
        model.init_network(seed).eval()
        return model
