"""The results page (dagzoo.docgen.results) on a small hand-made results tree: no training."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from dagzoo.errors import DataError

COMMIT = "0123456789abcdef0123456789abcdef01234567"
PROVENANCE = {
    "rule": "train",
    "git_commit": COMMIT,
    "dagzoo_version": "0.1.0",
    "torch_version": "2.13.0+cpu",
    "python": "3.11.7",
    "host": "node1",
    "invocation_id": "manual",
    "slurm_job_id": None,
    "started": "2026-01-02T03:04:05+0000",
    "cuda": False,
    "cpu_model": "Test CPU 9000",
    "cpu_count": 8,
    "threads": 2,
}
DAG = {
    "started": "2026-01-02T03:00:00+0000",
    "finished": "2026-01-02T03:27:41+0000",
    "wall_s": 1661.25,
    "cores": 2,
    "jobs": 31,
    "configfiles": ["config/config.yaml"],
    "git_commit": COMMIT,
    "dagzoo_version": "0.1.0",
    "torch_version": "2.13.0+cpu",
    "python": "3.11.7",
    "host": "node1",
    "cpu_model": "Test CPU 9000",
    "cpu_count": 8,
}

# (family, experiment, model, seed, extra fields, metrics): values with many digits, so that a
# number on the page matches a summary value by chance only rarely
TEXT = [
    ("kn3", "kneser_ney", True, {0: 2.3456789, 1: 2.3611111}, None),
    ("mdlm", "mdlm", False, {0: 2.7193456, 1: 2.6654321}, {0: 0.0123457, 1: 0.0134568}),
]
POINTS = [
    ("pointnet", "pointnet", {0: (0.8123457, 0.7234568), 1: (0.8345679, 0.7456790)}),
    ("dgcnn", "dgcnn", {0: (0.8765432, 0.8012346)}),
]


def _text_metrics(bpc: float, se: float | None, seed: int, exact: bool) -> dict:
    return {
        "test/bpc": bpc,
        "test/bpc_se": se if se is not None else float("nan"),
        "test/nll": bpc * math.log(2) * 1.0370370,
        "test/ppl": 2 ** (bpc * 1.0370370),
        "test/tokens": 4096,
        "test/chars": 4096,
        "train/tokens": 123456.0 if exact else 2048000.0 + 512 * seed,
        "train/flops": float("nan") if exact else 3.4567e12 + 1e9 * seed,
        "train/time_s": 1.2345 + seed * 0.1111 if exact else 87.654 + seed * 3.21,
        "train/params": float("nan") if exact else 812345.0,
    }


def _points_metrics(oa: float, macc: float, seed: int) -> dict:
    return {
        "test/oa": oa,
        "test/oa_se": 0.0123457 + 0.001 * seed,
        "test/macc": macc,
        "test/macc_se": 0.0145679,
        "test/oa_so3": oa / 3.1,
        "val/oa": oa * 1.0123,
        "train/params": 345678.0,
        "train/clouds_per_s": 456.789 + 10 * seed,
    }


def _write_run(
    results: Path, family: str, exp: str, model: str, seed: int, metrics: dict, extra: dict, provenance: dict
) -> dict:
    run = results / family / exp / str(seed)
    run.mkdir(parents=True)
    config_hash = f"{family}{exp}"[:16]
    spec = {"family": family, "experiment": exp, "model": model, "seed": seed, "config_hash": config_hash, "params": {}}
    (run / "spec.json").write_text(json.dumps(spec))
    plain = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}
    (run / "metrics.json").write_text(json.dumps({"metrics": plain, "config_hash": config_hash, "window": 32, **extra}))
    (run / "history.jsonl").write_text("")
    for stage in ("train", "evaluate"):
        (run / f"provenance-{stage}.json").write_text(json.dumps({**provenance, "stage": stage}))
    return {
        "family": family,
        "experiment": exp,
        "model": model,
        "seed": seed,
        "config_hash": config_hash,
        "run_dir": f"results/{family}/{exp}/{seed}",
        **metrics,
    }


CLAIMS = [
    {"name": "KN beats MDLM", "source": "a test", "lhs": "text/kn3/test/bpc", "op": "<", "rhs": "text/mdlm/test/bpc"},
    {"name": "PointNet OA above 0.8", "lhs": "points/pointnet/test/oa", "op": ">", "rhs": 0.8},
    {"name": "typo", "lhs": "points/dgcnn/test/oa_typo", "op": ">", "rhs": 0.5},
]


def make_tree(root: Path, dag: dict | None = DAG, provenance: dict = PROVENANCE, report: bool = True) -> Path:
    """A finished results tree of two families (text, points), three claims and the files the DAG
    writes (summary.parquet, summary_by_experiment.parquet, claims.json, optionally dag.json and
    report/report.md, the latter by dagzoo's own report from the run directories)."""
    from dagzoo.claims import evaluate_claims, write_claims
    from dagzoo.report import aggregate, write_report

    results = root / "results"
    rows = []
    for exp, model, exact, bpcs, ses in TEXT:
        for seed, bpc in bpcs.items():
            metrics = _text_metrics(bpc, ses[seed] if ses else None, seed, exact)
            rows.append(
                {
                    **_write_run(results, "text", exp, model, seed, metrics, {"exact_likelihood": exact}, provenance),
                    "likelihood": "exact" if exact else "bound",
                    "genppl_evaluator": None,
                }
            )
    for exp, model, accs in POINTS:
        for seed, (oa, macc) in accs.items():
            rows.append(
                _write_run(results, "points", exp, model, seed, _points_metrics(oa, macc, seed), {}, provenance)
            )
    df = pd.DataFrame(rows).sort_values(["family", "experiment", "seed"]).reset_index(drop=True)
    df.to_parquet(results / "summary.parquet", index=False)
    aggregate(df).to_parquet(results / "summary_by_experiment.parquet", index=False)
    write_claims(results / "claims.json", evaluate_claims(CLAIMS, df))
    if dag is not None:
        (results / "dag.json").write_text(json.dumps(dag))
    if report:  # the DAG's report of the same runs, written elsewhere so the tables above stay ours
        write_report(results, out=results / "report", tables=root / "report_tables", claims=CLAIMS)
    return results


# ---------------------------------------------------------------------------------- checking numbers
_NUMBER = re.compile(r"(?<![\w./=-])-?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?(?P<si>[kMGTP])?(?![\w/])")
_SI = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}


def tables(markdown: str) -> list[list[str]]:
    """The data rows of every Markdown table (header and separator rows left out)."""
    rows, in_table = [], False
    for line in markdown.splitlines():
        if line.startswith("|"):
            if in_table and not set(line) <= set("|-: "):
                rows.append(line)
            in_table = True
        else:
            in_table = False
    return rows


def summary_values(results: Path) -> list[float]:
    """Every number the tables may show: the summary's values, the per-experiment means, stds and
    seed counts, the claims' values, and each as a percentage."""
    values = []
    for name in ("summary.parquet", "summary_by_experiment.parquet"):
        df = pd.read_parquet(results / name)
        values += [float(v) for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) for v in df[c].dropna()]
    for claim in json.loads((results / "claims.json").read_text())["claims"]:
        values += [float(v) for v in claim.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return values + [100 * v for v in values]


def unmatched_numbers(page: str, values: list[float]) -> list[str]:
    """Numbers in the page's tables that no value rounds to, at the precision shown."""
    bad = []
    for row in tables(page):
        for m in _NUMBER.finditer(row):
            token = m.group(0)
            scale = _SI[m["si"]] if m["si"] else 1.0
            digits = token.rstrip("kMGTP").replace(",", "")
            shown = float(digits) * scale
            mantissa = digits.split("e")[0]
            decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
            exponent = int(digits.split("e")[1]) if "e" in digits else 0
            tolerance = 0.5 * 10.0 ** (exponent - decimals) * scale * (1 + 1e-9)
            if not any(abs(v - shown) <= tolerance for v in values):
                bad.append(f"{token} in {row}")
    return bad


# ---------------------------------------------------------------------------------- tests
def test_page_header_and_numbers(tmp_path, capsys):
    from dagzoo.docgen.results import table_rows, write_results_page

    results = make_tree(tmp_path)
    out = write_results_page(results, tmp_path / "docs" / "results" / "default.md")
    page = out.read_text()
    assert page.startswith("# Results: default\n")
    header = page.split("## ", 1)[0]
    assert "- config: `config/config.yaml`" in header
    assert f"- code (git commit): `{COMMIT}`" in header and "differ" not in header
    assert "2026-01-02" in header and "Test CPU 9000" in header and "logical CPUs: 8" in header
    assert "--cores 2" in header and "threads per job: 2 (14 stage records)" in header
    assert "torch: 2.13.0+cpu; dagzoo: 0.1.0" in header and "host: node1" in header
    assert (
        "- wall time: 27 min 41 s (1661 s), of the last DAG invocation that ran jobs (dag.json; 31 jobs ran)" in header
    )
    assert "- runs: 7 (points 3, text 4) in 4 experiments; seeds 0, 1" in header

    # the body: the claims table and both families' tables, every number from the summary
    assert "## Claims" in page and "## Text" in page and "## Point clouds" in page
    assert "**HELD**" in page and "**MISSING**" in page
    values = summary_values(results)
    rows = tables(page)
    assert len(rows) >= 3 + 2 + 2  # claims, text, points
    assert unmatched_numbers(page, values) == []
    # ... the check can fail: a changed digit is caught
    pointnet = next(r for r in rows if r.startswith("| pointnet |"))
    assert unmatched_numbers(page.replace(pointnet, pointnet.replace("82.3", "82.9")), values)

    # the same tables as the DAG's report of these runs, without a warning
    report = table_rows((results / "report" / "report.md").read_text())
    assert table_rows(page) == {k: v for k, v in report.items() if k in table_rows(page)}
    assert "warning" not in capsys.readouterr().err
    # no figures by default: a note instead of a link, nothing copied
    assert "![" not in page and "*Figure `report/text_val_bpc.png`" in page
    assert not (out.parent / "default").exists()


def test_missing_dag_json_is_not_recorded(tmp_path):
    from dagzoo.docgen.results import write_results_page

    results = make_tree(tmp_path, dag=None, report=False)
    page = write_results_page(results, tmp_path / "page.md", title="Nightly").read_text()
    assert page.startswith("# Nightly\n")
    assert "- wall time: not recorded (no dag.json)" in page
    assert "- config: not recorded (no dag.json)" in page
    # the other facts come from the runs' provenance
    assert f"`{COMMIT}`" in page and "torch: 2.13.0+cpu" in page and "Test CPU 9000" in page
    assert "2026-01-02 (the runs' stages started from 2026-01-02T03:04:05+0000" in page
    assert "## Text" in page


def test_mixed_commits_and_old_provenance_are_listed(tmp_path):
    from dagzoo.docgen.results import write_results_page

    old = {k: v for k, v in PROVENANCE.items() if k not in ("cpu_model", "cpu_count", "threads")}
    results = make_tree(tmp_path, dag={**DAG, "git_commit": "feedface-dirty"}, provenance=old, report=False)
    page = write_results_page(results, tmp_path / "page.md").read_text()
    line = next(x for x in page.splitlines() if x.startswith("- code (git commit):"))
    assert "**differ**" in line and "`feedface-dirty` (dag.json)" in line
    assert f"`{COMMIT}` (14 of 14 stage records)" in line and "uncommitted changes" in line
    # the CPU comes from dag.json; the stage records of older code do not have it
    assert "CPU: Test CPU 9000; not recorded in 14 of 14 stage records" in page
    assert "threads per job not recorded" in page


def test_report_written_by_other_code_warns(tmp_path, capsys):
    from dagzoo.docgen.results import write_results_page

    results = make_tree(tmp_path)
    report = results / "report" / "report.md"
    text = report.read_text()
    row = next(x for x in text.splitlines() if x.startswith("| kn3 |"))
    report.write_text(text.replace(row, row.replace("| kn3 |", "| kn3 (old) |")))
    write_results_page(results, tmp_path / "page.md")
    err = capsys.readouterr().err
    assert "warning" in err and "section 'Text', table line 3" in err


def test_figures_are_copied_on_request(tmp_path):
    from dagzoo.docgen.results import write_results_page

    results = make_tree(tmp_path)
    out = write_results_page(results, tmp_path / "docs" / "default.md", figures=True)
    page = out.read_text()
    assert "![validation BPC vs training tokens](default/text_val_bpc.png)" in page
    assert (out.parent / "default" / "text_val_bpc.png").read_bytes() == (
        results / "report" / "text_val_bpc.png"
    ).read_bytes()


def test_clear_errors(tmp_path):
    from dagzoo.docgen.results import write_results_page

    with pytest.raises(DataError, match="no such results folder"):
        write_results_page(tmp_path / "nowhere", tmp_path / "page.md")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no summary.parquet"):
        write_results_page(tmp_path / "empty", tmp_path / "page.md")
    pd.DataFrame(columns=["family", "experiment", "model", "seed", "run_dir"]).to_parquet(
        tmp_path / "empty" / "summary.parquet"
    )
    with pytest.raises(DataError, match="summary.parquet: no runs"):
        write_results_page(tmp_path / "empty", tmp_path / "page.md")
    assert not (tmp_path / "page.md").exists()
