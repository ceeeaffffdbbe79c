"""What a result is a function of: config (its hash), seed and code version, plus where it ran."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import dagzoo
from dagzoo.io import atomic_write_json
from dagzoo.machine import cpu_model, git_commit, machine_facts


def write_dag_record(results: Path, started: float, cores: int | None, configfiles: list, jobs: int | None) -> dict:
    """<results>/dag.json: when the last DAG invocation that ran jobs started and finished, on
    what machine and code; a results page's header (dagzoo docs) reads it. Written by the
    Snakefile's onsuccess hook, which Snakemake calls only after jobs ran and all succeeded."""
    finished = time.time()
    record = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(finished)),
        "wall_s": round(finished - started, 1),
        "cores": cores,
        "jobs": jobs,
        # as the user named them: relative to the folder snakemake ran in, where they are inside it
        "configfiles": [
            os.path.relpath(f) if Path(f).resolve().is_relative_to(Path.cwd().resolve()) else str(f)
            for f in configfiles
        ],
        **machine_facts(Path.cwd()),
    }
    atomic_write_json(Path(results) / "dag.json", record)
    return record


def write_provenance(run_dir: Path, stage: str, rule: str | None = None) -> dict:
    """provenance-<stage>.json; `cuda` is null for a stage that did not use torch."""
    import importlib.metadata
    import sys

    torch = sys.modules.get("torch")  # imported by the stage's model, if it uses torch
    prov = {
        "stage": stage,
        "rule": rule or os.environ.get("DAGZOO_RULE") or stage,
        "git_commit": git_commit(Path.cwd()),
        "dagzoo_version": dagzoo.__version__,
        "torch_version": torch.__version__ if torch else importlib.metadata.version("torch"),
        "python": platform.python_version(),
        "host": platform.node(),
        "invocation_id": os.environ.get("DAGZOO_INVOCATION_ID", "manual"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cuda": torch.cuda.is_available() if torch else None,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads() if torch else int(os.environ.get("OMP_NUM_THREADS") or 1),
    }
    atomic_write_json(Path(run_dir) / f"provenance-{stage}.json", prov)
    return prov
