"""Text objectives on one backbone (a benchmark, not a test).

1. Training tokens/s of each objective with the same transformer backbone and batch:
   autoregressive, MDLM, SEDD (absorbing), BD3-LM (L' = 4 and 16; it attends over x_t (+) x_0,
   twice the sequence).
2. Sampling: tokens/s, NFE and seconds per sample batch at equal sample length for every sampler,
   including BD3-LM with and without its KV cache.

    python bench/bench_diffusion.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import torch

from dagzoo.docgen.bench import save, table
from dagzoo.text.models.bd3lm import BD3LM
from dagzoo.text.models.mdlm import MDLM
from dagzoo.text.models.sedd import SEDD
from dagzoo.text.models.transformer import TransformerLM

V, W = 65, 256


def models(backbone: dict, sample_steps: int):
    data = SimpleNamespace(vocab_size=V, bos_id=V)
    cpu = torch.device("cpu")
    return {
        "AR transformer": TransformerLM(TransformerLM.Params(**backbone), data, cpu),
        "MDLM": MDLM(MDLM.Params(**backbone, sample_steps=sample_steps), data, cpu),
        "MDLM (LLaDA sampler)": MDLM(
            MDLM.Params(**backbone, sample_steps=sample_steps, sampler="llada", llada_block_length=32), data, cpu
        ),
        "SEDD absorbing (Euler)": SEDD(SEDD.Params(**backbone, sample_steps=sample_steps, sampler="euler"), data, cpu),
        "SEDD absorbing (Tweedie)": SEDD(SEDD.Params(**backbone, sample_steps=sample_steps), data, cpu),
        "BD3-LM L'=4": BD3LM(BD3LM.Params(**backbone, block_length=4, sample_steps=4), data, cpu),
        "BD3-LM L'=16": BD3LM(BD3LM.Params(**backbone, block_length=16, sample_steps=16), data, cpu),
    }


def loss_of(name, m, x0, g):
    if name == "AR transformer":
        logits = m.net(m._inputs(x0))
        return torch.nn.functional.cross_entropy(logits.reshape(-1, V), x0.reshape(-1))
    return m.nelbo_sample(m.net, x0, m.training_times(x0.shape[0], x0.shape[1], g), g).mean() / x0.shape[1]


def bench_training(ms, batch: int, steps: int) -> None:
    rows, base = [], None
    for name, m in ms.items():
        if "sampler" in name.lower() or "Tweedie" in name:
            continue
        m.window = W
        net = m.init_network(0)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(0)
        x0 = torch.randint(0, V, (batch, W), generator=g)
        for i in range(steps + 2):
            if i == 2:
                t0 = time.perf_counter()
            loss = loss_of(name, m, x0, g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        tok_s = steps * batch * W / (time.perf_counter() - t0)
        base = base or tok_s
        rows.append([name.replace(" (Euler)", ""), f"{tok_s:,.0f}", f"{tok_s / base:.2f}"])
    table(
        f"Training throughput, one backbone ({torch.get_num_threads()} CPU threads, batch {batch} x {W} tokens)",
        ["objective", "tokens/s", "relative to AR"],
        rows,
    )


def bench_sampling(ms, n: int, length: int) -> None:
    rows = []
    for name, m in ms.items():
        m.window = W
        m.init_network(0)
        variants = [(name, {})]
        if name.startswith("BD3"):
            variants = [(f"{name}, KV cache", {"kv_cache": True}), (f"{name}, no cache", {"kv_cache": False})]
        for label, kw in variants:
            g = torch.Generator().manual_seed(0)
            t0 = time.perf_counter()
            out, nfe = m.sample(n, length, g, 1.0, None, **kw)
            dt = time.perf_counter() - t0
            rows.append([label, nfe, f"{dt:.2f}", f"{n * length / dt:,.0f}", f"{dt / max(nfe, 1) * 1000:.1f}"])
    table(
        f"Sampling {n} x {length} tokens (same backbone, untrained weights: speed only)",
        ["sampler", "NFE", "seconds", "tokens/s", "ms per NFE"],
        rows,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    backbone = {"n_layer": 4, "n_head": 4, "d_model": 128}
    ms = models(backbone, sample_steps=32 if a.quick else 128)
    bench_training(ms, batch=4 if a.quick else 8, steps=2 if a.quick else 8)
    bench_sampling(ms, n=2 if a.quick else 4, length=32 if a.quick else 128)
    save(__file__)


if __name__ == "__main__":
    main()
