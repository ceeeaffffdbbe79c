"""SLURM submissions and wall time of one DAG through the project's SLURM profile, with the
profile's job groups and without them (the same profile minus `groups:`), side by side on one
cluster, and whether both runs give the same metrics.

Needs a SLURM cluster whose default partition this machine can submit to (on one machine:
`sudo scripts/slurm_local.sh start`). Each run starts from an empty results tree.

    python bench/bench_slurm_groups.py [--config config/config.yaml] [--one-thread]

`--one-thread` runs every job on one CPU (a cluster node smaller than the config's threads).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from dagzoo.docgen.bench import note, save

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROFILE = ROOT / "workflow" / "profiles" / "slurm"


def ungrouped_profile(where: Path) -> Path:
    """The project's SLURM profile without its job groups."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    profile.pop("groups", None)
    profile.pop("group-components", None)
    where.mkdir(parents=True, exist_ok=True)
    (where / "config.yaml").write_text(yaml.safe_dump(profile))
    return where


def run(workdir: Path, config: Path, profile: Path) -> dict:
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir)]
    cmd += ["--configfile", str(config), "--profile", str(profile)]
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})
    wall = time.perf_counter() - start
    log = r.stdout + r.stderr
    if r.returncode != 0:
        sys.exit(f"the DAG failed through {profile}:\n{log[-3000:]}")
    results = workdir / yaml.safe_load(config.read_text()).get("results", "results")
    metrics = {
        str(p.relative_to(results)): json.loads(p.read_text())["metrics"]
        for p in sorted(results.glob("*/*/*/metrics.json"))
    }
    return {
        "submissions": log.count("has been submitted with SLURM jobid"),
        "group_jobs": log.count("Group job "),
        "wall_s": wall,
        "metrics": metrics,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    ap.add_argument("--one-thread", action="store_true")
    a = ap.parse_args()
    if shutil.which("sbatch") is None or subprocess.run(["sinfo"], capture_output=True).returncode != 0:
        sys.exit("no SLURM cluster answers (sinfo); on one machine: sudo scripts/slurm_local.sh start")
    config = Path(a.config).resolve()
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        tmp = Path(tmp)
        cfg = config
        if a.one_thread:  # the config's threads set to 1 (a --config on the command line would
            # replace the profile's own `config:` entries)
            doc = yaml.safe_load(config.read_text())
            doc.update(threads=1, eval_threads=1)
            cfg = tmp / config.name
            cfg.write_text(yaml.safe_dump(doc))
        grouped = run(tmp / "grouped", cfg, PROFILE)
        alone = run(tmp / "ungrouped", cfg, ungrouped_profile(tmp / "profile"))
    same = grouped["metrics"] == alone["metrics"]
    note(f"config: {config.relative_to(ROOT) if config.is_relative_to(ROOT) else config}")
    note(f"{'':<12}{'submissions':>12}{'group jobs':>12}{'wall s':>10}")
    for name, r in (("grouped", grouped), ("ungrouped", alone)):
        note(f"{name:<12}{r['submissions']:>12}{r['group_jobs']:>12}{r['wall_s']:>10.0f}")
    note(
        f"grouped / ungrouped submissions: {grouped['submissions'] / max(alone['submissions'], 1):.2f}; "
        f"wall: {grouped['wall_s'] / alone['wall_s']:.2f}x; the same metrics in every run: {same}"
    )
    save(__file__)
    if not same:
        sys.exit("the grouped and ungrouped runs gave different metrics")


if __name__ == "__main__":
    main()
