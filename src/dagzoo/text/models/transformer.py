"""`transformer`: a GPT-style autoregressive LM trained by the shared training loop.

Training windows are [BOS, x_1 .. x_{W-1}] -> [x_1 .. x_W] at random offsets of the train
stream (W = text.eval.window), exactly the shape of the evaluation windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dagzoo.registry import Paper, register
from dagzoo.text.base import TextModel
from dagzoo.text.losses import ar_cross_entropy
from dagzoo.text.params import BackboneParams
from dagzoo.text.sampling import sample_from_logits


@register(
    "text",
    "transformer",
    papers=(
        Paper(
            "Language Models are Unsupervised Multitask Learners",
            "Radford et al.",
            2019,
            "https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf",
        ),
        Paper(
            "RoFormer: Enhanced Transformer with Rotary Position Embedding",
            "Su et al.",
            2021,
            "https://arxiv.org/abs/2104.09864",
        ),
    ),
)
class TransformerLM(TextModel):
    """GPT-style autoregressive transformer LM (pre-LN, causal SDPA, tied embeddings; exact likelihood)."""

    @dataclass
    class Params(BackboneParams):
        pass

    def _inputs(self, targets: torch.Tensor) -> torch.Tensor:
        bos = torch.full((targets.shape[0], 1), self.data.bos_id, dtype=targets.dtype, device=targets.device)
        return torch.cat([bos, targets[:, :-1]], dim=1)

    def batch_loss(self, model, x0, step, seed):
        logits = model(self._inputs(x0))
        return ar_cross_entropy(logits, x0)

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
        pieces = [full[i : i + self.params.eval_batch_size] for i in range(0, n_full, self.params.eval_batch_size)]
        if s.numel() % window:
            pieces.append(s[n_full * window :].view(1, -1))
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
