"""Masked diffusion (MDLM / LLaDA) and block diffusion (BD3-LM) against their definitions."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dagzoo.nn.transformer import Transformer, TransformerConfig
from dagzoo.text.diffusion import (
    ancestral_sample,
    bd3_attention_mask,
    llada_sample,
    nelbo_weight,
    nelbo_windows,
    stratified_times,
)
from dagzoo.text.models.bd3lm import BD3LM
from dagzoo.text.models.mdlm import MDLM

V = 6
MASK = V + 1


def model_of(cls, **params):
    data = SimpleNamespace(vocab_size=V)
    return cls(cls.Params(**params), data, torch.device("cpu"))


def tiny_net(seed=0, time_conditioning=False, block_size=16, positional="learned"):
    torch.manual_seed(seed)
    net = Transformer(
        TransformerConfig(
            vocab_in=V + 2,
            vocab_out=V,
            block_size=block_size,
            n_layer=2,
            n_head=2,
            d_model=16,
            causal=False,
            time_conditioning=time_conditioning,
            positional=positional,
        )
    )
    if time_conditioning:  # adaLN-Zero starts as identity; perturb so that t really matters
        for p in net.parameters():
            p.data += 0.05 * torch.randn_like(p)
    return net.eval()


def test_mdlm_weight_is_one_over_t_under_loglinear():
    t = torch.tensor([1e-3, 0.1, 0.37, 0.5, 0.99], dtype=torch.float64)
    torch.testing.assert_close(nelbo_weight(t), 1 / t)


def test_stratified_times_cover_every_stratum():
    t = stratified_times(8, torch.Generator().manual_seed(1), 0.0, 1.0)
    assert sorted((t * 8).floor().long().tolist()) == list(range(8))


def test_nelbo_of_exact_model_equals_entropy_on_iid_source():
    """For an i.i.d. source the masked-diffusion bound is tight: an oracle predicting the source
    distribution at every masked position has NELBO = entropy (within the estimate's SE)."""
    pi = torch.tensor([0.4, 0.25, 0.15, 0.1, 0.06, 0.04])
    entropy = float(-(pi * pi.log()).sum())
    g = torch.Generator().manual_seed(0)
    windows = [torch.multinomial(pi, 32, replacement=True, generator=g) for _ in range(300)]
    mdlm = model_of(MDLM, eps=1e-3)

    def oracle(x, t=None, **kw):
        return pi.log().expand(*x.shape, V)

    means, var = nelbo_windows(windows, 4, g, lambda x0, t: mdlm.nelbo_sample(oracle, x0, t, g), eps=1e-3)
    per_token = means.sum() / (32 * len(windows))
    se = math.sqrt(var.sum()) / (32 * len(windows))
    assert abs(per_token - entropy) < 3 * se + 1e-3 * entropy, (per_token, entropy, se)
    assert se < 0.02 * entropy


def test_nelbo_upper_bounds_the_true_likelihood_of_a_markov_source():
    """For a Markov source, the oracle's bound is >= the entropy rate (a bound, not an equality)."""
    trans = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    g = torch.Generator().manual_seed(1)

    def chain(n):
        x = [0]
        for _ in range(n - 1):
            x.append(int(torch.multinomial(trans[x[-1]], 1, generator=g)))
        return torch.tensor(x)

    stat = torch.tensor([2 / 3, 1 / 3])
    rate = float(-(stat[:, None] * trans * trans.log()).sum())
    windows = [chain(16) for _ in range(100)]
    exact = float(np.mean([-(stat[w[0]].log() + trans[w[:-1], w[1:]].log().sum()) for w in windows])) / 16
    assert exact > rate * 0.9  # sanity of the source
    mdlm = model_of(MDLM)

    def marginal_oracle(x, t=None, **kw):  # ignores context: a valid but loose denoiser
        logits = torch.full((*x.shape, V), -30.0)
        logits[..., :2] = stat.log()
        return logits

    means, _ = nelbo_windows(windows, 8, g, lambda x0, t: mdlm.nelbo_sample(marginal_oracle, x0, t, g))
    assert means.mean() / 16 >= exact


def test_bd3_attention_mask_matches_the_paper_by_hand():
    # window of 4 tokens, blocks of 2: rows/cols = [xt0 xt1 xt2 xt3 | x00 x01 x02 x03]
    expected = torch.tensor(
        [
            [1, 1, 0, 0, 0, 0, 0, 0],  # x_t block 0: its own block only
            [1, 1, 0, 0, 0, 0, 0, 0],
            [0, 0, 1, 1, 1, 1, 0, 0],  # x_t block 1: its own block + x_0 block 0
            [0, 0, 1, 1, 1, 1, 0, 0],
            [0, 0, 0, 0, 1, 1, 0, 0],  # x_0 block 0: block-causal
            [0, 0, 0, 0, 1, 1, 0, 0],
            [0, 0, 0, 0, 1, 1, 1, 1],  # x_0 block 1: blocks 0 and 1
            [0, 0, 0, 0, 1, 1, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(bd3_attention_mask(4, 2), expected)


@pytest.mark.parametrize("positional", ["learned", "rotary"])
def test_bd3lm_block1_t1_equals_autoregressive_nll(positional):
    """L' = 1 and t = 1: every x_t block is one MASK that sees the clean tokens before it, so the
    bound is the exact AR NLL of the same network, computed here position by position."""
    net = tiny_net(positional=positional)
    bd3 = model_of(BD3LM, block_length=1)
    x0 = torch.randint(0, V, (3, 10), generator=torch.Generator().manual_seed(2))
    nelbo = bd3.nelbo_sample(net, x0, torch.ones(3), torch.Generator())
    ar = torch.zeros(3)
    for b in range(10):
        inp = torch.cat([x0[:, :b], torch.full((3, 1), MASK)], dim=1)
        causal = torch.ones(b + 1, b + 1).tril().bool()
        logits = net(inp, attn_mask=causal)[:, -1]
        ar += F.cross_entropy(logits, x0[:, b], reduction="none")
    torch.testing.assert_close(nelbo, ar, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("time_conditioning,positional", [(False, "learned"), (True, "learned"), (True, "rotary")])
@pytest.mark.parametrize("length", [12, 10])
def test_bd3lm_sampling_with_and_without_kv_cache_is_identical(time_conditioning, positional, length):
    bd3 = model_of(
        BD3LM,
        block_length=4,
        sample_steps=3,
        time_conditioning=time_conditioning,
        n_layer=2,
        n_head=2,
        d_model=16,
        positional=positional,
    )
    bd3.net = tiny_net(time_conditioning=time_conditioning, positional=positional)
    a, nfe_a = bd3.sample(3, length, torch.Generator().manual_seed(5), 1.0, None, kv_cache=True)
    b, nfe_b = bd3.sample(3, length, torch.Generator().manual_seed(5), 1.0, None, kv_cache=False)
    np.testing.assert_array_equal(a, b)
    assert (a < V).all()
    assert nfe_b <= 3 * math.ceil(length / 4) and nfe_a <= nfe_b + math.ceil(length / 4)


def test_ancestral_sampler_reveals_everything_and_keeps_revealed_tokens():
    seen = []

    def logits_fn(x, t):
        seen.append(x.clone())
        return torch.randn(*x.shape, V)

    x, nfe = ancestral_sample(logits_fn, 4, 20, MASK, 10, torch.Generator().manual_seed(0))
    assert (x != MASK).all() and nfe <= 10
    for before, after in zip(seen, seen[1:] + [x]):
        kept = before != MASK
        assert torch.equal(after[kept], before[kept]), "carry-over: revealed tokens never change"


def test_llada_low_confidence_reveals_most_confident_first_block_by_block():
    length, block = 8, 4
    conf = torch.tensor([1.0, 4.0, 2.0, 3.0, 8.0, 5.0, 7.0, 6.0])  # per-position confidence
    target = torch.arange(length) % V
    order = []

    def logits_fn(x, t):
        logits = torch.full((*x.shape, V), 0.0)
        logits[0, torch.arange(length), target] = conf
        return logits

    # one token per step: record which position each step reveals
    calls = []

    def recording(x_now, t):
        calls.append(x_now.clone())
        return logits_fn(x_now, t)

    out, nfe = llada_sample(recording, 1, length, MASK, length, block, torch.Generator(), temperature=0)
    snapshots = calls[1:] + [out]
    for before, after in zip(calls, snapshots):
        order.append(int(((before == MASK) & (after != MASK))[0].nonzero()))
    assert nfe == length
    assert order == [1, 3, 2, 0, 4, 6, 7, 5]
    assert torch.equal(out[0], target)


def test_llada_random_remasking_differs_from_low_confidence():
    def logits_fn(x, t):
        logits = torch.zeros(*x.shape, V)
        logits[..., 0] = torch.linspace(0, 5, x.shape[1])
        return logits

    with pytest.raises(ValueError):
        llada_sample(logits_fn, 1, 8, MASK, 8, 8, torch.Generator(), remasking="nope")
    out, _ = llada_sample(logits_fn, 2, 8, MASK, 8, 8, torch.Generator().manual_seed(0), remasking="random")
    assert (out != MASK).all()


@pytest.mark.parametrize(
    "model, extra",
    [("mdlm", {"sampler": "llada", "llada_block_length": 8}), ("bd3lm", {"block_length": 4, "sample_steps": 4})],
)
def test_diffusion_models_train_evaluate_and_sample_through_the_cli(tmp_path, model, extra):
    from dagzoo.io import read_json, read_jsonl

    from conftest import dagzoo, prepare_text_runs

    exp = {
        "model": model,
        "n_layer": 2,
        "n_head": 2,
        "d_model": 32,
        "steps": 150,
        "batch_size": 16,
        "lr": 3e-3,
        "warmup_steps": 10,
        "eval_every": 75,
        "log_every": 10,
        "nelbo_samples": 2,
        "sample_steps": 16,
        **extra,
    }
    data, runs, results = prepare_text_runs(tmp_path, {"d": exp})
    run = runs["d"]
    common = ["--spec", run / "spec.json", "--data", data, "--run-dir", run, "--results", results, "--threads", "1"]
    dagzoo("train", *common)
    dagzoo("text-evaluate", *common)
    dagzoo("text-sample", *common, "--samples", "2", "--length", "24")
    m = read_json(run / "metrics.json")
    assert m["exact_likelihood"] is False
    assert m["metrics"]["test/nll_se"] > 0 and math.isfinite(m["metrics"]["test/bpc"])
    curve = [r["val/bpc"] for r in read_jsonl(run / "history.jsonl") if "val/bpc" in r]
    # 150 tiny steps only reach the unigram level (bidirectional models learn to use context
    # later than AR ones); this checks that training improves the bound, not final quality
    assert curve[-1] < 0.88 * curve[0], f"{model} must improve on its initialization: {curve}"
    s = read_json(run / "samples.json")
    assert np.array(s["tokens"]).shape == (2, 24) and s["nfe"] > 0
    assert (np.array(s["tokens"]) < read_json(data / "manifest.json")["vocab_size"]).all()
