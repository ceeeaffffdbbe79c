"""The vectorized Kneser-Ney model against an independent brute-force reference and by hand."""

import json
import math

import numpy as np
import pytest

from dagzoo.text.kneser_ney import KneserNeyLM

from kn_reference import reference_distribution, reference_logprobs


def windows_of(stream, window):
    return [stream[i : i + window] for i in range(0, len(stream), window)]


def history_of(windows):
    return np.concatenate([np.arange(len(w)) for w in windows])


@pytest.mark.parametrize("order", [1, 2, 3, 4, 6])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_bruteforce_reference(order, seed):
    rng = np.random.default_rng(seed)
    V = 7
    # a Markov source so that higher orders see repeated contexts with varied counts
    trans = rng.dirichlet(np.full(V - 1, 0.3), size=V - 1)
    train = [0]
    for _ in range(1500):
        train.append(int(rng.choice(V - 1, p=trans[train[-1]])))
    test = [int(t) for t in rng.integers(0, V, size=300)]  # includes token V-1, never seen
    lm = KneserNeyLM.fit(np.array(train), order, V)
    windows = windows_of(test, 37)
    ours = lm.log_probs(np.array(test), history_of(windows))
    ref = np.concatenate(reference_logprobs(train, V, order, windows))
    np.testing.assert_allclose(ours, ref, rtol=1e-11, atol=0)
    ppl_ours, ppl_ref = math.exp(-ours.mean()), math.exp(-ref.mean())
    assert abs(ppl_ours - ppl_ref) <= 1e-9 * ppl_ref


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_every_context_distribution_sums_to_one(order):
    rng = np.random.default_rng(3)
    V = 6
    train = rng.integers(0, V - 1, size=800)
    lm = KneserNeyLM.fit(train, order, V)
    for m in range(order):
        seen = np.lib.stride_tricks.sliding_window_view(train, m)[:50] if m else np.zeros((1, 0), int)
        unseen = rng.integers(0, V, size=(20, m))
        for ctx in (seen, unseen):
            p = lm.distributions(ctx)
            assert p.shape == (len(ctx), V)
            assert np.all(p > 0)
            np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)
        # the distribution agrees with the reference, entry by entry
        ref = reference_distribution(train.tolist(), V, order, seen[0].tolist())
        np.testing.assert_allclose(lm.distributions(seen[:1])[0], ref, rtol=1e-11)


def test_bigram_by_hand():
    # train "0 1 0 1 0 2", V = 3. Raw unigram counts 3,2,1 -> n1=n2=n3=1, n4=0: Y = 1/3,
    # D1 = 1/3, D2 = 1, D3 = 3; A = 6, gamma = (1/3 + 1 + 3)/6 = 13/18, p(0) = 0 + 13/18 * 1/3.
    # Bigrams (0,1):2 (1,0):2 (0,2):1 -> n3 = 0 -> fallback D = (.5, 1, 1.5). Continuation
    # unigrams are all 1 -> fallback: p1(w) = .5/3 + (1.5/3)/3 = 1/3. P(1|0) = (2-1)/3 + gamma(0)/3
    # with gamma(0) = (.5 + 1)/3 = .5 -> P(1|0) = 1/2.
    lm = KneserNeyLM.fit(np.array([0, 1, 0, 1, 0, 2]), 2, 3)
    lp = lm.log_probs(np.array([0, 1]), np.array([0, 1]))
    assert lp[0] == pytest.approx(math.log(13 / 54), rel=1e-12)
    assert lp[1] == pytest.approx(math.log(0.5), rel=1e-12)
    np.testing.assert_allclose(lm.distributions(np.array([[0]]))[0], [1 / 6, 1 / 2, 1 / 3], rtol=1e-12)


def test_save_load_roundtrip(tmp_path):
    rng = np.random.default_rng(5)
    train = rng.integers(0, 9, size=2000)
    lm = KneserNeyLM.fit(train, 4, 10)
    lm.save(tmp_path / "m.npz")
    lm2 = KneserNeyLM.load(tmp_path / "m.npz")
    test = rng.integers(0, 10, size=200)
    h = np.minimum(np.arange(200), 50)
    np.testing.assert_array_equal(lm.log_probs(test, h), lm2.log_probs(test, h))


def read_arpa(path):
    probs, backoffs, section = {}, {}, None
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.endswith("-grams:"):
            section = int(line[1 : line.index("-")])
            continue
        if section is None or not line or line.startswith("\\"):
            continue
        parts = line.split("\t")
        words = tuple(parts[1].split(" "))
        probs[words] = float(parts[0])
        if len(parts) > 2:
            backoffs[words] = float(parts[2])
    return probs, backoffs


def arpa_log10prob(probs, backoffs, context, word):
    """Standard ARPA backoff recursion."""
    gram = tuple(context) + (word,)
    if gram in probs:
        return probs[gram]
    return backoffs.get(tuple(context), 0.0) + arpa_log10prob(probs, backoffs, context[1:], word)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_arpa_export_reproduces_full_context_probabilities(tmp_path, order):
    rng = np.random.default_rng(order)
    V = 5
    train = rng.integers(0, V - 1, size=1200)
    lm = KneserNeyLM.fit(train, order, V)
    names = ["a", "b", " ", "\n", "e"]
    lm.write_arpa(tmp_path / "m.arpa", names)
    probs, backoffs = read_arpa(tmp_path / "m.arpa")
    escaped = ["a", "b", "<U+0020>", "<U+000A>", "e"]
    test = rng.integers(0, V, size=120)
    ours = lm.log_probs(
        test,
        np.full(test.size, order - 1) * (np.arange(test.size) >= order - 1)
        + np.arange(test.size) * (np.arange(test.size) < order - 1),
    )
    for i in range(order - 1, test.size):
        ctx = [escaped[t] for t in test[i - order + 1 : i]]
        ref = arpa_log10prob(probs, backoffs, ctx, escaped[test[i]]) * math.log(10)
        assert ours[i] == pytest.approx(ref, rel=1e-8)


def test_large_vocabulary_keys_do_not_overflow():
    """BPE-sized vocabularies: n-gram keys are (prefix id * V + token), which must stay exact."""
    rng = np.random.default_rng(9)
    V = 50_000
    train = rng.integers(0, V, size=20_000)
    train[1::7] = 3  # some repeated structure
    lm = KneserNeyLM.fit(train, 6, V)
    lp = lm.log_probs(train[:500], np.minimum(np.arange(500), 5))
    assert np.all(np.isfinite(lp))
    p = lm.distributions(train[None, 10:15])
    np.testing.assert_allclose(p.sum(), 1.0, atol=1e-12)


TORCH_PROBE = (
    "import sys\nfrom dagzoo.cli import main\nrc = main(sys.argv[1:])\n"
    "print('torch imported' if 'torch' in sys.modules else 'no torch')\nsys.exit(rc)\n"
)


def test_ngram_jobs_train_evaluate_and_score_without_torch(tmp_path):
    """An n-gram's train, evaluate and gen-PPL jobs (Model.uses_torch False) never import torch
    (about 1.1 s of each job's start-up); its sampling does (torch's generator): the probe sees it."""
    import subprocess

    from conftest import BIN, prepare_text_runs

    data, runs, results = prepare_text_runs(tmp_path, {"kn3": {"model": "ngram", "order": 3}})
    run = runs["kn3"]
    common = ["--spec", run / "spec.json", "--data", data, "--run-dir", run, "--results", results, "--threads", "1"]

    def torch_imported(command, *extra):
        r = subprocess.run(
            [str(BIN / "python"), "-c", TORCH_PROBE, command, *map(str, common), *map(str, extra)],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
        return r.stdout.splitlines()[-1] == "torch imported"

    assert not torch_imported("train")
    assert not torch_imported("text-evaluate")
    assert torch_imported("text-sample", "--length", 16)
    assert not torch_imported("text-genppl", "--evaluator", run)
    prov = json.loads((run / "provenance-train.json").read_text())
    assert prov["cuda"] is None and prov["torch_version"].split("+")[0].count(".") == 2  # recorded, not imported
    assert json.loads((run / "genppl.json").read_text())["metrics"]["samples/gen_ppl"] > 1
