"""`dagzoo <stage> ...`: the one command line every Snakemake rule calls (and people call by hand)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from dagzoo.errors import DagzooError


def _threads(n: int | None) -> None:
    if n:
        import torch
        torch.set_num_threads(n)
        os.environ.setdefault("OMP_NUM_THREADS", str(n))


def cmd_validate_config(a) -> int:
    from dagzoo.config import experiment_specs, load_config, validate_config

    cfg = validate_config(load_config(a.config))
    specs = experiment_specs(cfg)
    print(f"{a.config}: valid ({len(specs)} experiment x seed runs)")
    return 0


def cmd_prepare_text(a) -> int:
    from dagzoo.data.text import prepare_corpus

    m = prepare_corpus(a.corpus, Path(a.out), val=a.val, test=a.test, cache_dir=a.cache)
    print(json.dumps(m["files"], indent=1))
    return 0


def cmd_tokenize(a) -> int:
    from dagzoo.data.tokenize import prepare_tokens

    m = prepare_tokens(Path(a.corpus_dir), Path(a.out), json.loads(a.tokenizer))
    print(f"vocab {m['vocab_size']}: " + ", ".join(f"{k} {v['tokens']} tokens" for k, v in m["splits"].items()))
    return 0


def cmd_prepare_images(a) -> int:
    from dagzoo.data.images import prepare_images

    m = prepare_images(a.source, Path(a.out), resize=a.resize, channels=a.channels, cache=a.cache)
    print(json.dumps(m["splits"], indent=1))
    return 0


def cmd_image_reference(a) -> int:
    _threads(a.threads)
    from dagzoo.image.pipeline import reference

    print(json.dumps(reference(Path(a.data), a.split, Path(a.out), n=a.n, seed=a.seed, batch=a.batch), indent=1))
    return 0


def cmd_image_sample(a) -> int:
    _threads(a.threads)
    from dagzoo.image.pipeline import sample

    print(sample(Path(a.spec), Path(a.data), Path(a.run_dir), Path(a.results), a.name, json.loads(a.sampler),
                 a.n, rule=a.rule, untrained=a.untrained, grid=a.grid))
    return 0


def cmd_image_fid(a) -> int:
    _threads(a.threads)
    from dagzoo.image.pipeline import fid

    print(json.dumps(fid(Path(a.samples), Path(a.reference), subsets=a.kid_subsets, subset_size=a.kid_subset_size,
                         batch=a.batch), indent=1))
    return 0


def cmd_image_evaluate(a) -> int:
    _threads(a.threads)
    from dagzoo.image.pipeline import evaluate

    out = evaluate(Path(a.spec), Path(a.data), Path(a.run_dir), Path(a.results), a.samplers, a.main_sampler,
                   rule=a.rule)
    print(json.dumps(out, indent=1, default=str))
    return 0


def cmd_real_vs_real(a) -> int:
    from dagzoo.image.pipeline import real_vs_real

    print(json.dumps(real_vs_real(Path(a.test), Path(a.train), Path(a.out), a.kid_subsets, a.kid_subset_size),
                     indent=1))
    return 0


def _stage(name: str):
    def run(a) -> int:
        _threads(a.threads)
        import importlib

        from dagzoo.io import read_json

        family = read_json(a.spec).get("family", "text")
        pipeline = importlib.import_module(f"dagzoo.{family}.pipeline")
        extra = {k: getattr(a, k) for k in ("samples", "length", "temperature", "top_k", "evaluator")
                 if hasattr(a, k)}
        out = getattr(pipeline, name)(Path(a.spec), Path(a.data), Path(a.run_dir), Path(a.results), rule=a.rule,
                                      **extra)
        if isinstance(out, dict):
            print(json.dumps({k: v for k, v in out.items()}, indent=1, default=str))
        return 0
    return run


def cmd_models(a) -> int:
    import dataclasses

    from dagzoo import registry

    for family in registry.FAMILIES:
        for key, cls in sorted(registry.models(family).items()):
            doc = (cls.__doc__ or cls.__module__).strip().splitlines()[0]
            print(f"{family}/{key}: {doc}")
            for f in dataclasses.fields(cls.Params):
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
                limits = ", ".join(f"{k} {v}" for k, v in f.metadata.items() if k != "help")
                print(f"    {f.name:<18} = {default!r:<10} {f.metadata.get('help', '')}"
                      + (f" ({limits})" if limits else ""))
    return 0


def cmd_report(a) -> int:
    from dagzoo.report import write_report

    runs = [Path(r) for r in a.runs] if a.runs is not None else None
    paths = write_report(Path(a.results), Path(a.out) if a.out else None, runs)
    for p in paths:
        print(p)
    return 0


def cmd_mlflow_sync(a) -> int:
    from dagzoo.tracking import resolve_uri, sync_results

    uri = resolve_uri(a.results, a.uri)
    ids = sync_results(Path(a.results), uri, prefix=a.prefix)
    print(f"synced {len(ids)} runs to {uri}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dagzoo", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("validate-config", help="check a config file against the schema and the model registry")
    s.add_argument("config")
    s.set_defaults(fn=cmd_validate_config)

    s = sub.add_parser("models", help="list the registered models and their hyper-parameters")
    s.set_defaults(fn=cmd_models)

    s = sub.add_parser("prepare-text", help="fetch/read a corpus and write its train/val/test split + manifest")
    s.add_argument("--corpus", required=True, help="kjv | tinyshakespeare | text8 | wikitext2 | wikitext103 | file:<path>")
    s.add_argument("--out", required=True)
    s.add_argument("--val", type=float, default=0.05)
    s.add_argument("--test", type=float, default=0.05)
    s.add_argument("--cache", default=None, help="download cache (default: <out>/download)")
    s.set_defaults(fn=cmd_prepare_text)

    s = sub.add_parser("tokenize", help="train a tokenizer on the train split and encode every split")
    s.add_argument("--corpus-dir", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--tokenizer", required=True, help='JSON, e.g. {"kind": "char"} or {"kind": "bpe", "vocab_size": 2048}')
    s.set_defaults(fn=cmd_tokenize)

    for name, help_ in (("train", "train one experiment x seed (resumes from its checkpoint)"),
                        ("evaluate", "test-set likelihood of a trained run -> metrics.json"),
                        ("sample", "samples of a trained run -> samples.txt"),
                        ("genppl", "generative perplexity of a run's samples under an AR evaluator run")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--spec", required=True, help="the run's spec.json")
        s.add_argument("--data", required=True, help="prepared data directory (tokens or images)")
        s.add_argument("--run-dir", required=True)
        s.add_argument("--results", default="results", help="results root (for the default MLflow store)")
        s.add_argument("--threads", type=int, default=None)
        s.add_argument("--rule", default=None, help="name of the calling Snakemake rule (an MLflow tag)")
        if name == "sample":
            s.add_argument("--samples", type=int, default=4, help="number of samples")
            s.add_argument("--length", type=int, default=256, help="tokens per sample (<= the eval window)")
            s.add_argument("--temperature", type=float, default=1.0)
            s.add_argument("--top-k", type=int, default=None)
        if name == "genppl":
            s.add_argument("--evaluator", required=True, help="run directory of the autoregressive evaluator")
        s.set_defaults(fn=_stage(name))

    s = sub.add_parser("prepare-images", help="an image source -> uint8 train/test arrays + manifest")
    s.add_argument("--source", required=True, help="digits | fashion_mnist | cifar10 | cifar100 | folder:<path>")
    s.add_argument("--out", required=True)
    s.add_argument("--resize", type=int, default=None, help="square size in pixels (bilinear)")
    s.add_argument("--channels", type=int, default=None, choices=(1, 3), help="convert to 1 or 3 channels")
    s.add_argument("--cache", default=None, help="download cache (default: <out>/../downloads)")
    s.set_defaults(fn=cmd_prepare_images)

    def image_common(s, spec=True):
        if spec:
            s.add_argument("--spec", required=True, help="the run's spec.json")
            s.add_argument("--run-dir", required=True)
            s.add_argument("--results", default="results", help="results root (for the default MLflow store)")
            s.add_argument("--rule", default=None, help="name of the calling Snakemake rule (an MLflow tag)")
        s.add_argument("--threads", type=int, default=None)

    s = sub.add_parser("image-reference", help="Inception features + statistics of an image split (FID reference)")
    s.add_argument("--data", required=True, help="prepared image data directory")
    s.add_argument("--split", default="train", choices=("train", "test"))
    s.add_argument("--n", type=int, default=None, help="a seeded random subset of n images (default: all)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--batch", type=int, default=50)
    s.add_argument("--out", required=True, help="output .npz (a .json summary is written beside it)")
    image_common(s, spec=False)
    s.set_defaults(fn=cmd_image_reference)

    s = sub.add_parser("image-sample", help="sample a trained (or untrained) image model with one named sampler")
    image_common(s)
    s.add_argument("--data", required=True, help="prepared image data directory")
    s.add_argument("--name", required=True, help="sampler name (the output folder samples/<name>)")
    s.add_argument("--sampler", required=True, help='JSON, e.g. {"kind": "edm", "steps": 18}')
    s.add_argument("--n", type=int, required=True, help="number of images")
    s.add_argument("--grid", type=int, default=64, help="images in the PNG grid")
    s.add_argument("--untrained", action="store_true", help="the untrained network of the run's seed (baseline)")
    s.set_defaults(fn=cmd_image_sample)

    s = sub.add_parser("image-fid", help="fid_<N> and kid_<N> of a sample folder against a reference .npz")
    s.add_argument("--samples", required=True, help="folder with images.npy")
    s.add_argument("--reference", required=True)
    s.add_argument("--batch", type=int, default=50)
    s.add_argument("--kid-subsets", type=int, default=100)
    s.add_argument("--kid-subset-size", type=int, default=1000)
    image_common(s, spec=False)
    s.set_defaults(fn=cmd_image_fid)

    s = sub.add_parser("image-evaluate", help="collect a run's sampler FID/KID (+ VAE bits/dim) -> metrics.json")
    image_common(s)
    s.add_argument("--data", required=True, help="prepared image data directory")
    s.add_argument("--samplers", nargs="*", default=[])
    s.add_argument("--main-sampler", required=True)
    s.set_defaults(fn=cmd_image_evaluate)

    s = sub.add_parser("real-vs-real", help="FID/KID of the test split against the train reference")
    s.add_argument("--test", required=True)
    s.add_argument("--train", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--kid-subsets", type=int, default=100)
    s.add_argument("--kid-subset-size", type=int, default=1000)
    s.set_defaults(fn=cmd_real_vs_real)

    s = sub.add_parser("report", help="summary.parquet + report.md with tables and plots")
    s.add_argument("--results", default="results")
    s.add_argument("--out", default=None, help="report directory (default: <results>/report)")
    s.add_argument("--runs", nargs="*", default=None, help="run directories to report (default: all under results)")
    s.set_defaults(fn=cmd_report)

    s = sub.add_parser("mlflow-sync", help="(re)log every run under results/ into MLflow, idempotently")
    s.add_argument("--results", default="results")
    s.add_argument("--uri", default=None, help="tracking URI (default: MLFLOW_TRACKING_URI or sqlite under results/)")
    s.add_argument("--prefix", default=None, help="experiment name prefix (default: $DAGZOO_MLFLOW_PREFIX or dagzoo-)")
    s.set_defaults(fn=cmd_mlflow_sync)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except DagzooError as e:
        print(f"dagzoo: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dagzoo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
