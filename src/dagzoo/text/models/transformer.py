"""`transformer`: a GPT-style autoregressive LM trained by the shared training loop.

Training windows are [BOS, x_1 .. x_{W-1}] -> [x_1 .. x_W] at random offsets of the train
stream (W = text.eval.window), exactly the shape of the evaluation windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dagzoo import distributed
from dagzoo.registry import register
from dagzoo.text.base import BackboneParams, RunContext, TextModel, random_windows, sample_from_logits
from dagzoo.train import Trainer
from dagzoo.nn.transformer import Transformer, TransformerConfig


@register("text", "transformer")
class TransformerLM(TextModel):
    """GPT-style autoregressive transformer LM (pre-LN, causal SDPA, tied embeddings; exact likelihood)."""

    distributed_training = True

    @dataclass
    class Params(BackboneParams):
        pass

    def __init__(self, params, data, device, window: int | None = None):
        super().__init__(params, data, device)
        self.window = window
        self.net: Transformer | None = None

    def _build(self, window: int) -> Transformer:
        p = self.params
        cfg = TransformerConfig(vocab_in=self.data.vocab_size + 1, vocab_out=self.data.vocab_size,
                                block_size=window, n_layer=p.n_layer, n_head=p.n_head, d_model=p.d_model,
                                dropout=p.dropout, causal=True)
        self.window = window
        self.net = Transformer(cfg).to(self.device)
        return self.net

    def _inputs(self, targets: torch.Tensor) -> torch.Tensor:
        bos = torch.full((targets.shape[0], 1), self.data.bos_id, dtype=targets.dtype, device=targets.device)
        return torch.cat([bos, targets[:, :-1]], dim=1)

    def fit(self, ctx: RunContext) -> dict:
        p, W = self.params, ctx.window
        net = self._build(W)
        train = torch.from_numpy(self.data.tokens("train").astype(np.int64))

        def loss_fn(model, step):
            targets = distributed.shard(random_windows(train, p.batch_size, W, ctx.seed, step)).to(self.device)
            logits = model(self._inputs(targets))
            return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))

        def eval_fn(model):
            return ctx.val_metrics(self.window_nll)

        trainer = Trainer(net, p, ctx.run_dir, ctx.seed, ctx.config_hash, loss_fn,
                          tokens_per_step=p.batch_size * W, flops_per_step=p.batch_size * W *
                          net.train_flops_per_token(W), eval_fn=eval_fn, on_progress=ctx.on_progress,
                          device=self.device, desc=ctx.desc)
        summary = trainer.fit()
        net.load_state_dict(trainer.final_state_dict())
        if distributed.state().is_main:
            torch.save({"state_dict": net.state_dict(), "window": W}, ctx.run_dir / "model.pt")
        summary.update(params=net.num_params(), non_embedding_params=net.num_params(embeddings=False),
                       flops_per_token=net.train_flops_per_token(W))
        return summary

    @classmethod
    def load(cls, params, data, run_dir: Path, device):
        state = torch.load(Path(run_dir) / "model.pt", map_location="cpu", weights_only=True)
        model = cls(params, data, device)
        model._build(int(state["window"])).load_state_dict(state["state_dict"])
        model.net.eval()
        return model

    @torch.no_grad()
    def log_probs(self, stream: np.ndarray, window: int) -> np.ndarray:
        if window > self.window:
            raise ValueError(f"window {window} exceeds the trained context {self.window}")
        was_training = self.net.training
        self.net.eval()
        s = torch.from_numpy(np.asarray(stream, dtype=np.int64))
        n_full = s.numel() // window
        out = []
        full = s[: n_full * window].view(n_full, window)
        pieces = [full[i:i + self.params.eval_batch_size] for i in range(0, n_full, self.params.eval_batch_size)]
        if s.numel() % window:
            pieces.append(s[n_full * window:].view(1, -1))
        for targets in pieces:
            targets = targets.to(self.device)
            logits = self.net(self._inputs(targets)).float()
            lp = torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None])[..., 0]
            out.append(lp.reshape(-1).cpu().numpy().astype(np.float64))
        self.net.train(was_training)
        return np.concatenate(out)

    @torch.no_grad()
    def sample(self, n, length, generator, temperature, top_k):
        self.net.eval()
        seq = torch.full((n, 1), self.data.bos_id, dtype=torch.long, device=self.device)
        for _ in range(length):
            logits = self.net(seq)[:, -1]
            nxt = sample_from_logits(logits, generator, temperature, top_k).to(self.device)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
        return seq[:, 1:].cpu().numpy(), length
