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
        s.add_argument("--data", required=True, help="prepared token data directory")
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
