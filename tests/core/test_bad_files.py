"""Damaged run files give one line naming the file, never a traceback: the report and a later
stage on truncated or wrong JSON, a garbage history line, an empty results tree."""

import json

import pytest

from conftest import ROOT, dagzoo, prepare_text_runs

pytestmark = pytest.mark.probe


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One evaluated n-gram run (seconds), copied afresh by each test that damages it."""
    tmp = tmp_path_factory.mktemp("run")
    data, runs, results = prepare_text_runs(tmp, {"kn2": {"model": "ngram", "order": 2}})
    run = runs["kn2"]
    common = ["--data", data, "--run-dir", run, "--results", results]
    dagzoo("train", "--spec", run / "spec.json", *common)
    dagzoo("text-evaluate", "--spec", run / "spec.json", *common)
    return data, run, results


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def _one_line_error(r, *needles):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("dagzoo: error:"), r.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize(
    "name, content, needle",
    [
        ("metrics.json", '{"metrics": {"test/bpc": 1.', "not valid JSON"),
        ("spec.json", '{"family": "te', "not valid JSON"),
        ("spec.json", "{}", "missing family"),
        ("metrics.json", '{"metrics": [1, 2]}', "'metrics' is not an object"),
        ("metrics.json", "[]", "expected a JSON object"),
    ],
)
def test_report_on_a_damaged_run_file_is_one_line(finished_run, tmp_path, name, content, needle):
    _, run, _ = finished_run
    results = tmp_path / "results"
    damaged = _copy(run, results / "text" / "kn2" / "0")
    (damaged / name).write_text(content)
    r = dagzoo("report", "--results", results, check=False)
    _one_line_error(r, str(damaged / name), needle)
    assert not (results / "report" / "report.md").exists(), "nothing that looks finished"


def test_a_garbage_history_line_is_skipped_with_a_warning(finished_run, tmp_path):
    _, run, _ = finished_run
    results = tmp_path / "results"
    damaged = _copy(run, results / "text" / "kn2" / "0")
    history = damaged / "history.jsonl"
    history.write_text(
        "not json at all\n" + history.read_text() + "[1, 2]\n" + '{"step": 1, "val/bpc": [1], "tokens": "a"}\n'
    )
    r = dagzoo("report", "--results", results, check=False)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert f"{history}:1: not a JSON object of numbers, line skipped" in r.stderr and f"{history}:3:" in r.stderr
    assert f"{history}:4:" in r.stderr


def test_a_results_tree_without_runs_reports_zero_runs(tmp_path):
    r = dagzoo("report", "--results", tmp_path / "empty", check=False)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "0 runs" in (tmp_path / "empty" / "report" / "report.md").read_text()
    assert json.loads((tmp_path / "empty" / "claims.json").read_text()) == {"claims": []}


def _spec_edit(**changes):
    return lambda text: json.dumps({**json.loads(text), **changes})


def _spec_without(key, inner=None):
    def edit(text):
        spec = json.loads(text)
        (spec if inner is None else spec[key]).pop(key if inner is None else inner)
        return json.dumps(spec)

    return edit


@pytest.mark.parametrize(
    "name, content, needle",
    [
        ("train.json", '{"metrics": ', "not valid JSON"),
        ("train.json", "{}", "missing metrics, step"),
        ("train.json", '{"metrics": [], "step": 1}', "metrics is [], not an object"),
        ("train.json", '{"metrics": {}, "step": "1"}', "step is '1', not an integer"),
        ("spec.json", '{"family": "text"}', "not a run spec"),
        ("spec.json", _spec_edit(seed="abc"), "not a run spec (seed is 'abc', not an integer)"),
        ("spec.json", _spec_edit(seed=True), "not a run spec (seed is True, not an integer)"),
        ("spec.json", _spec_edit(seed=-1), "not a run spec (seed is -1, not >= 0)"),
        ("spec.json", _spec_edit(experiment=None), "not a run spec (experiment is None, not a string)"),
        ("spec.json", _spec_edit(model=["ngram"]), "not a run spec (model is ['ngram'], not a string)"),
        ("spec.json", _spec_edit(config_hash=None), "not a run spec (config_hash is None, not a string)"),
        # a family's own fields of a hand-written spec: its data and evaluation settings
        ("spec.json", _spec_without("eval"), "not a text run spec (eval is missing)"),
        ("spec.json", _spec_without("eval", "window"), "not a text run spec (eval.window is missing)"),
        (
            "spec.json",
            _spec_edit(eval={"window": "256", "val_tokens": 512}),
            "not a text run spec (eval.window is '256', not a number)",
        ),
        (
            "spec.json",
            _spec_edit(eval={"window": None, "val_tokens": 512}),
            "not a text run spec (eval.window is None, not a number)",
        ),
        ("model.npz", b"PK\x03\x04 cut short", "model.npz is not a readable .npz archive"),
        ("model.npz", b"", "model.npz is not a readable .npz archive"),
    ],
)
def test_a_stage_on_a_damaged_run_file_is_one_line(finished_run, tmp_path, name, content, needle):
    data, run, results = finished_run
    damaged = _copy(run, tmp_path / "run")
    path = damaged / name
    if callable(content):
        path.write_text(content(path.read_text()))
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    # the evaluation reads spec-evaluate.json beside a spec.json of the same training: a damaged
    # spec.json is given to training
    stage = "train" if name == "spec.json" else "text-evaluate"
    r = dagzoo(
        stage, "--spec", damaged / "spec.json", "--data", data, "--run-dir", damaged, "--results", results, check=False
    )
    _one_line_error(r, needle)


def test_a_truncated_model_file_is_one_line(finished_run, tmp_path):
    data, run, results = finished_run
    damaged = _copy(run, tmp_path / "run")
    model = damaged / "model.npz"
    model.write_bytes(model.read_bytes()[:100])
    r = dagzoo(
        "text-evaluate",
        "--spec",
        damaged / "spec.json",
        "--data",
        data,
        "--run-dir",
        damaged,
        "--results",
        results,
        check=False,
    )
    _one_line_error(r, f"{model} is not a readable .npz archive", f"rerun the training of {damaged}")


def test_training_on_the_wrong_data_directory_is_one_line_and_leaves_the_run_alone(finished_run, tmp_path):
    """--data naming the corpus directory (whose manifest.json is the corpus's) instead of its
    tokenized char/ below it: refused before the run directory is touched."""
    data, run, results = finished_run
    kept = _copy(run, tmp_path / "run")
    before = {p.name: p.read_bytes() for p in kept.iterdir() if p.is_file()}
    other = {**json.loads((kept / "spec.json").read_text()), "experiment": "kn5", "config_hash": "0ther"}
    r = dagzoo(
        "train",
        "--spec",
        json.dumps(other),
        "--data",
        data.parent,
        "--run-dir",
        kept,
        "--results",
        results,
        check=False,
    )
    _one_line_error(
        r, f"{data.parent / 'manifest.json'} is not the manifest this stage reads", "--data is the tokenized directory"
    )
    assert {p.name: p.read_bytes() for p in kept.iterdir() if p.is_file()} == before


def test_samples_of_the_wrong_shape_are_one_line(finished_run, tmp_path):
    data, run, results = finished_run
    damaged = _copy(run, tmp_path / "run")
    common = ["--spec", damaged / "spec.json", "--data", data, "--run-dir", damaged, "--results", results]
    dagzoo("text-sample", *common, "--samples", "2", "--length", "16")
    for content, needle in [
        ('{"samples": 3}', "missing tokens"),
        ('{"tokens": [[1, 2], [3]]}', "equal-length"),
        ('{"tokens": [[1, 99999]]}', "token ids"),
    ]:
        (damaged / "samples.json").write_text(content)
        r = dagzoo("text-genppl", *common, "--evaluator", damaged, check=False)
        _one_line_error(r, str(damaged / "samples.json"), needle)


def test_report_refuses_a_metrics_file_of_another_training(finished_run, tmp_path):
    """The run directory was trained anew (spec.json replaced) and not evaluated since: its old
    metrics.json must not be reported under the new spec."""
    _, run, _ = finished_run
    results = tmp_path / "results"
    damaged = _copy(run, results / "text" / "kn2" / "0")
    (damaged / "spec.json").write_text(_spec_edit(config_hash="0ther")((damaged / "spec.json").read_text()))
    r = dagzoo("report", "--results", results, "--runs", damaged, check=False)  # as the DAG names its runs
    _one_line_error(r, "evaluates another training of this run directory", "rerun the run's evaluation")
    r = dagzoo("report", "--results", results, check=False)  # whatever the tree holds: the run is left out
    assert r.returncode == 0 and "left out of the report until it is evaluated" in r.stderr, r.stderr
    assert "0 runs" in (results / "report" / "report.md").read_text()


def test_report_refuses_a_metric_that_is_not_a_number(finished_run, tmp_path):
    _, run, _ = finished_run
    results = tmp_path / "results"
    damaged = _copy(run, results / "text" / "kn2" / "0")
    doc = json.loads((damaged / "metrics.json").read_text())
    doc["metrics"]["test/bpc"] = "abc"
    (damaged / "metrics.json").write_text(json.dumps(doc))
    r = dagzoo("report", "--results", results, check=False)
    _one_line_error(r, "metric 'test/bpc' is 'abc', not a number")
    assert not (results / "summary.parquet").exists()


def test_a_report_elsewhere_or_of_some_runs_leaves_the_dag_tables_alone(finished_run, tmp_path):
    _, run, _ = finished_run
    results = tmp_path / "results"
    _copy(run, results / "text" / "kn2" / "0")
    dagzoo("report", "--results", results)
    tables = {
        name: (results / name).read_bytes()
        for name in ("summary.parquet", "summary_by_experiment.parquet", "claims.json")
    }
    mine = tmp_path / "mine"
    dagzoo("report", "--results", results, "--out", mine, "--runs")
    assert "0 runs" in (mine / "report.md").read_text() and (mine / "summary.parquet").exists()
    assert {name: (results / name).read_bytes() for name in tables} == tables
    r = dagzoo("report", "--results", results, "--out", mine, "--runs", run, run, check=False)
    _one_line_error(r, f"--runs: {run} is given twice")


def test_every_spec_a_shipped_config_writes_passes_the_hand_written_spec_check(tmp_path):
    # the check of a spec given by hand must never refuse what the DAG itself passes
    from dagzoo.config import experiment_specs, load_config, stage_spec, validate_config
    from dagzoo.stages import read_run_spec

    configs = sorted(p for p in (ROOT / "config").glob("*.yaml") if p.name != "schema.yaml")
    checked = 0
    for path in configs:
        for spec in experiment_specs(validate_config(load_config(path), check_files=False)):
            for stage in ("train", "evaluate", "sample"):
                read_run_spec(json.dumps(stage_spec(spec, stage)))
                checked += 1
    assert len(configs) >= 9 and checked > 200
