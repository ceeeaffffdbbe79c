"""The text family's stages after the shared train stage (dagzoo.stages): evaluate (test
likelihood, or its bound, over the full test split); sample; genppl (samples scored by an
autoregressive evaluator).

Each stage reads its spec (the JSON the DAG passes, see dagzoo.config.stage_spec) and the
prepared token data and writes its outputs atomically into the run directory (the file Snakemake
waits for is written last); evaluation mirrors the run into MLflow, sampling and gen PPL leave
that to the report (see dagzoo.tracking).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from dagzoo.errors import ConfigError, DataError
from dagzoo.eval.perplexity import likelihood_metrics
from dagzoo.io import atomic_write_json, atomic_write_text, read_json_object, read_jsonl
from dagzoo.plotting import write_run_curve
from dagzoo.provenance import write_provenance
from dagzoo.stages import load_run_spec, load_trained, model_device, read_run_spec, seed_torch, write_metrics
from dagzoo.text.data import TokenData


def evaluate(spec_path: str | Path, data_dir: Path, run_dir: Path, results: Path, rule: str | None = None) -> dict:
    run_dir = Path(run_dir)
    spec, _, cls, data, model = load_trained(spec_path, data_dir, run_dir, "evaluate", rule, "text")
    window = spec["eval"]["window"]
    t0 = time.perf_counter()
    test = data.tokens("test")
    seed_torch(cls, spec["seed"])  # bound estimates draw noise levels and masks
    nll, var = model.window_nll(test, window)
    metrics = likelihood_metrics(nll, var, len(test), data.chars("test"), "test")
    metrics["test/eval_time_s"] = time.perf_counter() - t0
    metrics.update(_estimator_variance(model, spec, data, window))
    _plot_curve(run_dir, spec)
    return write_metrics(run_dir, spec, metrics, results, exact_likelihood=cls.exact_likelihood, window=window)


def _estimator_variance(model, spec: dict, data, window: int) -> dict:
    """A clipped-schedule model's training-loss estimator on fixed validation batches at its own
    training window: mean and variance over the batches (val/loss_estimate, val/loss_var), and the
    variance the full range U[eps, 1] would have on the same batches (val/loss_var_full)."""
    if model.exact_likelihood:  # and a counted model's job never imports torch
        return {}
    from dagzoo.text.clip import ClippedSchedule, loss_estimates, validation_batches

    if not isinstance(model, ClippedSchedule):
        return {}
    p, seed = model.params, int(spec["seed"])
    batches = validation_batches(data.tokens("val"), window, p.batch_size, p.loss_var_batches, seed)
    own = loss_estimates(model, model.net, batches, *model.clip_window, seed)
    full = loss_estimates(model, model.net, batches, 0.0, 1.0, seed)
    return {
        "val/loss_estimate": float(own.mean()),
        "val/loss_var": float(own.var(ddof=1)),
        "val/loss_var_full": float(full.var(ddof=1)),
    }


def sample(
    spec_path: str | Path,
    data_dir: Path,
    run_dir: Path,
    results: Path,
    rule: str | None = None,
    samples: int = 4,
    length: int = 256,
    temperature: float = 1.0,
    top_k: int | None = None,
) -> Path:
    run_dir = Path(run_dir)
    spec, _, _, data, model = load_trained(spec_path, data_dir, run_dir, "sample", rule, "text")
    if length > spec["eval"]["window"]:
        raise ConfigError(f"text.eval.sample_length: must be <= the window ({spec['eval']['window']}), got {length}")
    import torch

    ev = {"samples": samples, "sample_length": length, "temperature": temperature, "top_k": top_k}
    generator = torch.Generator().manual_seed(spec["seed"])
    t0 = time.perf_counter()
    ids, nfe = (
        model.sample(ev["samples"], ev["sample_length"], generator, ev["temperature"], ev["top_k"])
        if ev["samples"]
        else (np.zeros((0, ev["sample_length"]), dtype=np.int64), 0)
    )
    elapsed = time.perf_counter() - t0
    tok = data.tokenizer()
    texts = [tok.decode(row) for row in ids]
    header = (
        f"# {spec['experiment']} (seed {spec['seed']}): {len(texts)} samples of {ev['sample_length']} tokens, "
        f"temperature {ev['temperature']}, top_k {ev['top_k']}, {nfe} NFE, {elapsed:.2f} s\n"
    )
    body = "".join(f"\n----- sample {i} -----\n{t}\n" for i, t in enumerate(texts))
    atomic_write_json(run_dir / "samples.json", {"tokens": ids, "seconds": elapsed, "nfe": nfe, **ev})
    atomic_write_text(run_dir / "samples.txt", header + body)
    # no MLflow here: the report mirrors every run it reports (a short job is spared MLflow's start-up)
    return run_dir / "samples.txt"


def unigram_entropy(tokens: np.ndarray) -> float:
    """Mean over samples of the entropy (nats) of each sample's token histogram: a low value next
    to a good generative perplexity exposes repetitive samples."""
    out = []
    for row in np.atleast_2d(tokens):
        counts = np.bincount(row)
        p = counts[counts > 0] / row.size
        out.append(float(-(p * np.log(p)).sum()))
    return float(np.mean(out)) if out else float("nan")


def genppl(
    spec_path: str | Path,
    data_dir: Path,
    run_dir: Path,
    results: Path,
    rule: str | None = None,
    evaluator: Path | None = None,
) -> dict:
    """Generative perplexity of a run's samples under a fixed autoregressive evaluator run, with the
    samples' unigram entropy next to it."""
    run_dir = Path(run_dir)
    read_run_spec(spec_path, "text")  # the scored run's model is not needed (nor imported)
    ev_spec, _, ev_cls, ev_params = load_run_spec(Path(evaluator) / "spec.json", "text")
    if not ev_cls.exact_likelihood:
        raise ConfigError(
            f"text.eval.genppl_evaluator: {ev_spec['experiment']!r} is not an exact-likelihood (autoregressive) model"
        )
    data = TokenData(data_dir)
    write_provenance(run_dir, "genppl", rule)
    samples = read_json_object(run_dir / "samples.json", {"tokens": list})
    try:
        tokens = np.asarray(samples["tokens"], dtype=np.int64)
    except (ValueError, TypeError, OverflowError):
        tokens = None
    if tokens is not None and tokens.size == 0:
        tokens = tokens.reshape(0, 0)  # no samples drawn
    if tokens is None or tokens.ndim != 2 or (tokens.size and not 0 <= tokens.min() <= tokens.max() < data.vocab_size):
        raise DataError(
            f"{run_dir / 'samples.json'}: tokens is not a list of equal-length lists of token ids "
            f"(0 to {data.vocab_size - 1}); rerun the run's sampling"
        )
    metrics = {
        "samples/unigram_entropy": unigram_entropy(tokens),
        "samples/nfe": samples.get("nfe", 0),
        "samples/seconds": samples.get("seconds", 0.0),
    }
    if tokens.size:
        model = ev_cls.load(ev_params, data, Path(evaluator), model_device(ev_cls))
        nll, _ = model.window_nll(tokens.reshape(-1), tokens.shape[1])
        metrics["samples/gen_ppl"] = float(np.exp(nll.sum() / tokens.size))
    atomic_write_json(
        run_dir / "genppl.json",
        {
            "metrics": metrics,
            "evaluator": ev_spec["experiment"],
            "evaluator_config_hash": ev_spec["config_hash"],
            "timestamp_ms": int(time.time() * 1000),
            "step": 0,
        },
    )
    # no MLflow here: the report mirrors every run it reports
    return metrics


def _plot_curve(run_dir: Path, spec: dict) -> None:
    rows = read_jsonl(run_dir / "history.jsonl")
    loss = [(r["tokens"], r["train/loss"] / np.log(2)) for r in rows if "train/loss" in r]
    val = [(r["tokens"], r["val/bpc"]) for r in rows if "val/bpc" in r]
    write_run_curve(
        run_dir,
        spec,
        [("train loss (bits/token)", loss, {"alpha": 0.6}), ("val BPC", val, {"marker": "o"})],
        "training tokens",
        "bits",
    )
