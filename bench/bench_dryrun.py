"""Seconds for Snakemake to load, validate and plan a large grid (`snakemake -n`): a
1000-experiment text grid (transformers differing in learning rate), 4 stages each.

The first dry run of a config validates it (importing every model, so torch); later ones read
the validated config from .snakemake/dagzoo (dagzoo.config_cache); the same grid written as JSON
is timed too (Snakemake parses a YAML config in pure Python). Beside them, in the same run,
the floor: Snakemake alone planning a bare workflow of the same shape (the same rules, jobs,
files, logs, benchmarks and resources; plain string params, no config to validate, no imports of
ours), once as Snakemake runs it by default and once with the garbage-collector settings dagzoo's
Snakefile makes (its last lines). dagzoo's share is the difference to the second.

    python bench/bench_dryrun.py [--experiments 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from dagzoo.docgen.bench import note, save

ROOT = Path(__file__).resolve().parents[1]


def grid(n: int, results: Path) -> dict:
    experiments = {
        f"t{i:04d}": {
            "model": "transformer",
            "n_layer": 1,
            "n_head": 2,
            "d_model": 32,
            "steps": 10,
            "lr": 1e-4 * (1 + i),
        }
        for i in range(n)
    }
    return {
        "results": str(results),
        "seeds": [0],
        "text": {"corpus": "kjv", "experiments": experiments, "eval": {"genppl_evaluator": "t0000"}},
    }


# dagzoo's Snakefile ends with these (see there)
COLLECTOR_SETTINGS = "import gc\ngc.freeze()\ngc.set_threshold(100_000, 10, 10)\n"


def bare_snakefile(n: int, results: Path) -> str:
    """A workflow of the grid's shape that only Snakemake works on: data -> train -> evaluate,
    sample -> genppl per experiment, one report over all runs."""

    def rule(name, inputs, outputs, per_run=True):
        tag = "{exp}-{seed}" if per_run else "x"
        return (
            f"rule {name}:\n    input: {inputs}\n    output: {outputs}\n"
            f"    params: spec='{{exp}}', run_dir=R + '/text/{{exp}}/{{seed}}', results=R\n"
            f"    log: R + '/logs/{name}/{tag}.log'\n    benchmark: R + '/benchmarks/{name}/{tag}.tsv'\n"
            f"    threads: 1\n    resources: mem_mb=8000, runtime=60\n    shell: 'touch {{output}}'\n\n"
        )

    run, data = "R + '/text/{exp}/{seed}'", "R + '/data/tokens/manifest.json'"
    return (
        f"R = {str(results)!r}\nRUNS = [f'{{R}}/text/t{{i:04d}}/0' for i in range({n})]\n\n"
        "rule all:\n    input: R + '/summary.parquet'\n\n"
        "rule text_prepare:\n    output: R + '/data/manifest.json'\n    log: R + '/logs/text_prepare.log'\n"
        "    shell: 'touch {output}'\n\n"
        f"rule text_tokenize:\n    input: R + '/data/manifest.json'\n    output: {data}\n"
        "    log: R + '/logs/text_tokenize.log'\n    shell: 'touch {output}'\n\n"
        + rule("train", f"data={data}", f"{run} + '/train.json'")
        + rule("text_evaluate", f"train={run} + '/train.json', data={data}", f"{run} + '/metrics.json'")
        + rule("text_sample", f"train={run} + '/train.json', data={data}", f"{run} + '/samples.json'")
        + rule(
            "text_genppl",
            f"samples={run} + '/samples.json', evaluator=R + '/text/t0000/0/train.json', data={data}",
            f"{run} + '/genppl.json'",
        )
        + "rule report:\n    input: metrics=[d + '/metrics.json' for d in RUNS], "
        "genppl=[d + '/genppl.json' for d in RUNS]\n    output: R + '/summary.parquet'\n"
        "    params: runs=RUNS\n    log: R + '/logs/report.log'\n    shell: 'touch {output}'\n"
    )


def timed_dry_runs(snakefile: Path, args: list[str], repeats: int) -> tuple[list[float], str]:
    """Seconds of each of `repeats` dry runs, and the job count Snakemake printed."""
    snakemake = Path(sys.executable).parent / "snakemake"
    seconds, jobs = [], "?"
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = subprocess.run(
            [str(snakemake), "-s", str(snakefile), "--cores", "2", "-n", "--quiet", "rules", *args],
            capture_output=True,
            text=True,
        )
        seconds.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise SystemExit(r.stderr[-2000:])
        jobs = next((line.split()[-1] for line in r.stdout.splitlines() if line.startswith("total")), "?")
    return seconds, jobs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiments", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg, bare, tuned = Path(tmp) / "grid.yaml", Path(tmp) / "Snakefile.bare", Path(tmp) / "Snakefile.tuned"
        experiments = grid(a.experiments, Path(tmp) / "results")
        cfg.write_text(yaml.safe_dump(experiments))
        # the same grid as JSON (YAML includes JSON; Snakemake tries JSON first, with a fast parser)
        cfg_json = Path(tmp) / "grid.json"
        cfg_json.write_text(json.dumps(experiments, indent=1))
        bare.write_text(bare_snakefile(a.experiments, Path(tmp) / "bare"))
        tuned.write_text(bare_snakefile(a.experiments, Path(tmp) / "tuned") + "\n" + COLLECTOR_SETTINGS)
        # the first run validates the config, later ones read it from .snakemake/dagzoo
        first, jobs = timed_dry_runs(ROOT / "Snakefile", ["--directory", tmp, "--configfile", str(cfg)], 1)
        ours, jobs = timed_dry_runs(ROOT / "Snakefile", ["--directory", tmp, "--configfile", str(cfg)], a.repeats)
        timed_dry_runs(ROOT / "Snakefile", ["--directory", tmp, "--configfile", str(cfg_json)], 1)  # validates
        as_json, _ = timed_dry_runs(ROOT / "Snakefile", ["--directory", tmp, "--configfile", str(cfg_json)], a.repeats)
        plain, bare_jobs = timed_dry_runs(bare, ["--directory", tmp], a.repeats)
        floor, _ = timed_dry_runs(tuned, ["--directory", tmp], a.repeats)
    note(
        f"snakemake -n of {a.experiments} experiments ({jobs} jobs): first run (validating the config) "
        f"{first[0]:.2f} s; then best {min(ours):.2f} s, median {sorted(ours)[len(ours) // 2]:.2f} s "
        f"over {a.repeats} runs; the same grid as a JSON file: best {min(as_json):.2f} s, median "
        f"{sorted(as_json)[len(as_json) // 2]:.2f} s"
    )
    note(
        f"the same shape, bare ({bare_jobs} jobs, Snakemake alone): "
        f"best {min(plain):.2f} s, median {sorted(plain)[len(plain) // 2]:.2f} s; with dagzoo's collector "
        f"settings: best {min(floor):.2f} s, median {sorted(floor)[len(floor) // 2]:.2f} s"
    )
    note(f"dagzoo / bare: {min(ours) / min(floor):.2f}x (best of each); dagzoo's share {min(ours) - min(floor):.2f} s")
    note(
        f"first run (validating) / bare: {first[0] / min(plain):.2f}x against Snakemake's default, "
        f"{first[0] / min(floor):.2f}x against the tuned collector"
    )
    save(__file__)


if __name__ == "__main__":
    main()
