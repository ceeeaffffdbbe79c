"""dagzoo.tracking: family-agnostic syncing, experiment kind, credentials in URIs, URI precedence,
real run directories only, and idempotent curves after a kill and resume."""

import pytest

from dagzoo.errors import TrackingError
from dagzoo.io import append_jsonl, atomic_write_json, atomic_write_text
from dagzoo.tracking import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    LiveSync,
    find_run_dirs,
    redact_uri,
    resolve_uri,
    sync_results,
    sync_run_dir,
)

pytestmark = pytest.mark.probe

T0 = 1_700_000_000_000


def _client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def _run_dir(results, family="fam", experiment="exp", seed=0, **spec_extra):
    """A run directory with a minimal spec (a family dagzoo has never heard of: tracking must not care)."""
    run_dir = results / family / experiment / str(seed)
    spec = {
        "family": family,
        "experiment": experiment,
        "model": "m",
        "seed": seed,
        "config_hash": "c0ffee",
        "params": {"width": 4},
        "data": {},
        "eval": {},
        **spec_extra,
    }
    atomic_write_json(run_dir / "spec.json", spec)
    return run_dir


def _write_history(run_dir, records):
    (run_dir / "history.jsonl").unlink(missing_ok=True)
    for rec in records:
        append_jsonl(run_dir / "history.jsonl", rec)


def _steps(client, run_id, key):
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


@pytest.fixture
def uri(tmp_path):
    return f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}"


# --------------------------------------------------------------------------- family-agnostic


def test_dataset_tag_comes_from_the_spec_only(tmp_path, uri):
    results = tmp_path / "results"
    with_ds = _run_dir(results, experiment="a", dataset="kjv")
    # a data section with the old family-specific keys: no longer read
    without = _run_dir(results, experiment="b", data={"corpus": "file:x", "source": "digits"})
    client = _client(uri)
    tags = {name: client.get_run(sync_run_dir(d, uri)).data.tags for name, d in (("a", with_ds), ("b", without))}
    assert tags["a"]["dagzoo.dataset"] == "kjv"
    assert tags["b"].get("dagzoo.dataset", "") == ""
    assert tags["a"]["dagzoo.family"] == "fam"


def test_artifacts_by_suffix_and_pngs_one_level_below(tmp_path, uri):
    run_dir = _run_dir(tmp_path / "results")
    for name in ("train.json", "report.md", "samples.txt", "curve.png", "other.png"):
        atomic_write_text(run_dir / name, "x")
    for name in ("model.pt", "weights.npy", ".hidden.json", ".curve.tmp.png", ".metrics.json.abc.tmp"):
        atomic_write_text(run_dir / name, "x")
    _write_history(run_dir, [{"step": 1, "timestamp_ms": T0, "train/loss": 1.0}])
    atomic_write_text(run_dir / "samples" / "ddim" / "grid.png", "x")
    atomic_write_text(run_dir / "samples" / "ddim" / "images.npy", "x")
    atomic_write_text(run_dir / "samples" / ".partial" / "grid.png", "x")
    atomic_write_text(run_dir / "plots" / "loss.png", "x")
    atomic_write_text(run_dir / "plots" / "table.csv", "x")
    atomic_write_text(run_dir / ".cache" / "c.png", "x")
    atomic_write_text(run_dir / "checkpoints" / "last.pt", "x")

    client = _client(uri)
    run_id = sync_run_dir(run_dir, uri)

    def listed(path=None):
        return sorted(a.path for a in client.list_artifacts(run_id, path) if not a.is_dir)

    assert listed() == ["curve.png", "other.png", "report.md", "samples.txt", "spec.json", "train.json"]
    assert listed("samples/ddim") == ["samples/ddim/grid.png"]
    assert listed("plots") == ["plots/loss.png"]
    assert sorted(a.path for a in client.list_artifacts(run_id) if a.is_dir) == ["plots", "samples"]
    assert [a.path for a in client.list_artifacts(run_id, "samples")] == ["samples/ddim"]


def test_every_json_with_metrics_contributes_at_its_own_step(tmp_path, uri):
    run_dir = _run_dir(tmp_path / "results")
    atomic_write_json(run_dir / "train.json", {"metrics": {"train/tokens": 100}, "step": 50, "timestamp_ms": T0 + 1})
    atomic_write_json(
        run_dir / "fancy_eval.json",
        {"metrics": {"fancy/score": 0.5, "fancy/ok": True, "fancy/name": "x"}, "step": 7, "timestamp_ms": T0 + 2},
    )
    atomic_write_json(run_dir / "provenance-train.json", {"stage": "train", "git_commit": "abc"})
    atomic_write_json(run_dir / "list.json", [1, 2, 3])
    atomic_write_text(run_dir / "broken.json", "{not json")
    client = _client(uri)
    run = client.get_run(sync_run_dir(run_dir, uri))
    assert run.data.metrics == {"train/tokens": 100.0, "fancy/score": 0.5}
    (point,) = client.get_metric_history(run.info.run_id, "fancy/score")
    assert (point.step, point.timestamp, point.value) == (7, T0 + 2, 0.5)
    assert client.get_metric_history(run.info.run_id, "train/tokens")[0].step == 50
    assert run.data.tags["dagzoo.git_commit"] == "abc"


# --------------------------------------------------------------------------- experiment kind


def test_experiments_are_marked_as_model_training(tmp_path, uri):
    results = tmp_path / "results"
    client = _client(uri)
    sync_run_dir(_run_dir(results, family="fresh"), uri)
    exp = client.get_experiment_by_name("dagzoo-fresh")
    assert exp.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND == "custom_model_development"

    # an experiment dagzoo finds (an older dagzoo's, or made by hand) is marked too
    old_id = client.create_experiment("dagzoo-old")
    other_id = client.create_experiment("dagzoo-other", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    sync_run_dir(_run_dir(results, family="old"), uri)
    sync_run_dir(_run_dir(results, family="other"), uri)
    assert client.get_experiment(old_id).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    assert client.get_experiment(other_id).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND

    # idempotent: a repeated sync does not write the tag again
    from mlflow.tracking import MlflowClient

    calls = []
    orig = MlflowClient.set_experiment_tag
    try:
        MlflowClient.set_experiment_tag = lambda self, *a, **k: calls.append(a) or orig(self, *a, **k)
        sync_results(results, uri)
    finally:
        MlflowClient.set_experiment_tag = orig
    assert calls == []


# --------------------------------------------------------------------------- credentials


@pytest.mark.parametrize(
    "raw, redacted",
    [
        ("http://user:password@host", "http://***@host"),
        ("http://user:p%40ss@host:5000/path?x=1", "http://***@host:5000/path?x=1"),
        ("https://token@mlflow.example.org/", "https://***@mlflow.example.org/"),
        ("postgresql://u:pw@db:5432/mlflow", "postgresql://***@db:5432/mlflow"),
        ("http://host:5000", "http://host:5000"),
        ("http://127.0.0.1:9", "http://127.0.0.1:9"),
        ("sqlite:////home/me@work/results/mlflow.db", "sqlite:////home/me@work/results/mlflow.db"),
        ("file:///data/a@b/mlruns", "file:///data/a@b/mlruns"),
        ("databricks", "databricks"),
    ],
)
def test_redact_uri(raw, redacted):
    assert redact_uri(raw) == redacted


SECRET_URI = "http://alice:s3cret-pw@127.0.0.1:9/prefix"


class _EchoingClient:
    """An MLflow client whose errors echo the URI and its credentials (as MLflow's may)."""

    def get_experiment_by_name(self, name):
        raise ConnectionError(
            f"API request to {SECRET_URI}/api/2.0/mlflow/experiments failed "
            f"(auth alice:s3cret-pw, decoded alice:s3cret-pw, password s3cret-pw)\nmore lines"
        )


def test_errors_and_warnings_never_show_credentials(tmp_path, monkeypatch, capsys):
    import dagzoo.tracking as tracking

    run_dir = _run_dir(tmp_path / "results")
    monkeypatch.setattr(tracking, "_client", lambda uri: _EchoingClient())
    with pytest.raises(TrackingError) as info:
        sync_run_dir(run_dir, SECRET_URI)
    msg = str(info.value)
    assert msg.startswith(
        "MLflow at http://***@127.0.0.1:9/prefix failed: ConnectionError: API request to "
        "http://***@127.0.0.1:9/prefix/api/2.0"
    )
    assert "s3cret" not in msg and "alice" not in msg and "more lines" not in msg
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no traceback shows MLflow's text

    sync = LiveSync(run_dir, SECRET_URI)
    assert sync(force=True) is False
    err = capsys.readouterr().err
    assert "http://***@127.0.0.1:9/prefix" in err and "s3cret" not in err and "dagzoo mlflow-sync" in err


def test_unreachable_server_with_credentials(tmp_path, monkeypatch):
    """The real MLflow client: the message names the host, not the password."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    with pytest.raises(TrackingError) as info:
        sync_run_dir(_run_dir(tmp_path / "results"), SECRET_URI)
    assert "MLflow at http://***@127.0.0.1:9/prefix failed" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_errors_without_credentials_keep_their_cause(tmp_path, monkeypatch):
    import dagzoo.tracking as tracking

    class Failing:
        def get_experiment_by_name(self, name):
            raise ConnectionError("refused")

    monkeypatch.setattr(tracking, "_client", lambda uri: Failing())
    with pytest.raises(TrackingError, match=r"^MLflow at http://127.0.0.1:9 failed: ConnectionError: refused$") as info:
        sync_run_dir(_run_dir(tmp_path / "results"), "http://127.0.0.1:9")
    assert isinstance(info.value.__cause__, ConnectionError)


# --------------------------------------------------------------------------- precedence


def test_resolve_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGZOO_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_uri(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert resolve_uri(tmp_path, "") == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow-env")
    assert resolve_uri(tmp_path) == "http://mlflow-env"
    monkeypatch.setenv("DAGZOO_TRACKING_URI", "http://dag")
    assert resolve_uri(tmp_path) == "http://dag"
    # the command line (or the config the Snakefile passes) beats whatever the environment says
    assert resolve_uri(tmp_path, "sqlite:///x.db") == "sqlite:///x.db"
    assert resolve_uri(results_dir=tmp_path, explicit="http://cli") == "http://cli"


# --------------------------------------------------------------------------- run directories


def test_find_run_dirs_only_real_run_directories(tmp_path):
    results = tmp_path / "results"
    real = [
        _run_dir(results, "text", "kn3", 0),
        _run_dir(results, "text", "kn3", 12),
        _run_dir(results, "image", "ddpm", 1),
        _run_dir(results, "text", "data", 0),
    ]  # an experiment may be called "data"
    fakes = [
        "mlartifacts/0123456789abcdef0123456789abcdef/artifacts",
        "mlartifacts/1/2",
        "mlruns/1/2",
        "data/text/0",
        "logs/x/0",
        "benchmarks/x/0",
        "report/x/0",
        ".snakemake/x/0",
        "text/.tmp/0",
        "text/kn3/.0",
        "text/kn3/seed0",
        "text/kn3/0/deeper",
    ]
    for fake in fakes:
        atomic_write_json(results / fake / "spec.json", {})
    assert find_run_dirs(results) == sorted(real)


def test_sync_results_ignores_mlflow_own_artifact_copies(tmp_path):
    """A SQLite store in results/ keeps artifacts in results/mlartifacts/<run id>/artifacts/spec.json."""
    results = tmp_path / "results"
    uri = f"sqlite:///{results / 'mlflow.db'}"
    for exp in ("a", "b"):
        run_dir = _run_dir(results, experiment=exp)
        atomic_write_json(run_dir / "train.json", {"metrics": {"train/x": 1}, "step": 1, "timestamp_ms": T0})
    assert len(sync_results(results, uri)) == 2
    copies = list(results.glob("mlartifacts/*/artifacts/spec.json"))
    assert len(copies) == 2  # the copies that used to count as two more runs
    ids = sync_results(results, uri)
    assert len(ids) == 2 and len(set(ids)) == 2
    exp = _client(uri).get_experiment_by_name("dagzoo-fam")
    runs = _client(uri).search_runs([exp.experiment_id])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}


# --------------------------------------------------------------------------- kill and resume


def _record(step, ts, loss):
    return {"step": step, "tokens": 10 * step, "timestamp_ms": ts, "train/loss": loss, "val/bpc": 2 * loss}


def test_history_is_idempotent_per_metric_and_step_after_resume(tmp_path, uri):
    run_dir = _run_dir(tmp_path / "results")
    before = [_record(s, T0 + s, 1.0 / s) for s in range(1, 6)]
    _write_history(run_dir, before)
    client = _client(uri)
    run_id = sync_run_dir(run_dir, uri, status="RUNNING")

    # killed after step 5, resumed from the checkpoint at step 3: steps 4 and 5 are computed
    # again, with new timestamps and (slightly) different values, then training goes on
    after = before[:3] + [_record(s, T0 + 1000 + s, 1.0 / s + 1e-3) for s in (4, 5)]
    _write_history(run_dir, after)
    assert sync_run_dir(run_dir, uri) == run_id
    for key in ("train/loss", "val/bpc", "progress/tokens"):
        steps = [s for s, _ in _steps(client, run_id, key)]
        assert steps == [1, 2, 3, 4, 5], key
    # the first point logged for a step stays
    assert dict(_steps(client, run_id, "train/loss"))[5] == pytest.approx(0.2)

    _write_history(run_dir, after + [_record(s, T0 + 1000 + s, 1.0 / s) for s in (6, 7)])
    # a metric file's copy of the last curve point is no second point either
    atomic_write_json(
        run_dir / "train.json",
        {"metrics": {"train/loss": 1 / 7, "train/tokens": 70}, "step": 7, "timestamp_ms": T0 + 5000},
    )
    sync_run_dir(run_dir, uri, status="FINISHED")
    sync_run_dir(run_dir, uri, status="FINISHED")
    assert [s for s, _ in _steps(client, run_id, "train/loss")] == [1, 2, 3, 4, 5, 6, 7]
    assert [s for s, _ in _steps(client, run_id, "val/bpc")] == [1, 2, 3, 4, 5, 6, 7]
    assert _steps(client, run_id, "train/tokens") == [(7, 70.0)]


def test_duplicate_steps_within_history_are_logged_once(tmp_path, uri):
    run_dir = _run_dir(tmp_path / "results")
    _write_history(run_dir, [_record(1, T0, 1.0), _record(2, T0 + 1, 0.5), _record(2, T0 + 2, 0.6)])
    client = _client(uri)
    run_id = sync_run_dir(run_dir, uri)
    assert _steps(client, run_id, "train/loss") == [(1, 1.0), (2, 0.5)]


def test_one_metric_history_lookup_per_history_key(tmp_path, uri, monkeypatch):
    from mlflow.tracking import MlflowClient

    run_dir = _run_dir(tmp_path / "results")
    _write_history(run_dir, [_record(s, T0 + s, 1.0 / s) for s in range(1, 4)])
    atomic_write_json(run_dir / "metrics.json", {"metrics": {"test/bpc": 1.5}, "step": 3, "timestamp_ms": T0 + 9})
    calls = []
    orig = MlflowClient.get_metric_history
    monkeypatch.setattr(
        MlflowClient, "get_metric_history", lambda self, run_id, key: calls.append(key) or orig(self, run_id, key)
    )
    sync_run_dir(run_dir, uri)
    assert calls == []  # a new run holds nothing: nothing to look up
    sync_run_dir(run_dir, uri)
    assert sorted(calls) == ["progress/tokens", "train/loss", "val/bpc"]  # not test/bpc, once each


# --------------------------------------------------------------------------- short jobs


def _runs(uri, family="fam"):
    exp = _client(uri).get_experiment_by_name(f"dagzoo-{family}")
    return [] if exp is None else _client(uri).search_runs([exp.experiment_id])


def test_a_job_shorter_than_first_sync_after_leaves_the_run_to_the_next_stage(tmp_path, uri, monkeypatch):
    """A short training never creates the MLflow run (no MLflow import); the run's evaluation
    mirrors it and closes it FINISHED at training's end time."""
    import dagzoo.tracking as tracking

    run_dir = _run_dir(tmp_path / "results")
    _write_history(run_dir, [_record(s, T0 + s, 1.0 / s) for s in range(1, 4)])
    clock = [1000.0]
    monkeypatch.setattr(tracking.time, "monotonic", lambda: clock[0])
    sync = LiveSync(run_dir, uri, first_sync_after=60.0)
    clock[0] += 59.0
    assert sync(status="RUNNING") is True  # not forced, too early: nothing happens
    atomic_write_json(run_dir / "train.json", {"metrics": {"train/loss": 0.3}, "step": 3, "timestamp_ms": T0 + 50})
    assert sync.finish() is True and not sync.synced
    assert _runs(uri) == []

    atomic_write_json(run_dir / "metrics.json", {"metrics": {"test/bpc": 1.5}, "step": 3, "timestamp_ms": T0 + 90})
    LiveSync(run_dir, uri)(force=True)  # what write_metrics does
    (run,) = _runs(uri)
    assert run.info.status == "FINISHED" and run.info.end_time == T0 + 50
    assert run.data.metrics["test/bpc"] == 1.5 and [
        s for s, _ in _steps(_client(uri), run.info.run_id, "train/loss")
    ] == [1, 2, 3]


def test_a_long_job_syncs_live_then_closes_its_run(tmp_path, uri, monkeypatch):
    import dagzoo.tracking as tracking

    run_dir = _run_dir(tmp_path / "results")
    _write_history(run_dir, [_record(1, T0 + 1, 1.0)])
    clock = [1000.0]
    monkeypatch.setattr(tracking.time, "monotonic", lambda: clock[0])
    sync = LiveSync(run_dir, uri, first_sync_after=60.0, interval=30.0)
    clock[0] += 61.0
    assert sync(status="RUNNING") and sync.synced
    assert [r.info.status for r in _runs(uri)] == ["RUNNING"]
    _write_history(run_dir, [_record(1, T0 + 1, 1.0), _record(2, T0 + 2, 0.5)])
    clock[0] += 10.0
    sync(status="RUNNING")  # within the interval: not logged yet
    assert _steps(_client(uri), _runs(uri)[0].info.run_id, "train/loss") == [(1, 1.0)]
    clock[0] += 25.0
    sync(status="RUNNING")
    assert _steps(_client(uri), _runs(uri)[0].info.run_id, "train/loss") == [(1, 1.0), (2, 0.5)]
    assert sync.finish()
    assert [r.info.status for r in _runs(uri)] == ["FINISHED"]


def test_a_failed_short_training_is_marked_failed(tmp_path, uri):
    run_dir = _run_dir(tmp_path / "results")
    sync = LiveSync(run_dir, uri, first_sync_after=60.0)
    assert sync(force=True, status="FAILED")
    assert [r.info.status for r in _runs(uri)] == ["FAILED"]


# --------------------------------------------------------------------------- run times


def test_a_run_starts_when_its_training_started_and_ends_when_it_ended(tmp_path, uri):
    """The UI's Duration is the training time: created after training (a short run mirrored by its
    evaluation), the run starts at train.json's end minus the training time."""
    run_dir = _run_dir(tmp_path / "results")
    _write_history(run_dir, [{"step": 0, "timestamp_ms": T0, "train_time_s": 0.0, "val/x": 1.0}])
    end = T0 + 90_000
    summary = {"train_time_s": 75.5, "steps": 10}
    atomic_write_json(
        run_dir / "train.json", {"metrics": {"train/x": 1}, "step": 10, "timestamp_ms": end, "summary": summary}
    )
    run = _client(uri).get_run(sync_run_dir(run_dir, uri))
    assert (run.info.start_time, run.info.end_time, run.info.status) == (end - 75_500, end, "FINISHED")


def test_a_run_mirrored_while_training_starts_at_its_first_history_point(tmp_path, uri):
    run_dir = _run_dir(tmp_path / "results")
    _write_history(
        run_dir,
        [
            {"step": 0, "timestamp_ms": T0, "train_time_s": 0.0, "val/x": 1.0},
            {"step": 5, "timestamp_ms": T0 + 4000, "train_time_s": 3.5, "train/loss": 2.0},
        ],
    )
    run_id = sync_run_dir(run_dir, uri, status="RUNNING")
    assert _client(uri).get_run(run_id).info.start_time == T0
    atomic_write_json(
        run_dir / "train.json", {"metrics": {}, "step": 10, "timestamp_ms": T0 + 9000, "summary": {"train_time_s": 8.0}}
    )
    assert sync_run_dir(run_dir, uri) == run_id  # the same run, closed at training's end
    info = _client(uri).get_run(run_id).info
    assert (info.start_time, info.end_time, info.status) == (T0, T0 + 9000, "FINISHED")
