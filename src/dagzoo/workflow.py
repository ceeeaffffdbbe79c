"""Helpers the Snakemake rules files build their rules with (workflow/rules/common.smk imports
them): plain functions of strings and paths; nothing here imports Snakemake."""

from __future__ import annotations

import hashlib
import inspect
import os
import shlex


def job_function(function):
    """`function` (a param, input or threads function of a rule) with its signature computed
    once: Snakemake inspects the signature of such a function on every call, several times per
    job (about 5 us each: 0.2 s of a 4,000-job dry run); inspect.signature returns a precomputed
    `__signature__` as it is (PEP 362)."""
    function.__signature__ = inspect.signature(function)
    return function


def literal(value):
    """A param passed as is. Snakemake expands {name} in a plain string param as a wildcard, and a
    user's path (or JSON holding one) may contain braces."""
    return job_function(lambda wildcards: value)


def input_dir(name, levels=1):
    """A param: the directory `levels` up from the input file `name` (derived from the job's
    files, not hard-coded, so it also holds without a shared filesystem)."""

    def directory(w, input):
        path = input[name]
        for _ in range(levels):
            path = os.path.dirname(path)
        return path

    return job_function(directory)


def output_dir(levels=1):
    """A param: the directory `levels` up from the job's first output file."""

    def directory(w, output):
        path = output[0]
        for _ in range(levels):
            path = os.path.dirname(path)
        return path

    return job_function(directory)


def source_state(source):
    """Params of a family's prepare rule for its data source: for a `folder:<path>` source,
    {"source_state": a digest of every file below it (path, size, modification time)}, so that a
    file added, removed or edited there prepares the data again, and reruns all that read it
    (Snakemake reruns a job whose params changed); {} for a built-in source, which the prepare
    stage itself checks. Walked at each parse (a stat per file) as the stages read a folder:
    through symbolic links, without hidden names or `__` ones (`.git`, `.DS_Store`, `__MACOSX`),
    whose changes would otherwise rerun the family for nothing."""
    if not source.startswith("folder:"):
        return {}
    root = os.path.expanduser(source[len("folder:") :])
    digest, seen = hashlib.sha256(), set()
    for directory, subdirectories, files in os.walk(root, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen:  # a link back up the tree: walked once
            subdirectories[:] = []
            continue
        seen.add(real)
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith((".", "__")))
        for name in sorted(f for f in files if not f.startswith((".", "__"))):
            path = os.path.join(directory, name)
            try:
                st = os.stat(path)
            except OSError:  # gone since the walk listed it: the prepare stage reports what it finds
                continue
            digest.update(f"{os.path.relpath(path, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"source_state": digest.hexdigest()[:16]}


def stage_shell(command, extra="", rule_name=None):
    """`dagzoo <command>` on one run: its spec, the family's data, the run directory, the
    results root, the job's threads and the name of its Snakemake rule (an MLflow tag; by
    default the command's with underscores, text-evaluate -> text_evaluate); every value
    quoted. The rule's params are spec, data, run_dir and results (common.smk's spec_param
    and results_root, input_dir / output_dir here)."""
    name = shlex.quote(rule_name or command.replace("-", "_"))
    return (
        f"dagzoo {command} --spec {{params.spec:q}} --data {{params.data:q}} --run-dir {{params.run_dir:q}} "
        f"--results {{params.results:q}} --threads {{threads}} --rule {name} {extra} > {{log:q}} 2>&1"
    )
