"""Facts about the machine and the code that produce a number: recorded next to DAG runs
(dag.json, provenance) and benchmark tables, so a page of results can say where they came from.

Cheap on purpose: no torch import (its version comes from the installed package's metadata), so
the Snakefile and bench scripts can call it at any time.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import dagzoo


def cpu_model() -> str:
    """The CPU's name: /proc/cpuinfo's "model name" (Linux), else platform.processor(), else "unknown"."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor().strip() or "unknown"


def git_commit(cwd: Path | None = None) -> str:
    """HEAD of the source checkout, suffixed with '-dirty' when tracked files differ from it."""
    src = Path(dagzoo.__file__).resolve().parent
    for where in (cwd, src):
        try:
            head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
            if head.returncode != 0:
                continue
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=where,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            return head.stdout.strip() + ("-dirty" if dirty else "")
        except (OSError, subprocess.SubprocessError):
            continue
    return "unknown"


def torch_version() -> str:
    """The installed torch's version, read from its package metadata (importing torch takes seconds)."""
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_facts(cwd: Path | None = None) -> dict:
    """cpu_model, cpu_count (logical CPUs), python, host, torch_version, dagzoo_version and
    git_commit (of the checkout at `cwd`, default the current directory, falling back to dagzoo's
    source checkout: the same rule as provenance files, so the two agree)."""

    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "host": platform.node(),
        "torch_version": torch_version(),
        "dagzoo_version": dagzoo.__version__,
        "git_commit": git_commit(cwd),
    }
