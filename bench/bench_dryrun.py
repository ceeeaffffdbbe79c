"""Seconds for Snakemake to load, validate and plan a large grid (`snakemake -n`): a
1000-experiment text grid (transformers differing in learning rate), 4 stages each.

    python bench/bench_dryrun.py [--experiments 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def grid(n: int, results: Path) -> dict:
    experiments = {f"t{i:04d}": {"model": "transformer", "n_layer": 1, "n_head": 2, "d_model": 32, "steps": 10,
                                 "lr": 1e-4 * (1 + i)} for i in range(n)}
    return {"results": str(results), "seeds": [0], "text": {"corpus": "kjv", "experiments": experiments,
                                                            "eval": {"genppl_evaluator": "t0000"}}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiments", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    snakemake = Path(sys.executable).parent / "snakemake"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "grid.yaml"
        cfg.write_text(yaml.safe_dump(grid(a.experiments, Path(tmp) / "results")))
        seconds, jobs = [], None
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            r = subprocess.run([str(snakemake), "-s", str(ROOT / "Snakefile"), "--directory", tmp, "--cores", "2",
                                "--configfile", str(cfg), "-n", "--quiet", "rules"], capture_output=True, text=True)
            seconds.append(time.perf_counter() - t0)
            if r.returncode != 0:
                raise SystemExit(r.stderr[-2000:])
            jobs = next((line.split()[-1] for line in r.stdout.splitlines() if line.startswith("total")), "?")
    print(f"snakemake -n of {a.experiments} experiments ({jobs} jobs): "
          f"best {min(seconds):.2f} s, median {sorted(seconds)[len(seconds) // 2]:.2f} s over {a.repeats} runs")


if __name__ == "__main__":
    main()
