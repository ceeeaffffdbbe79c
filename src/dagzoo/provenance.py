"""What a result is a function of: config (its hash), seed and code version, plus where it ran."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

import dagzoo
from dagzoo.io import atomic_write_json


def git_commit(cwd: Path | None = None) -> str:
    """HEAD of the source checkout, suffixed with '-dirty' when tracked files differ from it."""
    src = Path(dagzoo.__file__).resolve().parent
    for where in (cwd, src):
        try:
            head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                                  timeout=10)
            if head.returncode != 0:
                continue
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                                   capture_output=True, text=True, timeout=10).stdout.strip()
            return head.stdout.strip() + ("-dirty" if dirty else "")
        except (OSError, subprocess.SubprocessError):
            continue
    return "unknown"


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
    }
    atomic_write_json(Path(run_dir) / f"provenance-{stage}.json", prov)
    return prov
