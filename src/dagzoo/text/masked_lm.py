"""What MDLM and BD3-LM share: a bidirectional backbone over [vocabulary, BOS, MASK], training
by the masked-diffusion NELBO, evaluation by a sampled bound with its standard error.

Subclasses define `nelbo_sample(net, x0, t, generator)` (one NELBO draw per row at the given
t) and `sample`. The MASK id is V+1 (V = predicted vocabulary, V = BOS).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dagzoo import distributed
from dagzoo.nn.transformer import TransformerConfig
from dagzoo.registry import param
from dagzoo.text.diffusion import nelbo_windows, split_windows, stratified_times
from dagzoo.text.neural import BackboneParams, NeuralTextModel
from dagzoo.train import step_seed


@dataclass
class MaskedDiffusionParams(BackboneParams):
    time_conditioning: bool = param(False, "condition the network on t (adaLN); MDLM shows it is not needed")
    eps: float = param(1e-3, "smallest t of training and of the bound estimate", min=0.0, max=0.5)
    nelbo_samples: int = param(8, "K: stratified t-samples per test window for the NELBO", min=1,
                               stage="evaluate")
    val_nelbo_samples: int = param(2, "K for the validation curve", min=1)
    sample_steps: int = param(128, "denoising steps of the sampler", min=1, stage="sample")


class MaskedDiffusionLM(NeuralTextModel):
    exact_likelihood = False

    def __init__(self, params, data, device):
        super().__init__(params, data, device)
        self.mask_id = data.vocab_size + 1

    def network_config(self, window: int) -> TransformerConfig:
        p = self.params
        return TransformerConfig(vocab_in=self.data.vocab_size + 2, vocab_out=self.data.vocab_size,
                                 block_size=window, n_layer=p.n_layer, n_head=p.n_head, d_model=p.d_model,
                                 dropout=p.dropout, positional=p.positional, causal=False,
                                 time_conditioning=p.time_conditioning)

    def logits(self, net, x_t, t, **kw):
        return net(x_t, t=t if self.params.time_conditioning else None, **kw)

    def nelbo_sample(self, net, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def training_times(self, batch: int, window: int, generator: torch.Generator) -> torch.Tensor:
        """t of a training batch: (batch,) one per sequence, or (batch, window) one per token."""
        return stratified_times(batch, generator, self.params.eps, 1.0)

    def batch_loss(self, model, x0, step, seed):
        g = torch.Generator().manual_seed(step_seed(seed, step) ^ 0xD1FF)
        # t is drawn for the global batch (stratified over all of it), then sharded like x0
        t = distributed.shard(self.training_times(self.params.batch_size, x0.shape[1], g))
        return self.nelbo_sample(model, x0, t, g).mean() / x0.shape[1]

    def val_window_nll(self, stream, window, seed):
        return self._window_nll(stream, window, self.params.val_nelbo_samples, seed)

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
