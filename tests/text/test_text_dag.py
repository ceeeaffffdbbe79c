"""The DAG end to end on a small corpus: outputs, report, no-op rerun, targeted rerun."""

import json

import pandas as pd
import pytest
import yaml

from conftest import ROOT, planned_jobs, small_corpus, snakemake


def write_cfg(tmp_path, lr=0.003, samples=2, nelbo_samples=2, sample_steps=4):
    corpus = small_corpus(tmp_path / "corpus.txt", lines=600)
    cfg = {
        "results": str(tmp_path / "results"),
        "seeds": [0, 1],
        "threads": 1,
        "text": {
            "corpus": f"file:{corpus}",
            "split": {"val": 0.1, "test": 0.1},
            "eval": {
                "window": 32,
                "val_tokens": 512,
                "samples": samples,
                "sample_length": 32,
                "genppl_evaluator": "tiny",
            },
            "experiments": {
                "kn3": {"model": "ngram", "order": 3},
                "tiny": {
                    "model": "transformer",
                    "n_layer": 1,
                    "n_head": 2,
                    "d_model": 32,
                    "steps": 30,
                    "batch_size": 8,
                    "lr": lr,
                    "warmup_steps": 5,
                    "eval_every": 10,
                    "log_every": 5,
                },
                "diff": {
                    "model": "bd3lm",
                    "block_length": 8,
                    "n_layer": 1,
                    "n_head": 2,
                    "d_model": 32,
                    "steps": 20,
                    "batch_size": 8,
                    "eval_every": 10,
                    "nelbo_samples": nelbo_samples,
                    "sample_steps": sample_steps,
                },
            },
        },
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_dag_runs_reports_and_reruns_only_what_changed(tmp_path):
    cfg = write_cfg(tmp_path)
    r = snakemake(tmp_path, cfg)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    results = tmp_path / "results"
    df = pd.read_parquet(results / "summary.parquet")
    assert sorted(zip(df.experiment, df.seed)) == [
        ("diff", 0),
        ("diff", 1),
        ("kn3", 0),
        ("kn3", 1),
        ("tiny", 0),
        ("tiny", 1),
    ]
    for col in ("test/bpc", "test/nll", "test/ppl", "train/tokens", "train/time_s"):
        assert df[col].notna().all(), col
    assert not [c for c in df.columns if c.endswith(("_mean", "_std"))], "aggregates live in their own table"
    assert df.loc[df.experiment == "tiny", "train/flops"].gt(0).all()
    agg = pd.read_parquet(results / "summary_by_experiment.parquet").set_index("experiment")
    assert (
        agg.loc["tiny", "n_seeds"] == 2
        and agg.loc["tiny", "test/bpc_mean"] == df[df.experiment == "tiny"]["test/bpc"].mean()
    )
    # n-grams are deterministic: both seeds give the same BPC, so the std over seeds is 0
    assert agg.loc["kn3", "test/bpc_std"] == 0
    report = (results / "report" / "report.md").read_text()
    assert "| kn3 | ngram | exact |" in report and "tiny" in report and "Findings" in report
    assert "| diff | bd3lm | ≤ (NELBO) |" in report
    assert "Neural models from best to worst test BPC" in report and "the samples scored by tiny;" in report
    assert df["samples/gen_ppl"].gt(1).all() and df["samples/unigram_entropy"].gt(0).all()
    assert df.loc[df.experiment == "diff", "test/bpc_se"].gt(0).all()
    assert (results / "report" / "text_val_bpc.png").stat().st_size > 10_000
    assert (results / "text" / "tiny" / "0" / "samples.txt").read_text().count("----- sample") == 2
    # the report read the config's runs from the list its rule wrote (no command line holds 3,000)
    listed = (results / "report" / "runs.txt").read_text().split()
    assert sorted(listed) == sorted(f"{results}/text/{e}/{s}" for e in ("diff", "kn3", "tiny") for s in (0, 1))

    r = snakemake(tmp_path, cfg, "-n")
    assert r.returncode == 0 and "Nothing to be done" in r.stdout + r.stderr

    kn3_mtime = (results / "text" / "kn3" / "0" / "metrics.json").stat().st_mtime
    cfg = write_cfg(tmp_path, lr=0.001)
    jobs = planned_jobs(snakemake(tmp_path, cfg, "-n").stdout)
    assert ("train", "family=text, exp=tiny, seed=0") in jobs and ("report", "") in jobs
    # only the changed experiment reruns, plus the samples' scoring by the changed evaluator
    others = [(r, w) for r, w in jobs if "exp=tiny" not in w and r not in ("report", "all", "text_genppl")]
    assert others == [], others
    r = snakemake(tmp_path, cfg)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (results / "text" / "kn3" / "0" / "metrics.json").stat().st_mtime == kn3_mtime
    spec = json.loads((results / "text" / "tiny" / "0" / "spec.json").read_text())
    assert spec["params"]["lr"] == 0.001

    # sampling settings rerun sampling (and the report), never training or evaluation
    cfg = write_cfg(tmp_path, lr=0.001, samples=3)
    rules = {r for r, _ in planned_jobs(snakemake(tmp_path, cfg, "-n").stdout)}
    assert {"text_sample", "report"} <= rules and not rules & {"train", "text_evaluate"}

    # a hyper-parameter only evaluation reads reruns that run's evaluation (and the report) only
    jobs = planned_jobs(snakemake(tmp_path, write_cfg(tmp_path, lr=0.001, nelbo_samples=3), "-n").stdout)
    assert sorted(jobs) == [
        ("all", ""),
        ("report", ""),
        ("text_evaluate", "exp=diff, seed=0"),
        ("text_evaluate", "exp=diff, seed=1"),
    ], jobs
    # ... and one only sampling reads: that run's samples and their scoring
    jobs = planned_jobs(snakemake(tmp_path, write_cfg(tmp_path, lr=0.001, sample_steps=2), "-n").stdout)
    assert sorted(jobs) == [
        ("all", ""),
        ("report", ""),
        ("text_genppl", "exp=diff, seed=0"),
        ("text_genppl", "exp=diff, seed=1"),
        ("text_sample", "exp=diff, seed=0"),
        ("text_sample", "exp=diff, seed=1"),
    ], jobs

    # an edited file: corpus is the data prepare's input: everything after it reruns
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus.read_text() + "And the lord said behold.\n")
    rules = {r for r, _ in planned_jobs(snakemake(tmp_path, cfg, "-n").stdout)}
    assert {"text_prepare", "text_tokenize", "train", "text_evaluate"} <= rules, rules


@pytest.mark.slow  # a 3,000-run grid's dry run: 20 s
def test_every_command_of_a_3000_run_grid_fits_one_shell_argument(tmp_path):
    """Snakemake runs a job's shell command as one argument, which Linux caps at 128 KiB: the
    report's list of runs goes in a file (written by the report rule itself), so a grid of 1,000
    experiments x 3 seeds with long names plans commands far below the cap."""
    experiments = {
        f"ngram-order-3-with-a-long-descriptive-name-{i:04d}": {"model": "ngram", "order": 3} for i in range(1000)
    }
    cfg = {
        "results": str(tmp_path / "a-results-root-on-a-cluster-scratch-filesystem"),
        "seeds": [0, 1, 2],
        "text": {"corpus": "kjv", "experiments": experiments},
    }
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(cfg))
    r = snakemake(tmp_path, path, "-n", "-p")
    assert r.returncode == 0, r.stderr[-2000:]
    commands = [
        line.removeprefix("Shell command: ")
        for line in (r.stdout + r.stderr).splitlines()
        if line.startswith(("Shell command: dagzoo", "dagzoo "))
    ]
    assert len(commands) > 3000 and max(map(len, commands)) < 8192
    report = (ROOT / "workflow" / "rules" / "report.smk").read_text()
    assert "--runs-file {output.runs:q}" in report and "{params.runs" not in report.split("run:")[1]
