"""`ngram`: interpolated modified Kneser-Ney (see dagzoo.text.kneser_ney)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dagzoo.eval.perplexity import window_history
from dagzoo.io import append_jsonl
from dagzoo.registry import Paper, param, register
from dagzoo.text.base import TextModel, val_metrics_fn
from dagzoo.text.kneser_ney import KneserNeyLM
from dagzoo.text.sampling import sample_from_logits

if TYPE_CHECKING:
    from dagzoo.lifecycle import RunContext


@register(
    "text",
    "ngram",
    papers=(
        Paper(
            "An Empirical Study of Smoothing Techniques for Language Modeling",
            "Chen & Goodman",
            1998,
            "https://dash.harvard.edu/handle/1/25104739",
        ),
    ),
)
class NGram(TextModel):
    """Interpolated modified Kneser-Ney n-gram LM (exact likelihood; counting, no gradient steps)."""

    # counting and scoring are numpy; only sampling draws with torch's generator (the same
    # Gumbel-max draws as every text model); fitted once, by rank 0, on one core
    uses_torch = False
    distributed_training = False
    threaded_training = False

    @dataclass
    class Params:
        order: int = param(5, "n-gram order (context of order-1 tokens)", min=1, max=16)
        arpa: bool = param(False, "also export model.arpa (large for high orders)")

    def __init__(self, params, data, device):
        super().__init__(params, data, device)
        self.lm: KneserNeyLM | None = None

    def fit(self, ctx: RunContext) -> dict:
        t0 = time.perf_counter()
        train = self.data.tokens("train")
        self.lm = KneserNeyLM.fit(train, self.params.order, self.data.vocab_size)
        train_time = time.perf_counter() - t0
        self.lm.save(ctx.run_dir / "model.npz")
        if self.params.arpa:
            self.lm.write_arpa(ctx.run_dir / "model.arpa", self.data.tokenizer().token_names())
        # one point on the validation curve: the finished model after all its training tokens
        rec = {
            "step": 1,
            "tokens": int(train.size),
            "train_time_s": train_time,
            "timestamp_ms": int(time.time() * 1000),
            **val_metrics_fn(self.data, ctx.spec)(self.window_nll),
        }
        append_jsonl(ctx.run_dir / "history.jsonl", rec)
        return {
            "steps": 1,
            "tokens": int(train.size),
            "flops": None,
            "train_time_s": train_time,
            "ngrams": self.lm.num_ngrams(),
            "discounts": [list(level.discounts) for level in self.lm.raw],
        }

    @classmethod
    def load(cls, params, data, run_dir: Path, device, seed: int = 0):
        model = cls(params, data, device)
        model.lm = KneserNeyLM.load(Path(run_dir) / "model.npz", redo=f"rerun the training of {run_dir}")
        return model

    def log_probs(self, stream: np.ndarray, window: int) -> np.ndarray:
        return self.lm.log_probs(stream, window_history(len(stream), window))

    def sample(self, n, length, generator, temperature, top_k):
        import torch

        out = np.zeros((n, length), dtype=np.int64)
        for t in range(length):
            m = min(t, self.lm.order - 1)
            probs = self.lm.distributions(out[:, t - m : t])
            logits = torch.from_numpy(np.log(np.maximum(probs, 1e-300)))
            out[:, t] = sample_from_logits(logits, generator, temperature, top_k).numpy()
        return out, length
