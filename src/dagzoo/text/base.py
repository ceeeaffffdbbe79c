"""The base of every text model (dagzoo.lifecycle.Model is the only class above it).

A text model trains on the train split of its `TokenData`, scores streams under the window
protocol (every window starts after a BOS) and samples windows. It is one of two kinds:

- exact (`exact_likelihood = True`): defines `log_probs`; the window NLL is their sum. The
  autoregressive transformer, and the n-gram, which is fitted by counting (it overrides
  `fit` / `load` and never imports torch).
- bound (`exact_likelihood = False`): defines `nelbo_sample(net, x0, t, generator)`, one draw of
  the NELBO per row at times t; training minimises its mean and evaluation reports its estimate
  with K stratified times per window, with a standard error (MDLM, SEDD, BD3-LM).

A neural model (every one but the n-gram) is the shared transformer (dagzoo.nn.transformer),
causal for an exact model and bidirectional over [vocabulary, BOS, MASK] for a bound one, trained
by the shared lifecycle on random windows of the train stream (sharded over data-parallel ranks)
with `batch_loss`, and validated on the run's fixed validation subset.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from dagzoo.errors import CheckpointError, DataError
from dagzoo.lifecycle import Model, RunContext
from dagzoo.text.data import TokenData

if TYPE_CHECKING:  # the n-gram model's stages run without torch (see Model.uses_torch)
    import torch

    from dagzoo.nn.transformer import Transformer, TransformerConfig

# (stream, window) -> (NLL or its upper bound per window in nats, variance of that estimate or None)
WindowNLL = Callable[[np.ndarray, int], "tuple[np.ndarray, np.ndarray | None]"]


def val_metrics_fn(data: TokenData, spec: dict) -> Callable[[WindowNLL], dict]:
    """window_nll_fn -> {"val/bpc": ..., ...} on the run's fixed validation subset (the first
    `text.eval.val_tokens` tokens of the val split, scored in the run's windows)."""
    from dagzoo.eval.perplexity import likelihood_metrics

    window = spec["eval"]["window"]
    val = data.tokens("val")[: spec["eval"]["val_tokens"]]
    chars = len(data.tokenizer().decode(val))

    def metrics(window_nll_fn: WindowNLL) -> dict:
        nll, var = window_nll_fn(val, window)
        return likelihood_metrics(nll, var, len(val), chars, "val")

    return metrics


def random_windows(train: torch.Tensor, batch: int, window: int, seed: int, step: int) -> torch.Tensor:
    """(batch, window) slices of the train stream at offsets that depend only on (seed, step)."""
    import torch

    from dagzoo.train import step_seed

    if train.numel() <= window:
        raise DataError(f"the train split has {train.numel()} tokens, not more than one window ({window})")
    g = torch.Generator().manual_seed(step_seed(seed, step) ^ 0x5EED)
    starts = torch.randint(0, train.numel() - window + 1, (batch,), generator=g)
    return train[starts[:, None] + torch.arange(window)]


class TextModel(Model):
    """Base of every text model (see the module's docstring for the two kinds)."""

    #: True when log_probs is the exact likelihood; False when nelbo_sample bounds the NLL.
    exact_likelihood = True

    def __init__(self, params, data, device):
        super().__init__(params, data, device)
        self.window: int | None = None
        self._train: torch.Tensor | None = None

    # ------------------------------------------------------------------ what a model defines
    def log_probs(self, stream: np.ndarray, window: int) -> np.ndarray:
        """Exact models: natural-log probability of every token of `stream` (histories cut at
        window starts)."""
        raise NotImplementedError

    def nelbo_sample(self, net, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Bound models: one NELBO draw per row of x0 (nats) at times t, (B,) or (B, W)."""
        raise NotImplementedError

    def sample(
        self, n: int, length: int, generator: torch.Generator, temperature: float, top_k: int | None
    ) -> tuple[np.ndarray, int]:
        """(n, length) token ids, each sample starting at a window start, and the number of
        network evaluations (NFE) it took."""
        raise NotImplementedError

    def batch_loss(self, model, x0: torch.Tensor, step: int, seed: int) -> torch.Tensor:
        """Mean loss per token of this rank's shard `x0` of the global batch of `step`; a bound
        model's is its NELBO at training times drawn for the whole global batch."""
        import torch

        from dagzoo import distributed
        from dagzoo.train import step_seed

        g = torch.Generator().manual_seed(step_seed(seed, step) ^ 0xD1FF)
        # t is drawn for the global batch (stratified over all of it), then sharded like x0
        t = distributed.shard(self.training_times(self.params.batch_size, x0.shape[1], g))
        return self.nelbo_sample(model, x0, t, g).mean() / x0.shape[1]

    def training_times(self, batch: int, window: int, generator: torch.Generator) -> torch.Tensor:
        """Bound models: t of a training batch, (batch,) one per sequence or (batch, window) one
        per token; stratified U[eps, 1] by default."""
        from dagzoo.text.diffusion import stratified_times

        return stratified_times(batch, generator, self.params.eps, 1.0)

    def context_length(self, window: int) -> int:
        """Tokens the network attends over per training window (FLOPs)."""
        return window

    # ------------------------------------------------------------------ scoring
    def window_nll(self, stream: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray | None]:
        """NLL of every window (nats) and the variance of the estimate (None: exact)."""
        if not self.exact_likelihood:
            import torch

            return self._nelbo_windows(stream, window, self.params.nelbo_samples, seed=torch.initial_seed() % 2**31)
        lp = self.log_probs(stream, window)
        return -np.add.reduceat(lp, np.arange(0, len(lp), window)), None

    def val_window_nll(self, stream: np.ndarray, window: int, seed: int):
        if not self.exact_likelihood:
            return self._nelbo_windows(stream, window, self.params.val_nelbo_samples, seed)
        return self.window_nll(stream, window)

    def _nelbo_windows(self, stream, window, k: int, seed: int):
        import torch

        from dagzoo.text.diffusion import nelbo_windows, split_windows

        was_training = self.net.training
        self.net.eval()
        g = torch.Generator().manual_seed(seed ^ 0xE7A1)
        with torch.no_grad():
            means, var = nelbo_windows(
                split_windows(stream, window),
                k,
                g,
                lambda x0, t: self.nelbo_sample(self.net, x0.to(self.device), t, g),
                eps=self.params.eps,
                batch_size=max(1, self.params.eval_batch_size // k),
            )
        self.net.train(was_training)
        return means, var

    # ------------------------------------------------------------------ the network
    @property
    def mask_id(self) -> int:
        """A bound model's MASK input id: V + 1 (0..V-1 the predicted vocabulary, V the BOS)."""
        return self.data.vocab_size + 1

    def network_config(self, window: int) -> TransformerConfig:
        """Causal over [vocabulary, BOS] for an exact model; bidirectional over [vocabulary, BOS,
        MASK] for a bound one, optionally time-conditioned (adaLN)."""
        from dagzoo.nn.transformer import TransformerConfig

        p, causal = self.params, self.exact_likelihood
        return TransformerConfig(
            vocab_in=self.data.vocab_size + (1 if causal else 2),
            vocab_out=self.data.vocab_size,
            block_size=window,
            n_layer=p.n_layer,
            n_head=p.n_head,
            d_model=p.d_model,
            dropout=p.dropout,
            positional=p.positional,
            causal=causal,
            time_conditioning=getattr(p, "time_conditioning", False),
        )

    def logits(self, net, x_t, t, **kw):
        """A bound model's network output, given t only when it is time-conditioned."""
        return net(x_t, t=t if self.params.time_conditioning else None, **kw)

    # ------------------------------------------------------------------ the lifecycle's hooks
    def build(self) -> Transformer:
        from dagzoo.nn.transformer import Transformer

        return Transformer(self.network_config(self.window))

    def prepare(self, ctx: RunContext) -> None:
        import torch

        self.window = ctx.spec["eval"]["window"]
        self._train = torch.from_numpy(self.data.tokens("train").astype(np.int64))

    def step_loss(self, net, step: int, seed: int) -> torch.Tensor:
        from dagzoo import distributed

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
        return {
            "non_embedding_params": self.net.num_params(embeddings=False),
            "flops_per_token": self._flops_per_token(),
        }

    def num_params(self) -> int:
        return self.net.num_params()
