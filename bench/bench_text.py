"""Text-family benchmarks (a benchmark, not a test): prints one table per comparison.

1. Kneser-Ney: dagzoo's vectorized interpolated modified KN against NLTK's
   KneserNeyInterpolated on the same KJV slice (build time, scoring time, perplexity), plus
   dagzoo alone on the full KJV train split.
2. Transformer training: dagzoo's GPT block stack against a plain torch.nn.TransformerEncoder of
   the same size (pre-LN, GELU, 4x MLP, causal mask), same batch, same optimizer: tokens/s and
   achieved FLOP/s (6N + 12LdT per token for both).

    python bench/bench_text.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from dagzoo.docgen.bench import save, table
from dagzoo.eval.perplexity import window_history
from dagzoo.nn.transformer import Transformer, TransformerConfig
from dagzoo.text.data import CharTokenizer, kjv_text, split_positional
from dagzoo.text.kneser_ney import KneserNeyLM


def bench_kn(train_chars: int, test_chars: int, orders: list[int]) -> None:
    from nltk.lm import KneserNeyInterpolated
    from nltk.lm.preprocessing import padded_everygram_pipeline

    text = kjv_text()
    train_text, _, test_text = split_positional(text, 0.05, 0.05)
    tok = CharTokenizer.train(train_text)
    rows = []
    for order in orders:
        tr, te = train_text[:train_chars], test_text[:test_chars]
        tr_ids, te_ids = tok.encode(tr), tok.encode(te)
        # every test token scored with its full (order-1)-token history, by both implementations
        t0 = time.perf_counter()
        lm = KneserNeyLM.fit(tr_ids, order, tok.vocab_size)
        t_fit = time.perf_counter() - t0
        hist = np.minimum(np.arange(te_ids.size), order - 1)
        t0 = time.perf_counter()
        lp = lm.log_probs(te_ids, hist)[order - 1 :]
        t_score = time.perf_counter() - t0
        ours_ppl = math.exp(-lp.mean())

        t0 = time.perf_counter()
        train_data, vocab = padded_everygram_pipeline(order, [list(tr)])
        nl = KneserNeyInterpolated(order)
        nl.fit(train_data, vocab)
        n_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        scores = [nl.logscore(te[i], list(te[i - order + 1 : i])) for i in range(order - 1, len(te))]
        n_score = time.perf_counter() - t0
        finite = [s for s in scores if math.isfinite(s)]
        nltk_ppl = 2 ** (-np.mean(scores)) if len(finite) == len(scores) else float("inf")
        rows.append(
            [
                order,
                f"{len(tr):,}",
                f"{len(te) - order + 1:,}",
                f"{t_fit:.3f}",
                f"{n_fit:.3f}",
                f"{n_fit / t_fit:.0f}x",
                f"{t_score:.4f}",
                f"{n_score:.3f}",
                f"{n_score / t_score:.0f}x",
                f"{ours_ppl:.4f}",
                f"{nltk_ppl:.4f}" if math.isfinite(nltk_ppl) else f"inf ({len(scores) - len(finite)} tokens p=0)",
            ]
        )
    table(
        "Kneser-Ney: dagzoo (modified KN, vectorized) vs NLTK KneserNeyInterpolated (single discount 0.1)",
        [
            "order",
            "train chars",
            "scored",
            "dagzoo fit s",
            "NLTK fit s",
            "speed-up",
            "dagzoo score s",
            "NLTK score s",
            "speed-up",
            "dagzoo ppl",
            "NLTK ppl",
        ],
        rows,
    )

    full_rows = []
    tr_ids, te_ids = tok.encode(train_text), tok.encode(test_text)
    for order in (3, 5, 9, 12):
        t0 = time.perf_counter()
        lm = KneserNeyLM.fit(tr_ids, order, tok.vocab_size)
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        lp = lm.log_probs(te_ids, window_history(te_ids.size, 256))
        t_score = time.perf_counter() - t0
        full_rows.append(
            [
                order,
                f"{lm.num_ngrams():,}",
                f"{t_fit:.2f}",
                f"{t_score:.3f}",
                f"{te_ids.size / t_score:,.0f}",
                f"{-lp.sum() / math.log(2) / len(test_text):.4f}",
            ]
        )
    table(
        f"dagzoo KN on the full KJV train split ({len(train_text):,} chars), test {len(test_text):,} chars, "
        "windows of 256",
        ["order", "n-grams", "fit s", "score s", "tokens/s", "test BPC"],
        full_rows,
    )


class PlainTorchLM(torch.nn.Module):
    """The same model built from torch.nn.TransformerEncoder (pre-LN, GELU, 4x MLP, causal)."""

    def __init__(self, vocab: int, block: int, n_layer: int, n_head: int, d: int):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, d)
        self.pos = torch.nn.Embedding(block, d)
        layer = torch.nn.TransformerEncoderLayer(
            d, n_head, 4 * d, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.enc = torch.nn.TransformerEncoder(layer, n_layer, norm=torch.nn.LayerNorm(d), enable_nested_tensor=False)
        self.mask = torch.nn.Transformer.generate_square_subsequent_mask(block)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.emb(idx) + self.pos(torch.arange(T, device=idx.device))
        x = self.enc(x, mask=self.mask[:T, :T].to(idx.device), is_causal=True)
        return F.linear(x, self.emb.weight)


def _steps_per_second(model, vocab, batch, block, steps, warmup=3):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, vocab, (batch, block), generator=g)
    y = torch.randint(0, vocab, (batch, block), generator=g)
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps / (time.perf_counter() - t0)


def bench_transformer(steps: int) -> None:
    vocab, block, batch = 65, 256, 16
    rows = []
    for n_layer, n_head, d in ((4, 6, 192), (6, 8, 256)):
        torch.manual_seed(0)
        ours = Transformer(
            TransformerConfig(
                vocab_in=vocab, vocab_out=vocab, block_size=block, n_layer=n_layer, n_head=n_head, d_model=d
            )
        )
        plain = PlainTorchLM(vocab, block, n_layer, n_head, d)
        flops_tok = ours.train_flops_per_token(block)
        results = {}
        for name, model in (("dagzoo", ours), ("nn.TransformerEncoder", plain)):
            sps = _steps_per_second(model, vocab, batch, block, steps)
            results[name] = sps
            n = sum(p.numel() for p in model.parameters())
            rows.append(
                [
                    f"L{n_layer} d{d}",
                    name,
                    f"{n / 1e6:.2f}M",
                    f"{sps * batch * block:,.0f}",
                    f"{sps * batch * block * flops_tok / 1e9:.1f}",
                    f"{sps / results['dagzoo']:.2f}",
                ]
            )
    table(
        f"Transformer training on {torch.get_num_threads()} CPU threads, batch {batch} x {block} tokens "
        "(relative: steps/s against dagzoo's model)",
        ["size", "model", "params", "tokens/s", "GFLOP/s", "relative"],
        rows,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.quick:
        bench_kn(20_000, 1_000, [3])
        bench_transformer(3)
    else:
        bench_kn(200_000, 5_000, [3, 5])
        bench_transformer(20)
    save(__file__)


if __name__ == "__main__":
    main()
