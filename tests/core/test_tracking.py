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
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # refused is refused: no retries to wait for
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


def _seed_run(results, experiment, seed, bpc, lr):
    from dagzoo.io import atomic_write_json

    run_dir = results / "text" / experiment / str(seed)
    spec = {
        "family": "text",
        "experiment": experiment,
        "model": "transformer",
        "seed": seed,
        "config_hash": f"{experiment}{seed}",  # config hashes include the seed
        "params": {"lr": lr, "width": 64},
        "data": {"corpus": "kjv"},
    }
    atomic_write_json(run_dir / "spec.json", spec)
    end = 1_700_000_100_000 + 1000 * seed
    atomic_write_json(
        run_dir / "train.json",
        {"metrics": {"train/time_s": 30.0 + seed}, "summary": {"train_time_s": 30.0 + seed}, "timestamp_ms": end},
    )
    atomic_write_json(run_dir / "metrics.json", {"metrics": {"test/bpc": bpc, "test/n": 100}, "timestamp_ms": end + 5})
    return run_dir


def test_experiments_are_parent_runs_of_their_seeds_with_the_reports_aggregates(tmp_path):
    """One parent per experiment: the seeds' runs nest under it, its _mean/_std/_n metrics are the
    report's summary_by_experiment, the claims naming it are its tags, every run ends after it
    starts, and a second sync adds no run, no metric point, no tag."""
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from dagzoo.claims import write_claims
    from dagzoo.report import aggregate, collect
    from dagzoo.tracking import PARENT_RUN_TAG, sync_experiments

    results = tmp_path / "results"
    runs = [_seed_run(results, "small", s, 2.0 + 0.1 * s, 3e-4) for s in range(3)]
    runs += [_seed_run(results, "large", 0, 1.8, 1e-3)]
    df, _ = collect(runs, listed=True)
    df.to_parquet(results / "summary.parquet", index=False)
    write_claims(
        results / "claims.json",
        [
            {
                "name": "large <= small (Table 1)",
                "lhs": "text/large/test/bpc",
                "op": "<=",
                "rhs": "text/small/test/bpc",
                "verdict": "held",
                "detail": "|difference| 0.3",
            }
        ],
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def snapshot():
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("dagzoo-text")
        found = client.search_runs([exp.experiment_id], max_results=100)
        history = {
            (r.info.run_id, k): len(client.get_metric_history(r.info.run_id, k)) for r in found for k in r.data.metrics
        }
        return found, history

    sync_results(results, uri)
    parents = sync_experiments(results, results / "summary.parquet", results / "claims.json", uri)
    first, history = snapshot()
    assert len(parents) == 2 and len(first) == 6
    by_id = {r.info.run_id: r for r in first}
    expected = aggregate(df).set_index("experiment")
    for pid in parents:
        parent = by_id[pid]
        exp = parent.data.tags["dagzoo.experiment"]
        children = [r for r in first if r.data.tags.get(PARENT_RUN_TAG) == pid]
        assert sorted(c.data.tags["dagzoo.seed"] for c in children) == (["0", "1", "2"] if exp == "small" else ["0"])
        m = parent.data.metrics
        assert m["test/bpc_mean"] == expected.loc[exp, "test/bpc_mean"] and m["test/bpc_n"] == len(children)
        if exp == "small":
            assert m["test/bpc_std"] == pytest.approx(expected.loc[exp, "test/bpc_std"], rel=1e-12)
            assert parent.data.params["params.lr"] == "0.0003" and "seed" not in parent.data.params
        else:
            assert "test/bpc_std" not in m  # one seed: no spread, as the report's empty cell
        assert parent.data.tags["dagzoo.claim.large __ small _Table 1_"].startswith("held: text/large/test/bpc <=")
        assert parent.info.start_time == min(c.info.start_time for c in children)
        assert parent.info.end_time == max(c.info.end_time for c in children)
    for r in first:
        assert r.info.end_time >= r.info.start_time, r.info.run_name
        if r.data.tags.get("dagzoo.level") == "seed":
            # the UI's Duration is the training time the report prints
            assert r.info.end_time - r.info.start_time == 1000 * (30 + int(r.data.tags["dagzoo.seed"]))
    sync_results(results, uri)
    assert sync_experiments(results, results / "summary.parquet", results / "claims.json", uri) == parents
    again, history_again = snapshot()
    assert len(again) == 6 and history_again == history
    assert {r.info.run_id: r.data.tags for r in again} == {r.info.run_id: r.data.tags for r in first}
    # a claim dropped from the config drops its tag; a changed seed value updates the mean
    write_claims(results / "claims.json", [])
    df.loc[df.experiment == "large", "test/bpc"] = 1.7
    df.to_parquet(results / "summary.parquet", index=False)
    sync_experiments(results, results / "summary.parquet", results / "claims.json", uri)
    large = next(
        r for r in snapshot()[0] if r.data.tags.get("dagzoo.experiment") == "large" and r.info.run_id in parents
    )
    assert large.data.metrics["test/bpc_mean"] == 1.7 and not any(
        k.startswith("dagzoo.claim.") for k in large.data.tags
    )
    assert isinstance(pd.read_parquet(results / "summary.parquet"), pd.DataFrame)
