"""The one place that talks to MLflow.

Results on disk are the source of truth: a run directory holds ``spec.json``,
``provenance-<stage>.json``, ``history.jsonl`` (curves with their own timestamps), ``train.json``,
``metrics.json`` and artifacts. `sync_run_dir` copies all of it into one MLflow run per
(family, experiment, seed, config hash), found again by its ``dagzoo.run_key`` tag. Metric points
keep their on-disk step and timestamp, and MLflow's SQL store skips a point it already holds, so a
sync can be repeated at any time (live during training, at the end of a job, or later with
``dagzoo mlflow-sync``) without duplicating runs or points.

SQLite (the default backend) takes one writer at a time: every client operation on a SQLite URI
runs under an exclusive file lock next to the database, which also serialises the creation of a
fresh database (concurrent creation crashes in MLflow's migrations). Remote servers are tried
with few, short retries; when MLflow cannot be reached the job still succeeds, says so once, and
the data waits on disk for ``dagzoo mlflow-sync``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from pathlib import Path
from typing import Iterator

from dagzoo.errors import TrackingError
from dagzoo.io import read_json, read_jsonl

RUN_KEY_TAG = "dagzoo.run_key"
ARTIFACT_FILES = ("spec.json", "train.json", "metrics.json", "genppl.json", "samples.txt", "curve.png",
                  "fid_nfe.png")


def resolve_uri(results_dir: Path | str = "results", configured: str | None = None) -> str:
    """DAGZOO_TRACKING_URI (set by the Snakefile) > MLFLOW_TRACKING_URI > config > SQLite default."""
    for uri in (os.environ.get("DAGZOO_TRACKING_URI"), os.environ.get("MLFLOW_TRACKING_URI"), configured):
        if uri:
            return uri
    return f"sqlite:///{Path(results_dir).resolve() / 'mlflow.db'}"


def _sqlite_path(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):])
    return None


@contextlib.contextmanager
def _exclusive(uri: str) -> Iterator[None]:
    db = _sqlite_path(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def default_prefix() -> str:
    """MLflow experiment names are <prefix><family>; the Snakefile exports the config's prefix."""
    return os.environ.get("DAGZOO_MLFLOW_PREFIX", "dagzoo-")


def _quick_http_failures() -> None:
    # MLflow's defaults retry an unreachable server for minutes; a job should not wait that long
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def _client(uri: str):
    _quick_http_failures()
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _experiment_id(client, name: str, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    artifact_location = None
    db = _sqlite_path(uri)
    if db is not None:
        artifact_location = (db.parent / "mlartifacts").resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except Exception:  # created concurrently by another job (remote server): use it
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _flatten(prefix: str, obj, out: dict) -> dict:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = "null" if obj is None else str(obj)
    return out


def run_key(spec: dict) -> str:
    return f"{spec['family']}/{spec['experiment']}/{spec['seed']}/{spec['config_hash']}"


def _tags(spec: dict, run_dir: Path) -> dict:
    tags = {
        RUN_KEY_TAG: run_key(spec), "dagzoo.family": spec["family"], "dagzoo.model": spec["model"],
        "dagzoo.experiment": spec["experiment"], "dagzoo.seed": str(spec["seed"]),
        "dagzoo.config_hash": spec["config_hash"], "dagzoo.run_dir": str(run_dir.resolve()),
        "dagzoo.dataset": spec.get("data", {}).get("corpus") or spec.get("data", {}).get("source", ""),
    }
    for prov in sorted(run_dir.glob("provenance-*.json")):
        p = read_json(prov)
        stage = p.get("stage", prov.stem.split("-", 1)[1])
        tags.update({"dagzoo.git_commit": p.get("git_commit", ""), "dagzoo.invocation_id": p.get("invocation_id", ""),
                     f"dagzoo.rule.{stage}": p.get("rule") or stage, "mlflow.source.git.commit": p.get("git_commit", ""),
                     "dagzoo.version": p.get("dagzoo_version", "")})
    return tags


def _metric_points(run_dir: Path):
    from mlflow.entities import Metric

    points = []
    for rec in read_jsonl(run_dir / "history.jsonl"):
        ts, step = int(rec["timestamp_ms"]), int(rec["step"])
        for k, v in rec.items():
            if "/" in k and isinstance(v, (int, float)) and not isinstance(v, bool):
                points.append(Metric(k, float(v), ts, step))
        for k in ("tokens", "flops", "train_time_s"):
            if isinstance(rec.get(k), (int, float)):
                points.append(Metric(f"progress/{k}", float(rec[k]), ts, step))
    for name in ("train.json", "metrics.json", "genppl.json"):
        path = run_dir / name
        if path.exists():
            data = read_json(path)
            ts = int(data.get("timestamp_ms", path.stat().st_mtime * 1000))
            step = int(data.get("step", 0))
            for k, v in data.get("metrics", {}).items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    points.append(Metric(k, float(v), ts, step))
    return points


def sync_run_dir(run_dir: Path, uri: str, status: str | None = None, prefix: str | None = None) -> str:
    """Idempotently mirror one run directory into MLflow; returns the MLflow run id."""
    from mlflow.entities import Param, RunTag

    prefix = default_prefix() if prefix is None else prefix
    run_dir = Path(run_dir)
    spec = read_json(run_dir / "spec.json")
    with _exclusive(uri):
        try:
            client = _client(uri)
            exp_id = _experiment_id(client, f"{prefix}{spec['family']}", uri)
            found = client.search_runs([exp_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key(spec)}'",
                                       max_results=1)
            if found:
                run_id = found[0].info.run_id
            else:
                run = client.create_run(exp_id, run_name=f"{spec['experiment']}/{spec['seed']}",
                                        tags={RUN_KEY_TAG: run_key(spec)})
                run_id = run.info.run_id
            params = _flatten("", {"model": spec["model"], "seed": spec["seed"], "params": spec["params"],
                                   "data": spec.get("data", {}), "eval": spec.get("eval", {})}, {})
            existing = client.get_run(run_id).data.params
            new_params = [Param(k, v[:6000]) for k, v in params.items() if k not in existing]
            tags = [RunTag(k, v) for k, v in _tags(spec, run_dir).items()]
            for i in range(0, max(len(new_params), 1), 100):
                client.log_batch(run_id, params=new_params[i:i + 100], tags=tags if i == 0 else [])
            points = _metric_points(run_dir)
            for i in range(0, len(points), 1000):
                client.log_batch(run_id, metrics=points[i:i + 1000])
            for name in ARTIFACT_FILES:
                if (run_dir / name).exists():
                    client.log_artifact(run_id, str(run_dir / name))
            for grid in sorted(run_dir.glob("samples/*/grid.png")):  # image family: one grid per sampler
                client.log_artifact(run_id, str(grid), artifact_path=f"samples/{grid.parent.name}")
            if status == "RUNNING":
                client.update_run(run_id, status="RUNNING")
            elif status:
                client.set_terminated(run_id, status=status)
            return run_id
        except TrackingError:
            raise
        except Exception as e:  # noqa: BLE001 - every MLflow failure is reported the same way
            raise TrackingError(f"MLflow at {uri} failed: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}") from e


class LiveSync:
    """Best-effort syncing from a running job: at most every `interval` seconds, never fatal.

    After the first failure it stops trying (so an unreachable server costs one timeout, not
    one per log line) and warns once; the data stays on disk for `dagzoo mlflow-sync`.
    """

    def __init__(self, run_dir: Path, uri: str, prefix: str | None = None, interval: float = 30.0):
        self.run_dir, self.uri, self.prefix, self.interval = Path(run_dir), uri, prefix, interval
        self.last = 0.0
        self.failed = False

    def __call__(self, force: bool = False, status: str | None = None) -> bool:
        if self.failed:
            return False
        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return True
        self.last = now
        try:
            sync_run_dir(self.run_dir, self.uri, status=status, prefix=self.prefix)
            return True
        except TrackingError as e:
            self.failed = True
            print(f"[dagzoo] warning: {e}. The job continues; its results are on disk in {self.run_dir}. "
                  f"Run `dagzoo mlflow-sync` once MLflow is reachable.", file=sys.stderr)
            return False


def find_run_dirs(results_dir: Path) -> list[Path]:
    """Every run directory under results/ (a directory holding a spec.json)."""
    return sorted(p.parent for p in Path(results_dir).glob("*/*/*/spec.json"))


def sync_results(results_dir: Path, uri: str, prefix: str | None = None) -> list[str]:
    """`dagzoo mlflow-sync`: mirror every run directory; runs already present are updated, not duplicated."""
    ids = []
    for run_dir in find_run_dirs(results_dir):
        status = "FINISHED" if (run_dir / "train.json").exists() else None
        ids.append(sync_run_dir(run_dir, uri, status=status, prefix=prefix))
    return ids


def live_sync(run_dir: Path, results: Path) -> "LiveSync":
    """The LiveSync of a job's run directory, logging to the DAG's tracking store."""
    return LiveSync(run_dir, resolve_uri(results))
