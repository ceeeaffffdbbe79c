"""The one place that talks to MLflow.

Results on disk are the source of truth: a run directory holds ``spec.json``,
``provenance-<stage>.json``, ``history.jsonl`` (curves with their own timestamps), JSON files with
a ``"metrics"`` object (``train.json``, ``metrics.json``, whatever a family's stages write) and
artifacts. `sync_run_dir` copies all of it into one MLflow run per (family, experiment, seed,
config hash), found again by its ``dagzoo.run_key`` tag. Metric points keep their on-disk step and
timestamp; a curve point whose step the run already holds is not logged again (see
`_points_to_log`), so a sync can be repeated at any time (live during training, at the end of
a job, after a kill and resume, or later with ``dagzoo mlflow-sync``) without duplicating runs or
points.

This module knows the layout of a run directory, never a family: which files exist is decided by
the families, and everything here goes by file suffixes and by the spec's optional ``"dataset"``.

SQLite (the default backend) takes one writer at a time: every client operation on a SQLite URI
runs under an exclusive file lock next to the database, which also serialises the creation of a
fresh database (concurrent creation crashes in MLflow's migrations). Remote servers are tried
with few, short retries; when MLflow cannot be reached the job still succeeds, says so once, and
the data waits on disk for ``dagzoo mlflow-sync``.

A tracking URI may carry credentials (``http://user:password@host``); every URI this module
prints or puts into an error message goes through `redact_uri` first, and MLflow's own exception
text is scrubbed of the URI and its credentials.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit

from dagzoo import timing
from dagzoo.errors import DagzooError, DataError, TrackingError
from dagzoo.io import RUN_SPEC_KEYS, read_json, read_json_object, read_jsonl, stable_hash

RUN_KEY_TAG = "dagzoo.run_key"
#: a parent run (one per experiment: its seeds are its children) is found again by this tag
PARENT_KEY_TAG = "dagzoo.parent_key"
#: MLflow's own tag that nests a run under its parent in the UI
PARENT_RUN_TAG = "mlflow.parentRunId"
#: a claim's verdict on the parent runs of the experiments it names: dagzoo.claim.<name>
CLAIM_TAG = "dagzoo.claim."
# MLflow 3.x's UI picks an experiment's layout from this tag; without it a dagzoo experiment is
# shown with the GenAI/tracing layout instead of the model-training one (runs, metrics, charts).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# Top-level files of a run directory that are logged as artifacts, by suffix (the families decide
# which files exist). history.jsonl is logged as metrics, not as a file; names starting with "."
# are hidden or temporary (dagzoo.io writes ".<name>.<random>.tmp" before the atomic rename).
ARTIFACT_SUFFIXES = (".json", ".png", ".txt", ".md")
NOT_ARTIFACTS = frozenset({"history.jsonl"})
# Directories directly under results/ that are not families: data, job logs and timings, the
# report, and MLflow's own stores (a SQLite store's artifacts live in results/mlartifacts/, where
# copies of spec.json would otherwise look like run directories).
NOT_FAMILIES = frozenset({"mlartifacts", "mlruns", "data", "logs", "benchmarks", "report"})
# With fewer characters a password alone would match all over an error message; such a password
# is still removed as part of the URI and of "user:password".
_MIN_SECRET_LEN = 4


def resolve_uri(results_dir: Path | str = "results", explicit: str | None = None) -> str:
    """The tracking URI to use; the first of these that is set wins:

    1. `explicit`: a choice made for this very call, i.e. ``dagzoo mlflow-sync --uri`` or the
       config's ``mlflow.tracking_uri`` (which the Snakefile passes). A deliberate choice must not
       be overridden by a variable that happens to be left in the shell's environment.
    2. ``DAGZOO_TRACKING_URI``: the DAG's choice, exported by the Snakefile so that every job (also
       one that SLURM starts on another node) logs to the same store as the DAG.
    3. ``MLFLOW_TRACKING_URI``: MLflow's own convention.
    4. A SQLite database in the results directory: ``sqlite:///<results_dir>/mlflow.db``.
    """
    for uri in (explicit, os.environ.get("DAGZOO_TRACKING_URI"), os.environ.get("MLFLOW_TRACKING_URI")):
        if uri:
            return uri
    return f"sqlite:///{Path(results_dir).resolve() / 'mlflow.db'}"


def _userinfo(uri: str) -> str:
    """The ``user:password`` part of a network URI ("" when there is none).

    SQLite and file URIs name a local path, never credentials: an "@" in them is part of a file
    name and stays.
    """
    try:
        pieces = urlsplit(uri)
    except ValueError:  # not a URI at all (e.g. an unbalanced "[" in the host): nothing to find
        return ""
    if pieces.scheme.lower() in ("sqlite", "file") or "@" not in pieces.netloc:
        return ""
    return pieces.netloc.rpartition("@")[0]


def redact_uri(uri: str) -> str:
    """`uri` with its credentials replaced by ``***``: ``http://u:pw@host:5000/p`` -> ``http://***@host:5000/p``.

    Job logs and error messages are read by people who should not learn the password of the
    tracking server; the host stays, so the message still says which server failed.
    """
    info = _userinfo(uri)
    if not info:
        return uri
    start = uri.index("//") + 2  # the netloc, and so the userinfo, starts right after "scheme://"
    return f"{uri[:start]}***@{uri[start + len(info) + 1 :]}"


def _redact_text(message: str, uri: str) -> str:
    """`message` (e.g. an MLflow exception's) without the credentials of `uri`.

    MLflow echoes the URI, or a request URL built from it, in its errors; the raw URI is replaced
    by its redacted form, then any remaining copy of the userinfo (also percent-decoded) and of a
    password long enough not to match by chance.
    """
    info = _userinfo(uri)
    if not info:
        return message
    message = message.replace(uri, redact_uri(uri))
    secrets = {info, unquote(info)}
    password = info.partition(":")[2]
    if len(password) >= _MIN_SECRET_LEN:
        secrets |= {password, unquote(password)}
    for secret in sorted(secrets, key=len, reverse=True):  # longest first: "u:pw" before "pw"
        if secret:
            message = message.replace(secret, "***")
    return message


def _sqlite_path(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :])
    return None


#: seconds a job waits for the SQLite store's lock before it leaves its sync for later (a job
#: stopped by the scheduler while it holds the lock must not stop every other job with it)
LOCK_TIMEOUT_S = 120.0


@contextlib.contextmanager
def _exclusive(uri: str) -> Iterator[None]:
    """One writer at a time for a SQLite store (its own locking fails under concurrent jobs).
    A lock that cannot be had is a TrackingError, like any other failure of the mirror: a
    filesystem without file locks (Lustre without -o flock, NFS without lockd), or one held
    longer than LOCK_TIMEOUT_S."""
    db = _sqlite_path(uri)
    if db is None:
        yield
        return
    path = db.with_name(db.name + ".lock")
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path, "w")
    except OSError as e:
        raise TrackingError(f"cannot open the lock {path} of the MLflow store: {e.strerror or e}") from None
    with lock:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TrackingError(
                        f"the MLflow store's lock {path} was held for over {LOCK_TIMEOUT_S:.0f} s by another job"
                    ) from None
                time.sleep(0.05)
            except OSError as e:
                raise TrackingError(
                    f"cannot lock {path} ({e.strerror or e}): the filesystem has no file locks; on "
                    "a cluster, point mlflow.tracking_uri at an MLflow server"
                ) from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def _mirror_errors(uri: str) -> Iterator[None]:
    """Every failure of MLflow as one TrackingError, its message scrubbed of the URI's credentials."""
    try:
        yield
    except DagzooError:  # dagzoo's own, already one clear line (a missing file, a lock)
        raise
    except Exception as e:  # noqa: BLE001 - every MLflow failure is reported the same way
        # redact before cutting the message short, or a cut could leave half a password behind
        detail = _redact_text(str(e), uri).splitlines()
        msg = f"MLflow at {redact_uri(uri)} failed: {type(e).__name__}: {detail[0][:300] if detail else ''}"
        # MLflow's exception still holds the raw text: drop it from the chain when the URI has
        # credentials, so that no traceback can print them
        raise TrackingError(msg) from (None if _userinfo(uri) else e)


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
    """The id of experiment `name`, created if needed, and marked as a model-training experiment.

    The kind tag is set on experiments found as well as created (those of older dagzoo versions,
    or created by hand), and only when it differs, so a repeated sync writes nothing.
    """
    exp = client.get_experiment_by_name(name)
    if exp is None:
        artifact_location = None
        db = _sqlite_path(uri)
        if db is not None:
            artifact_location = (db.parent / "mlartifacts").resolve().as_uri()
        try:
            return client.create_experiment(
                name, artifact_location=artifact_location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
            )
        except Exception:  # created concurrently by another job (remote server): use it
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return exp.experiment_id


def _flatten(prefix: str, obj, out: dict) -> dict:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = "null" if obj is None else str(obj)
    return out


def run_key(spec: dict) -> str:
    """The MLflow run of a run directory: its config's and, once recorded, its data's (a run
    trained again on other data starts a new MLflow run, not a second curve on the first)."""
    key = f"{spec['family']}/{spec['experiment']}/{spec['seed']}/{spec['config_hash']}"
    return f"{key}/{spec['data_digest'][:16]}" if spec.get("data_digest") else key


#: spec keys that differ between the seeds of one experiment, or that are added after hashing
_PER_SEED = ("seed", "config_hash", "data_digest", "stage", "stage_params", "rule")


def parent_key(spec: dict) -> str:
    """The parent run of a run directory: its family, experiment, and a hash of everything its
    training depends on except the seed, so the seeds of one experiment share it and an
    experiment trained with other settings gets a parent of its own."""
    same = stable_hash({k: v for k, v in spec.items() if k not in _PER_SEED})
    key = f"{spec['family']}/{spec['experiment']}/{same}"
    return f"{key}/{spec['data_digest'][:16]}" if spec.get("data_digest") else key


def _sweep_tag(experiment: str) -> dict[str, str]:
    """`dagzoo.sweep`: the swept experiment a sweep's point came from (filter or group by it)."""
    return {"dagzoo.sweep": experiment.partition("@")[0]} if "@" in experiment else {}


def _find_run(client, exp_id: str, tag: str, value: str):
    found = client.search_runs([exp_id], filter_string=f"tags.`{tag}` = '{value}'", max_results=1)
    return found[0] if found else None


def _tags(spec: dict, run_dir: Path) -> dict:
    tags = {
        RUN_KEY_TAG: run_key(spec),
        "dagzoo.family": spec["family"],
        "dagzoo.model": spec["model"],
        "dagzoo.experiment": spec["experiment"],
        "dagzoo.seed": str(spec["seed"]),
        "dagzoo.level": "seed",
        **_sweep_tag(spec["experiment"]),
        "dagzoo.config_hash": spec["config_hash"],
        "dagzoo.run_dir": str(run_dir.resolve()),
        # each family names its data set in the spec; where its data section keeps it is its business
        "dagzoo.dataset": str(spec.get("dataset") or ""),
    }
    for prov in sorted(run_dir.glob("provenance-*.json")):
        p = read_json(prov)
        stage = p.get("stage", prov.stem.split("-", 1)[1])
        tags.update(
            {
                "dagzoo.git_commit": p.get("git_commit", ""),
                "dagzoo.invocation_id": p.get("invocation_id", ""),
                f"dagzoo.rule.{stage}": p.get("rule") or stage,
                "mlflow.source.git.commit": p.get("git_commit", ""),
                "dagzoo.version": p.get("dagzoo_version", ""),
            }
        )
    return tags


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _history_points(run_dir: Path) -> list:
    """The curves of history.jsonl: every "<group>/<name>" number, plus the progress counters."""
    from mlflow.entities import Metric

    metric_list = []
    for rec in read_jsonl(run_dir / "history.jsonl"):
        ts, step = int(rec["timestamp_ms"]), int(rec["step"])
        for k, v in rec.items():
            if _is_number(v) and k not in ("step", "timestamp_ms"):
                # plain keys are the progress counters: the family's unit, flops, train time
                metric_list.append(Metric(k if "/" in k else f"progress/{k}", float(v), ts, step))
    return metric_list


def _metric_files(run_dir: Path) -> list[tuple[Path, dict]]:
    """Every top-level ``*.json`` of the run directory that holds a "metrics" object, with its data."""
    out = []
    for path in sorted(run_dir.glob("*.json")):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            data = read_json(path)
        except DataError:  # not dagzoo's (dagzoo writes JSON atomically): not a metric file
            continue
        if isinstance(data, dict) and isinstance(data.get("metrics"), dict):
            out.append((path, data))
    return out


def _timestamp_ms(path: Path) -> int | None:
    """A dagzoo JSON file's "timestamp_ms"; None for a file that is not one."""
    try:
        data = read_json(path)
    except DataError:
        return None
    ts = data.get("timestamp_ms") if isinstance(data, dict) else None
    return int(ts) if _is_number(ts) else None


def training_start_ms(run_dir: Path) -> int | None:
    """When the run's training started (ms since the epoch), for its MLflow run's start time: the
    end of training (train.json) minus its training time, so that the UI's Duration is the training
    time the report prints; while it trains, its first history point (step 0, before any step);
    None when neither is on disk yet."""
    try:
        train = read_json(run_dir / "train.json")
    except (DataError, FileNotFoundError):
        train = None
    if isinstance(train, dict):
        end, seconds = train.get("timestamp_ms"), (train.get("summary") or {}).get("train_time_s")
        if _is_number(end) and _is_number(seconds):
            return int(end - 1000 * seconds)
    for rec in read_jsonl(run_dir / "history.jsonl"):
        ts, seconds = rec.get("timestamp_ms"), rec.get("train_time_s", 0.0)
        if _is_number(ts) and _is_number(seconds):
            return int(ts - 1000 * seconds)
    return None


def _file_points(run_dir: Path) -> list:
    """The metrics of the run's metric files, each at its file's own "step" and "timestamp_ms"."""
    from mlflow.entities import Metric

    metric_list = []
    for path, data in _metric_files(run_dir):
        ts = int(data.get("timestamp_ms", path.stat().st_mtime * 1000))
        step = int(data.get("step", 0))
        for k, v in data["metrics"].items():
            if _is_number(v):
                metric_list.append(Metric(k, float(v), ts, step))
    return metric_list


def _points_to_log(client, run, history: list, files: list, synced: dict[str, int] | None = None) -> list:
    """The metric_list to log: per (metric, step), none that the run already holds, for history keys.

    After a kill and resume, history.jsonl is cut back to the checkpoint and the metric_list between
    the checkpoint and the kill are computed again, with new timestamps (and values that may
    differ in the last digits). MLflow keeps every (timestamp, value) of a step, so logging them
    would draw each of those steps twice; the first point logged for a step stays.

    One get_metric_history per key of the history, and only for keys the run already has (a new
    run costs none). The same rule drops a metric file's copy of a curve point (e.g. the final
    train/loss in train.json); keys only metric files have are not looked up, so they cost no
    request and a re-evaluation's new value still becomes the run's latest (MLflow's SQL store
    skips an exact repeat of a point).

    `synced` (a LiveSync's, kept between the syncs of one process: key -> the last step the run
    holds) spares the lookups after a process's first sync: its history only grows, so a key it
    has synced needs only the points after that step (a training's sync would otherwise cost one
    request per key and the whole curve, every 30 s: 1.8 s at 10,000 history lines).
    """
    synced = {} if synced is None else synced
    held_keys = run.data.metrics
    held = {
        key: {m.step for m in client.get_metric_history(run.info.run_id, key)}
        for key in sorted({p.key for p in history} - set(synced))
        if key in held_keys
    }
    held.update({key: set() for key in {p.key for p in history} - set(synced) if key not in held})
    out = []
    for p in history + files:
        steps = held.get(p.key)
        if p.key in synced:
            if p.step > synced[p.key]:
                out.append(p)
        elif steps is None:  # a key only metric files have
            out.append(p)
        elif p.step not in steps:
            steps.add(p.step)  # also one point per step within what is logged now
            out.append(p)
    for key, steps in held.items():
        synced[key] = max(steps, default=-1)
    for p in history:
        synced[p.key] = max(synced[p.key], p.step)
    return out


def _artifacts(run_dir: Path) -> list[tuple[Path, str | None]]:
    """(file, artifact_path) of every artifact of a run directory.

    Top-level files by suffix (see ARTIFACT_SUFFIXES), every ``*.png`` one level below (logged
    under its folder's name), and every ``samples/<name>/grid.png`` (under ``samples/<name>``).
    Hidden and temporary names (starting with ".") are skipped at every level.
    """
    out: list[tuple[Path, str | None]] = []
    for path in sorted(run_dir.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_file():
            if path.suffix in ARTIFACT_SUFFIXES and path.name not in NOT_ARTIFACTS:
                out.append((path, None))
        elif path.is_dir():
            out += [
                (png, path.name) for png in sorted(path.glob("*.png")) if not png.name.startswith(".") and png.is_file()
            ]
    for grid in sorted(run_dir.glob("samples/*/grid.png")):  # one grid per sampler
        if not grid.parent.name.startswith(".") and grid.is_file():
            out.append((grid, f"samples/{grid.parent.name}"))
    return out


_SPEC_IDENTITY = ("family", "experiment", "config_hash", "stage", "stage_params", "data_digest")


def _run_params(run_dir: Path, spec: dict) -> dict:
    """The run's resolved config: the training spec, plus the hyper-parameters each later stage
    ran with (spec-<stage>.json)."""
    params = dict(spec["params"])
    for path in sorted(run_dir.glob("spec-*.json")):
        stage_spec = read_json(path)
        if isinstance(stage_spec, dict) and isinstance(stage_spec.get("params"), dict):
            params.update(stage_spec["params"])
    return {**{k: v for k, v in spec.items() if k not in _SPEC_IDENTITY}, "params": params}


#: the tag of a param whose value changed after MLflow logged it (params cannot change)
PARAM_NOW = "dagzoo.param_now."


def sync_run_dir(
    run_dir: Path, uri: str, status: str | None = None, prefix: str | None = None, synced: dict[str, int] | None = None
) -> str:
    """Idempotently mirror one run directory into MLflow; returns the MLflow run id. `synced`:
    see `_points_to_log` (LiveSync's state between syncs)."""
    from mlflow.entities import Param, RunTag

    prefix = default_prefix() if prefix is None else prefix
    run_dir = Path(run_dir)

    spec = read_json_object(run_dir / "spec.json", RUN_SPEC_KEYS)
    with _exclusive(uri), _mirror_errors(uri):
        client = _client(uri)
        exp_id = _experiment_id(client, f"{prefix}{spec['family']}", uri)
        found = _find_run(client, exp_id, RUN_KEY_TAG, run_key(spec))
        if found:
            run_id = found.info.run_id
        else:
            # created when the run is first mirrored (during or after training), it starts when
            # its training started: MLflow's Duration and "Created" column are the training's
            run = client.create_run(
                exp_id,
                run_name=f"{spec['experiment']}/{spec['seed']}",
                tags={RUN_KEY_TAG: run_key(spec)},
                start_time=training_start_ms(run_dir),
            )
            run_id = run.info.run_id
        params = {k: v[:6000] for k, v in _flatten("", _run_params(run_dir, spec), {}).items()}
        run = client.get_run(run_id)
        existing = run.data.params
        new_params = [Param(k, v) for k, v in params.items() if k not in existing]
        # MLflow keeps a param's first value; a later stage's setting changed since (which
        # reran that stage only, into the same run) shows as a tag, dropped once it is back
        changed = {k: v for k, v in params.items() if k in existing and existing[k] != v}
        tags = [RunTag(k, v) for k, v in _tags(spec, run_dir).items()]
        tags += [RunTag(f"{PARAM_NOW}{k}", v[:5000]) for k, v in changed.items()]
        if PARENT_RUN_TAG not in run.data.tags:  # its experiment's parent, once a report made one
            parent = _find_run(client, exp_id, PARENT_KEY_TAG, parent_key(spec))
            if parent is not None:
                tags.append(RunTag(PARENT_RUN_TAG, parent.info.run_id))
        for key in run.data.tags:
            if key.startswith(PARAM_NOW) and key[len(PARAM_NOW) :] not in changed:
                client.delete_tag(run_id, key)
        metric_list = _points_to_log(client, run, _history_points(run_dir), _file_points(run_dir), synced)
        _log_in_batches(client, run_id, metric_list, new_params, tags)
        for path, artifact_path in _artifacts(run_dir):
            client.log_artifact(run_id, str(path), artifact_path=artifact_path)
        end_time = None
        if status is None and run.info.status != "FINISHED" and (run_dir / "train.json").is_file():
            # training finished (a train job shorter than LiveSync.first_sync_after leaves its
            # run to the next stage that mirrors it): close the run at training's end
            status, end_time = "FINISHED", _timestamp_ms(run_dir / "train.json")
        if status == "RUNNING":
            client.update_run(run_id, status="RUNNING")
        elif status:
            client.set_terminated(run_id, status=status, end_time=end_time)
        return run_id


def _log_in_batches(client, run_id: str, metrics: list, params: list, tags: list) -> None:
    """log_batch within MLflow's limits per call (1,000 metrics, 100 params, 100 tags)."""
    for i in range(0, max(len(params), len(tags), 1), 100):
        if params[i : i + 100] or tags[i : i + 100]:
            client.log_batch(run_id, params=params[i : i + 100], tags=tags[i : i + 100])
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i : i + 1000])


def _claim_tags(claims: list[dict], family: str, experiment: str) -> dict[str, str]:
    """The verdicts of the claims that name a metric of this experiment, as tags."""
    address = f"{family}/{experiment}/"
    tags = {}
    for c in claims:
        if any(str(c.get(side, "")).startswith(address) for side in ("lhs", "rhs")):
            key = CLAIM_TAG + re.sub(r"[^A-Za-z0-9_\-. /]", "_", str(c.get("name", "")))[:200]
            detail = f" ({c['detail']})" if c.get("detail") else ""
            tags[key] = f"{c.get('verdict')}: {c.get('lhs')} {c.get('op')} {c.get('rhs')}{detail}"[:5000]
    return tags


def seed_aggregates(rows) -> dict[str, float]:
    """<metric>_mean, <metric>_std (ddof 1, two seeds or more) and <metric>_n over the seeds of one
    experiment (rows: its rows of summary.parquet), as the report's summary_by_experiment."""
    out = {}
    for col in rows.columns:
        if col == "seed" or not _is_numeric_column(rows[col]):
            continue
        values = rows[col].dropna()
        if values.empty:
            continue
        out[f"{col}_mean"], out[f"{col}_n"] = float(values.mean()), float(len(values))
        if len(values) > 1:
            out[f"{col}_std"] = float(values.std(ddof=1))
    return out


def _is_numeric_column(column) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def sync_experiments(
    results: Path, summary: Path, claims: Path | None, uri: str, prefix: str | None = None
) -> list[str]:
    """Idempotently mirror the report's experiments into MLflow as parent runs, one per experiment
    of summary.parquet (its runs found under `results` by family, experiment and seed), each
    with its seeds' runs as children (``mlflow.parentRunId``). A parent carries the experiment's
    parameters (the seed aside), `seed_aggregates` as metrics, and the verdicts of the claims
    naming it as tags; it spans its children's training, from the first start to the last end.
    A child not yet in MLflow is linked when it is first mirrored. Returns the parents' run ids."""
    import pandas as pd
    from mlflow.entities import Metric, Param, RunTag

    prefix = default_prefix() if prefix is None else prefix
    df = pd.read_parquet(summary)
    claim_list = (read_json(claims).get("claims") or []) if claims is not None and Path(claims).is_file() else []
    ids = []
    if df.empty:
        return ids
    with _exclusive(uri), _mirror_errors(uri):
        client = _client(uri)
        for (family, experiment), rows in df.groupby(["family", "experiment"], sort=True):
            # summary.parquet's run_dir is relative to where the DAG ran; the layout is not
            run_dirs = [Path(results) / str(family) / str(experiment) / str(int(seed)) for seed in rows["seed"]]
            specs = [read_json_object(d / "spec.json", RUN_SPEC_KEYS) for d in run_dirs]
            exp_id = _experiment_id(client, f"{prefix}{family}", uri)
            key = parent_key(specs[0])
            starts = [t for t in map(training_start_ms, run_dirs) if t is not None]
            ends = [t for t in (_timestamp_ms(d / "train.json") for d in run_dirs) if t is not None]
            parent = _find_run(client, exp_id, PARENT_KEY_TAG, key)
            if parent is None:
                parent = client.create_run(
                    exp_id, run_name=str(experiment), tags={PARENT_KEY_TAG: key}, start_time=min(starts, default=None)
                )
            run_id = parent.info.run_id
            ids.append(run_id)
            params = _run_params(run_dirs[0], specs[0])
            params.pop("seed", None)
            flat = {k: v[:6000] for k, v in _flatten("", params, {}).items()}
            tags = {
                PARENT_KEY_TAG: key,
                "dagzoo.family": str(family),
                "dagzoo.experiment": str(experiment),
                "dagzoo.model": str(specs[0]["model"]),
                "dagzoo.level": "experiment",
                "dagzoo.seeds": ",".join(str(s["seed"]) for s in sorted(specs, key=lambda s: s["seed"])),
                **_sweep_tag(str(experiment)),
                **_claim_tags(claim_list, str(family), str(experiment)),
            }
            held = client.get_run(run_id).data
            for old in held.tags:  # a claim no longer declared (or no longer naming it)
                if old.startswith(CLAIM_TAG) and old not in tags:
                    client.delete_tag(run_id, old)
            metrics = seed_aggregates(rows.drop(columns=["family", "experiment", "model", "config_hash", "run_dir"]))
            now = int(time.time() * 1000)
            # only what changed: a repeated sync logs nothing, and a metric's history holds its values
            _log_in_batches(
                client,
                run_id,
                metrics=[Metric(k, v, now, 0) for k, v in metrics.items() if held.metrics.get(k) != v],
                params=[Param(k, v) for k, v in flat.items() if k not in held.params],
                tags=[RunTag(k, v) for k, v in tags.items() if held.tags.get(k) != v],
            )
            client.set_terminated(run_id, status="FINISHED", end_time=max(ends, default=None))
            for spec in specs:
                child = _find_run(client, exp_id, RUN_KEY_TAG, run_key(spec))
                if child is not None and child.data.tags.get(PARENT_RUN_TAG) != run_id:
                    client.set_tag(child.info.run_id, PARENT_RUN_TAG, run_id)
    return ids


class LiveSync:
    """Best-effort syncing from a running job: at most every `interval` seconds, never fatal.

    With `first_sync_after`, calls that are not forced wait until the job has run that long: a
    job shorter than that never imports MLflow (about 1.5 s of start-up per process, a tenth of
    a small training job); `finish` then leaves the run to the next stage that mirrors it (a
    run's evaluation always does, and marks the run FINISHED once train.json is there).

    After the first failure it stops trying (so an unreachable server costs one timeout, not
    one per log line) and warns once; the data stays on disk for `dagzoo mlflow-sync`.
    """

    def __init__(
        self, run_dir: Path, uri: str, prefix: str | None = None, interval: float = 30.0, first_sync_after: float = 0.0
    ):
        self.run_dir, self.uri, self.prefix, self.interval = Path(run_dir), uri, prefix, interval
        self.first_sync_after = first_sync_after
        self.started = time.monotonic()
        self.last = -float("inf")
        self.synced_steps: dict[str, int] = {}  # what this process's syncs put into the run (see _points_to_log)
        self.synced = self.failed = False

    def __call__(self, force: bool = False, status: str | None = None) -> bool:
        if self.failed:
            return False
        now = time.monotonic()
        if not force and (now - self.last < self.interval or now - self.started < self.first_sync_after):
            return True
        self.last = now
        started = time.perf_counter()
        try:
            sync_run_dir(self.run_dir, self.uri, status=status, prefix=self.prefix, synced=self.synced_steps)
            self.synced = True
            return True
        except TrackingError as e:
            self.failed = True
            # sync_run_dir's message is already redacted; scrubbing again costs nothing and keeps
            # this warning safe whatever raised
            print(
                f"[dagzoo] warning: {_redact_text(str(e), self.uri)}. The job continues; its results are on "
                f"disk in {self.run_dir}. Run `dagzoo mlflow-sync` once MLflow is reachable.",
                file=sys.stderr,
            )
            return False
        finally:
            timing.sync_seconds += time.perf_counter() - started

    def finish(self, status: str = "FINISHED") -> bool:
        """The job's last sync: `status` if this job has synced before (its run shows RUNNING);
        otherwise nothing, for the next stage to mirror."""
        return self(force=True, status=status) if self.synced else True


def _is_run_dir(rel: Path) -> bool:
    """Whether ``<results>/<rel>`` (rel = family/experiment/seed/spec.json) is a real run directory."""
    family, experiment, seed, _ = rel.parts
    return (
        family not in NOT_FAMILIES
        and seed.isdigit()
        and not any(part.startswith(".") for part in (family, experiment, seed))
    )


def find_run_dirs(results_dir: Path) -> list[Path]:
    """Every run directory under results/: ``<results>/<family>/<experiment>/<seed>/spec.json``.

    Only real ones: the seed is all digits, and nothing under a hidden directory or under one of
    results/'s own non-family directories (NOT_FAMILIES) counts. MLflow copies spec.json into its
    artifact store (results/mlartifacts/<run id>/artifacts/spec.json, the same depth), which would
    otherwise be synced and reported as further runs.
    """
    results_dir = Path(results_dir)
    return sorted(p.parent for p in results_dir.glob("*/*/*/spec.json") if _is_run_dir(p.relative_to(results_dir)))


def sync_results(results_dir: Path, uri: str, prefix: str | None = None) -> list[str]:
    """`dagzoo mlflow-sync`: mirror every run directory; runs already present are updated, not duplicated."""
    ids = []
    for run_dir in find_run_dirs(results_dir):  # a run with train.json is marked FINISHED
        ids.append(sync_run_dir(run_dir, uri, prefix=prefix))
    return ids


def live_sync(run_dir: Path, results: Path, first_sync_after: float = 0.0) -> "LiveSync":
    """The LiveSync of a job's run directory, logging to the DAG's tracking store."""
    return LiveSync(run_dir, resolve_uri(results), first_sync_after=first_sync_after)
