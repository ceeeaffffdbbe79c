"""What every neural text model shares: one transformer backbone, the shared training loop on
random windows of the train stream (sharded over data-parallel ranks), saving and loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dagzoo import distributed
from dagzoo.nn.transformer import Transformer, TransformerConfig
from dagzoo.text.base import RunContext, TextModel, random_windows
from dagzoo.train import Trainer


class NeuralTextModel(TextModel):
    distributed_training = True

    def __init__(self, params, data, device):
        super().__init__(params, data, device)
        self.net: Transformer | None = None
        self.window: int | None = None

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

    # ------------------------------------------------------------------ shared
    def _build(self, window: int) -> Transformer:
        self.window = window
        self.net = Transformer(self.network_config(window)).to(self.device)
        return self.net

    def fit(self, ctx: RunContext) -> dict:
        p, W = self.params, ctx.window
        net = self._build(W)
        train = torch.from_numpy(self.data.tokens("train").astype(np.int64))

        def loss_fn(model, step):
            x0 = distributed.shard(random_windows(train, p.batch_size, W, ctx.seed, step)).to(self.device)
            return self.batch_loss(model, x0, step, ctx.seed)

        def eval_fn(model):
            return ctx.val_metrics(lambda s, w: self.val_window_nll(s, w, ctx.seed))

        ctx_len = self.context_length(W)
        flops_per_token = ctx_len / W * net.train_flops_per_token(ctx_len)
        trainer = Trainer(net, p, ctx.run_dir, ctx.seed, ctx.config_hash, loss_fn,
                          tokens_per_step=p.batch_size * W, flops_per_step=p.batch_size * W * flops_per_token,
                          eval_fn=eval_fn, on_progress=ctx.on_progress, device=self.device, desc=ctx.desc)
        summary = trainer.fit()
        net.load_state_dict(trainer.final_state_dict())
        if distributed.state().is_main:
            torch.save({"state_dict": net.state_dict(), "window": W}, ctx.run_dir / "model.pt")
        summary.update(params=net.num_params(), non_embedding_params=net.num_params(embeddings=False),
                       flops_per_token=flops_per_token)
        return summary

    @classmethod
    def load(cls, params, data, run_dir: Path, device):
        state = torch.load(Path(run_dir) / "model.pt", map_location="cpu", weights_only=True)
        model = cls(params, data, device)
        model._build(int(state["window"])).load_state_dict(state["state_dict"])
        model.net.eval()
        return model
