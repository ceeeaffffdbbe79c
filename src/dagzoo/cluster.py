"""What each job asks a cluster scheduler for, in one place.

Every rule belongs to a class: `data` (prepare, tokenize), `train` (the one training rule),
`features` (network passes over whole splits: Inception statistics, FID features, frozen
encoders), `sample`, `evaluate`, and `report` (local rules, never submitted). The rules files
take their resources from `job_resources(<class>)`; a training job's from `train_resources`,
which gives a torch model the config's `cluster.gpus_per_training` GPUs on
`cluster.gpu_partition` and everything else the CPU partition. Threads (``--cpus-per-task``)
are each rule's own (the config's `threads` and `eval_threads`).

On a cluster, the profile groups the `sample` and `evaluate` jobs, and apart from them the
`features` jobs, into one submission per `group-components` of them (see
workflow/profiles/slurm/config.yaml), so one scheduler job runs many one-minute jobs.
"""

from __future__ import annotations

#: runtime (minutes) and memory (MB) of one job of each class on a CPU partition
CLASSES: dict[str, dict[str, int]] = {
    "data": {"runtime": 60, "mem_mb": 8000},
    "features": {"runtime": 240, "mem_mb": 16000},
    "sample": {"runtime": 30, "mem_mb": 4000},
    "evaluate": {"runtime": 30, "mem_mb": 4000},
}


def coerce_profile_values(cluster: object) -> object:
    """A profile's `config:` values reach the workflow as strings ("1", "null"): read back the
    numbers and nulls of the `cluster` section (its partitions are names, kept as text)."""
    if not isinstance(cluster, dict):
        return cluster
    out = {}
    for key, value in cluster.items():
        if isinstance(value, str) and value in ("null", "~", ""):
            value = None
        elif isinstance(value, str) and value.isdigit() and not key.endswith("_partition"):
            value = int(value)
        out[key] = value
    return out


def job_resources(kind: str, cluster: dict) -> dict:
    """The resources of one job of class `kind` (not `train`): its runtime and memory, and the
    CPU partition when the config names one."""
    res = dict(CLASSES[kind])
    if cluster.get("cpu_partition"):
        res["slurm_partition"] = cluster["cpu_partition"]
    return res


def train_resources(cluster: dict, uses_torch: bool) -> dict:
    """A training job's resources: GPUs for a torch model when the config asks for them, on the
    GPU partition (else the CPU one)."""
    gpus = cluster["gpus_per_training"] if uses_torch else 0
    res = {"runtime": cluster["train_runtime"], "mem_mb": cluster["train_mem_mb"], "gpu": gpus}
    partition = (cluster.get("gpu_partition") or cluster.get("cpu_partition")) if gpus else cluster.get("cpu_partition")
    if partition:
        res["slurm_partition"] = partition
    return res
