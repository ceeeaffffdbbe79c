"""MLflow: no lost metrics under concurrent jobs, idempotent sync, unreachable servers."""

import subprocess
import sys
import textwrap

import pytest

from dagzoo.tracking import sync_results

from conftest import dagzoo, prepare_text_runs

WORKER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from dagzoo.io import atomic_write_json, append_jsonl
    from dagzoo.tracking import sync_run_dir
    run_dir, uri, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    spec = {"family": "text", "experiment": run_dir.parent.name, "model": "ngram", "seed": 0,
            "config_hash": "c0ffee", "params": {"order": 3}, "data": {"corpus": "kjv"}, "eval": {}}
    atomic_write_json(run_dir / "spec.json", spec)
    for step in range(1, n + 1):
        append_jsonl(run_dir / "history.jsonl", {"step": step, "tokens": step, "timestamp_ms": 1_700_000_000_000 + step,
                                                 "train/loss": 1.0 / step, "val/bpc": 2.0 + step})
        if step % 25 == 0:
            sync_run_dir(run_dir, uri, status="RUNNING")
    atomic_write_json(run_dir / "metrics.json", {"metrics": {"test/bpc": 1.5}, "timestamp_ms": 1_800_000_000_000})
    sync_run_dir(run_dir, uri, status="FINISHED")
""")


def _count(uri):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("dagzoo-text")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    points = {
        r.info.run_name: {
            k: len(client.get_metric_history(r.info.run_id, k)) for k in ("train/loss", "val/bpc", "test/bpc")
        }
        for r in runs
    }
    return runs, points


@pytest.mark.parametrize("backend", ["sqlite", "server"])
def test_concurrent_jobs_lose_no_metric(tmp_path, backend, request):
    """8 jobs at once (4 per core), logging live, on a fresh SQLite store or a tracking server: every
    point arrives."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}" if backend == "sqlite" else request.getfixturevalue("mlflow_server")
    n_jobs, n_points = 8, 100
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path / "text" / f"job{i}" / "0"), uri, str(n_points)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n_jobs)
    ]
    errors = [p.communicate()[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    runs, points = _count(uri)
    assert len(runs) == n_jobs
    for name, counts in points.items():
        assert counts == {"train/loss": n_points, "val/bpc": n_points, "test/bpc": 1}, (name, counts)
    assert {r.info.status for r in runs} == {"FINISHED"}

    # syncing the whole results tree again (as `dagzoo mlflow-sync` does) duplicates nothing
    sync_results(tmp_path, uri)
    sync_results(tmp_path, uri)
    runs2, points2 = _count(uri)
    assert len(runs2) == n_jobs and points2 == points


def test_unreachable_mlflow_does_not_lose_the_run(tmp_path, monkeypatch):
    data, runs, results = prepare_text_runs(tmp_path, {"kn3": {"model": "ngram", "order": 3}})
    run = runs["kn3"]
    monkeypatch.setenv("DAGZOO_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens on port 9
    r = dagzoo("train", "--spec", run / "spec.json", "--data", data, "--run-dir", run, "--results", results)
    assert "MLflow" not in r.stderr  # a training shorter than a minute leaves MLflow to the evaluation
    assert (run / "train.json").exists()
    r = dagzoo("text-evaluate", "--spec", run / "spec.json", "--data", data, "--run-dir", run, "--results", results)
    assert "MLflow at http://127.0.0.1:9 failed" in r.stderr and "dagzoo mlflow-sync" in r.stderr
    assert (run / "metrics.json").exists()

    r = dagzoo("mlflow-sync", "--results", results, check=False)
    assert r.returncode == 1 and "dagzoo: error: MLflow at http://127.0.0.1:9 failed" in r.stderr
    assert "Traceback" not in r.stderr

    # once a store is reachable, the results on disk are logged in full
    monkeypatch.delenv("DAGZOO_TRACKING_URI")
    uri = f"sqlite:///{tmp_path / 'later.db'}"
    dagzoo("mlflow-sync", "--results", results, "--uri", uri)
    runs_, points = _count(uri)
    assert len(runs_) == 1 and points["kn3/0"]["test/bpc"] == 1 and points["kn3/0"]["val/bpc"] == 1
    tags = runs_[0].data.tags
    for key in (
        "dagzoo.family",
        "dagzoo.model",
        "dagzoo.dataset",
        "dagzoo.seed",
        "dagzoo.git_commit",
        "dagzoo.config_hash",
        "dagzoo.invocation_id",
        "dagzoo.rule.train",
    ):
        assert tags.get(key), key
    assert runs_[0].data.params["params.order"] == "3"


def _spec_and_history(run_dir, steps, scale=1.0):
    from dagzoo.io import append_jsonl, atomic_write_json

    atomic_write_json(
        run_dir / "spec.json",
        {
            "family": "text",
            "experiment": "live",
            "model": "ngram",
            "seed": 0,
            "config_hash": "c0ffee",
            "params": {"order": 3},
        },
    )
    for step in steps:
        append_jsonl(
            run_dir / "history.jsonl",
            {
                "step": step,
                "timestamp_ms": 1_700_000_000_000 + step,
                "train/loss": scale / step,
                "val/bpc": scale * step,
            },
        )


def test_a_live_sync_sends_only_new_points_after_its_first_sync(tmp_path, monkeypatch):
    """A training's syncs (every 30 s) look its curves up in MLflow once per process: after its
    first sync a process's history only grows. A resumed process (history cut back to its
    checkpoint, the steps after it recomputed) still logs each step once, the first value kept."""
    from mlflow.tracking import MlflowClient

    from dagzoo.tracking import LiveSync

    calls = []
    original = MlflowClient.get_metric_history
    monkeypatch.setattr(
        MlflowClient, "get_metric_history", lambda self, run_id, key: calls.append(key) or original(self, run_id, key)
    )
    uri, run = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "text" / "live" / "0"
    first = LiveSync(run, uri, interval=0)
    _spec_and_history(run, range(1, 51))
    assert first(force=True) and calls == []  # a new run: nothing to look up
    (run / "history.jsonl").write_text(
        "".join(line + "\n" for line in (run / "history.jsonl").read_text().splitlines()[:30])
    )  # the resume's cut
    resumed = LiveSync(run, uri, interval=0)
    _spec_and_history(run, range(31, 61), scale=2.0)
    assert resumed(force=True) and sorted(calls) == ["train/loss", "val/bpc"]
    for end in (90, 120):
        _spec_and_history(run, range(end - 29, end + 1), scale=2.0)
        assert resumed(force=True)
    assert sorted(calls) == ["train/loss", "val/bpc"], "no lookups after the process's first sync"
    client = MlflowClient(uri)
    run_id = client.search_runs([client.get_experiment_by_name("dagzoo-text").experiment_id])[0].info.run_id
    points = {m.step: m.value for m in original(client, run_id, "val/bpc")}
    assert sorted(points) == list(range(1, 121))
    assert points[40] == 40.0 and points[55] == 110.0 and points[120] == 240.0  # the first value of a step stays


def test_a_store_whose_lock_cannot_be_had_costs_one_warning(tmp_path, monkeypatch, capsys):
    import errno
    import fcntl

    from dagzoo import tracking

    uri, run = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "text" / "live" / "0"
    _spec_and_history(run, range(1, 5))

    def no_locks(*_):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(tracking.fcntl, "flock", no_locks)
    assert tracking.LiveSync(run, uri)(force=True) is False
    assert "has no file locks" in capsys.readouterr().err
    monkeypatch.undo()

    monkeypatch.setattr(tracking, "LOCK_TIMEOUT_S", 0.2)
    with open(tmp_path / "mlflow.db.lock", "w") as held:  # another job holds the store
        fcntl.flock(held, fcntl.LOCK_EX)
        assert tracking.LiveSync(run, uri)(force=True) is False
    assert "was held for over 0 s by another job" in capsys.readouterr().err


def test_a_later_stage_setting_changed_after_the_first_sync_shows_as_a_tag(tmp_path):
    """A sampling temperature changed reruns sampling into the same MLflow run, whose params
    cannot change: the new value is the tag dagzoo.param_now.<param>, dropped once it is back."""
    from mlflow.tracking import MlflowClient

    from dagzoo.io import atomic_write_json
    from dagzoo.tracking import sync_run_dir

    uri, run = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "text" / "live" / "0"
    _spec_and_history(run, range(1, 3))
    stage = {
        "family": "text",
        "experiment": "live",
        "model": "ngram",
        "seed": 0,
        "config_hash": "c0ffee",
        "stage": "sample",
        "params": {"order": 3, "temperature": 1.0},
    }
    atomic_write_json(run / "spec-sample.json", stage)
    run_id = sync_run_dir(run, uri)
    client = MlflowClient(uri)
    assert client.get_run(run_id).data.params["params.temperature"] == "1.0"
    atomic_write_json(run / "spec-sample.json", {**stage, "params": {"order": 3, "temperature": 0.5}})
    sync_run_dir(run, uri)
    data = client.get_run(run_id).data
    assert data.params["params.temperature"] == "1.0" and data.tags["dagzoo.param_now.params.temperature"] == "0.5"
    atomic_write_json(run / "spec-sample.json", stage)
    sync_run_dir(run, uri)
    assert "dagzoo.param_now.params.temperature" not in client.get_run(run_id).data.tags
