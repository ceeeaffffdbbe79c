"""Damaged run files give one line naming the file, never a traceback: the report and a later
stage on truncated or wrong JSON, a garbage history line, an empty results tree."""

import json

import pytest

from conftest import dagzoo, prepare_text_runs

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


@pytest.mark.parametrize("name, content, needle", [
    ("metrics.json", '{"metrics": {"test/bpc": 1.', "not valid JSON"),
    ("spec.json", '{"family": "te', "not valid JSON"),
    ("spec.json", "{}", "missing family"),
    ("metrics.json", '{"metrics": [1, 2]}', "'metrics' is not an object"),
    ("metrics.json", "[]", "expected a JSON object"),
])
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
    history.write_text("not json at all\n" + history.read_text() + "[1, 2]\n")
    r = dagzoo("report", "--results", results, check=False)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert f"{history}:1: not a JSON object, line skipped" in r.stderr and f"{history}:3:" in r.stderr


def test_a_results_tree_without_runs_reports_zero_runs(tmp_path):
    r = dagzoo("report", "--results", tmp_path / "empty", check=False)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "0 runs" in (tmp_path / "empty" / "report" / "report.md").read_text()
    assert json.loads((tmp_path / "empty" / "claims.json").read_text()) == {"claims": []}


@pytest.mark.parametrize("name, content, needle", [
    ("train.json", '{"metrics": ', "not valid JSON"),
    ("spec.json", '{"family": "text"}', "not a run spec"),
])
def test_a_stage_on_a_damaged_run_file_is_one_line(finished_run, tmp_path, name, content, needle):
    data, run, results = finished_run
    damaged = _copy(run, tmp_path / "run")
    (damaged / name).write_text(content)
    r = dagzoo("text-evaluate", "--spec", damaged / "spec.json", "--data", data, "--run-dir", damaged,
               "--results", results, check=False)
    _one_line_error(r, needle)
