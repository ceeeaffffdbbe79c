"""What MDLM and BD3-LM share: a bidirectional backbone over [vocabulary, BOS, MASK], training
by the masked-diffusion NELBO, evaluation by a sampled bound with its standard error.

Subclasses define `nelbo_sample(net, x0, t, generator)` (one NELBO draw per row at the given
t) and `sample`. The MASK id is V+1 (V = predicted vocabulary, V = BOS).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dagzoo.nn.transformer import Transformer, TransformerConfig
from dagzoo import distributed
from dagzoo.registry import param
from dagzoo.text.base import BackboneParams, RunContext, TextModel, random_windows
from dagzoo.text.diffusion import nelbo_windows, split_windows, stratified_times
from dagzoo.train import Trainer, step_seed


@dataclass
class MaskedDiffusionParams(BackboneParams):
    time_conditioning: bool = param(False, "condition the network on t (adaLN); MDLM shows it is not needed")
    eps: float = param(1e-3, "smallest t of training and of the bound estimate", min=0.0, max=0.5)
    nelbo_samples: int = param(8, "K: stratified t-samples per test window for the NELBO", min=1)
    val_nelbo_samples: int = param(2, "K for the validation curve", min=1)
    sample_steps: int = param(128, "denoising steps of the sampler", min=1)


class MaskedDiffusionLM(TextModel):
    exact_likelihood = False
    distributed_training = True
    causal = False

    def __init__(self, params, data, device):
        super().__init__(params, data, device)
        self.mask_id = data.vocab_size + 1
        self.net: Transformer | None = None
        self.window: int | None = None

    # ------------------------------------------------------------------ network
    def context_length(self, window: int) -> int:
        return window

    def _build(self, window: int) -> Transformer:
        p = self.params
        cfg = TransformerConfig(vocab_in=self.data.vocab_size + 2, vocab_out=self.data.vocab_size,
                                block_size=self.context_length(window), n_layer=p.n_layer, n_head=p.n_head,
                                d_model=p.d_model, dropout=p.dropout, causal=False,
                                time_conditioning=p.time_conditioning)
        self.window = window
        self.net = Transformer(cfg).to(self.device)
        return self.net

    def logits(self, net, x_t, t, **kw):
        return net(x_t, t=t if self.params.time_conditioning else None, **kw)

    def nelbo_sample(self, net, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def training_times(self, batch: int, window: int, generator: torch.Generator) -> torch.Tensor:
        """t of a training batch: (batch,) one per sequence, or (batch, window) one per token."""
        return stratified_times(batch, generator, self.params.eps, 1.0)

    # ------------------------------------------------------------------ train / load
    def fit(self, ctx: RunContext) -> dict:
        p, W = self.params, ctx.window
        net = self._build(W)
        train = torch.from_numpy(self.data.tokens("train").astype(np.int64))

        def loss_fn(model, step):
            x0 = distributed.shard(random_windows(train, p.batch_size, W, ctx.seed, step)).to(self.device)
            g = torch.Generator().manual_seed(step_seed(ctx.seed, step) ^ 0xD1FF)
            t = distributed.shard(self.training_times(p.batch_size, W, g))
            return self.nelbo_sample(model, x0, t, g).mean() / W

        def eval_fn(model):
            return ctx.val_metrics(lambda s, w: self._window_nll(s, w, p.val_nelbo_samples, ctx.seed))

        ctx_len = self.context_length(W)
        trainer = Trainer(net, p, ctx.run_dir, ctx.seed, ctx.config_hash, loss_fn,
                          tokens_per_step=p.batch_size * W,
                          flops_per_step=p.batch_size * ctx_len * net.train_flops_per_token(ctx_len),
                          eval_fn=eval_fn, on_progress=ctx.on_progress, device=self.device, desc=ctx.desc)
        summary = trainer.fit()
        net.load_state_dict(trainer.final_state_dict())
        if distributed.state().is_main:
            torch.save({"state_dict": net.state_dict(), "window": W}, ctx.run_dir / "model.pt")
        summary.update(params=net.num_params(), non_embedding_params=net.num_params(embeddings=False),
                       flops_per_token=ctx_len / W * net.train_flops_per_token(ctx_len))
        return summary

    @classmethod
    def load(cls, params, data, run_dir: Path, device):
        state = torch.load(Path(run_dir) / "model.pt", map_location="cpu", weights_only=True)
        model = cls(params, data, device)
        model._build(int(state["window"])).load_state_dict(state["state_dict"])
        model.net.eval()
        return model

    # ------------------------------------------------------------------ likelihood bound
    @torch.no_grad()
    def _window_nll(self, stream, window, k: int, seed: int):
        was_training = self.net.training
        self.net.eval()
        g = torch.Generator().manual_seed(seed ^ 0xE7A1)
        means, var = nelbo_windows(split_windows(stream, window), k, g,
                                   lambda x0, t: self.nelbo_sample(self.net, x0.to(self.device), t, g),
                                   eps=self.params.eps, batch_size=max(1, self.params.eval_batch_size // k))
        self.net.train(was_training)
        return means, var

    def window_nll(self, stream, window):
        return self._window_nll(stream, window, self.params.nelbo_samples, seed=torch.initial_seed() % 2**31)
