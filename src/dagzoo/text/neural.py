"""What every neural text model shares: one transformer backbone trained by the shared lifecycle
(dagzoo.lifecycle.NeuralModel) on random windows of the train stream (sharded over data-parallel
ranks), validated on the run's fixed validation subset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dagzoo import distributed
from dagzoo.errors import CheckpointError, ConfigError, DataError
from dagzoo.lifecycle import NeuralModel, RunContext
from dagzoo.nn.transformer import Transformer, TransformerConfig
from dagzoo.registry import param
from dagzoo.text.base import TextModel, val_metrics_fn
from dagzoo.train import TrainParams, step_seed


@dataclass
class BackboneParams(TrainParams):
    """The shared transformer backbone of every neural text model."""

    n_layer: int = param(4, "transformer blocks", min=1)
    n_head: int = param(4, "attention heads", min=1)
    d_model: int = param(128, "width", min=8)
    dropout: float = param(0.0, "dropout", min=0.0, max=0.99)
    positional: str = param("rotary", "position encoding: rotary (RoPE, as the diffusion LMs' DiT backbones) "
                            "or learned absolute embeddings (GPT-2)", choices=("rotary", "learned"))
    eval_batch_size: int = param(32, "windows per forward pass when scoring", min=1)

    def check(self, where: str) -> None:
        if self.d_model % self.n_head:
            raise ConfigError(f"{where}.d_model: must be divisible by n_head ({self.n_head}), got {self.d_model}")


def random_windows(train: torch.Tensor, batch: int, window: int, seed: int, step: int) -> torch.Tensor:
    """(batch, window) slices of the train stream at offsets that depend only on (seed, step)."""
    if train.numel() <= window:
        raise DataError(f"the train split has {train.numel()} tokens, not more than one window ({window})")
    g = torch.Generator().manual_seed(step_seed(seed, step) ^ 0x5EED)
    starts = torch.randint(0, train.numel() - window + 1, (batch,), generator=g)
    return train[starts[:, None] + torch.arange(window)]


class NeuralTextModel(NeuralModel, TextModel):
    def __init__(self, params, data, device):
        super().__init__(params, data, device)
        self.window: int | None = None
        self._train: torch.Tensor | None = None

    # ------------------------------------------------------------------ what a model defines
    def network_config(self, window: int) -> TransformerConfig:
        raise NotImplementedError

    def batch_loss(self, model, x0: torch.Tensor, step: int, seed: int) -> torch.Tensor:
        """Mean loss per token of this rank's shard `x0` of the global batch of `step`."""
        raise NotImplementedError

    def val_window_nll(self, stream: np.ndarray, window: int, seed: int):
        return self.window_nll(stream, window)

    def context_length(self, window: int) -> int:
        """Tokens the network attends over per training window (FLOPs)."""
        return window

    # ------------------------------------------------------------------ the lifecycle's hooks
    def build(self) -> Transformer:
        return Transformer(self.network_config(self.window))

    def prepare(self, ctx: RunContext) -> None:
        self.window = ctx.spec["eval"]["window"]
        self._train = torch.from_numpy(self.data.tokens("train").astype(np.int64))

    def step_loss(self, net, step: int, seed: int) -> torch.Tensor:
        p = self.params
        x0 = distributed.shard(random_windows(self._train, p.batch_size, self.window, seed, step)).to(self.device)
        return self.batch_loss(net, x0, step, seed)

    def units_per_step(self) -> int:
        return self.params.batch_size * self.window

    def eval_fn(self, ctx: RunContext):
        metrics = val_metrics_fn(self.data, ctx.spec)
        return lambda model: metrics(lambda s, w: self.val_window_nll(s, w, ctx.seed))

    def _flops_per_token(self) -> float:
        ctx_len = self.context_length(self.window)
        return ctx_len / self.window * self.net.train_flops_per_token(ctx_len)

    def flops_per_step(self) -> float:
        return self.units_per_step() * self._flops_per_token()

    def save_meta(self) -> dict:
        return {"window": self.window}

    def restore_meta(self, meta: dict, path: Path) -> None:
        if "window" not in meta:
            raise CheckpointError(f"{path} holds no training window: retrain this run")
        self.window = int(meta["window"])

    def summary_extras(self) -> dict:
        return {"non_embedding_params": self.net.num_params(embeddings=False),
                "flops_per_token": self._flops_per_token()}

    def num_params(self) -> int:
        return self.net.num_params()
