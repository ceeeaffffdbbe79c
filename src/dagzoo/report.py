"""The report, for every registered family:

- ``summary.parquet``: one row per (family, experiment, seed) with every metric of the run;
- ``summary_by_experiment.parquet`` (and ``report/summary.csv``): one row per experiment with
  ``<metric>_mean``, ``<metric>_std`` (over seeds, ddof 1; empty for one seed) and ``n_seeds``;
- ``claims.json``: the config's declared claims, each held / failed / inconclusive;
- ``report/report.md``: the claims table first, then each family's section (its tables,
  findings and plots).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from dagzoo.errors import DataError
from dagzoo.io import RUN_SPEC_KEYS, atomic_write_text, atomic_writer, read_json_object, read_jsonl

ID_COLUMNS = ["family", "experiment", "model", "seed", "config_hash", "run_dir"]
GROUP_COLUMNS = ["family", "experiment", "model"]


# ---------------------------------------------------------------------------------- formatting
def fmt(x, digits=4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, (int, np.integer)) or (isinstance(x, float) and x.is_integer() and abs(x) >= 1000):
        return si(float(x)) if abs(x) >= 1e5 else f"{int(x)}"
    return f"{x:.{digits}g}" if abs(x) < 1e5 else si(x)


def si(x: float) -> str:
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def mean_std(df: pd.DataFrame, col: str) -> str:
    if col not in df or df[col].isna().all():
        return "—"
    mean, n = df[col].mean(), df[col].count()
    if n > 1:
        return f"{mean:.4f} ± {df[col].std(ddof=1):.4f}"
    return fmt(float(mean))


# ---------------------------------------------------------------------------------- tables
def collect(run_dirs: list[Path], listed: bool = True) -> tuple[pd.DataFrame, dict[str, list[dict]]]:
    """One row per finished run (a run directory with metrics.json) and its history. A run
    trained anew and not evaluated since is refused when `listed` (the DAG names its runs, all
    evaluated), else left out with a warning (a report of whatever the results tree holds)."""
    import sys

    from dagzoo.family import get_family

    rows, histories = [], {}
    for d in map(Path, run_dirs):
        if not (d / "metrics.json").exists():
            continue
        doc = read_json_object(d / "metrics.json", ["metrics"])
        spec = read_json_object(d / "spec.json", RUN_SPEC_KEYS)
        if not isinstance(doc["metrics"], dict):
            raise DataError(f"{d / 'metrics.json'}: 'metrics' is not an object; rerun the run's evaluation")
        if doc.get("config_hash", spec["config_hash"]) != spec["config_hash"]:  # trained anew, not evaluated since
            problem = (
                f"{d / 'metrics.json'}: evaluates another training of this run directory (config_hash "
                f"{doc['config_hash']}; spec.json has {spec['config_hash']})"
            )
            if listed:
                raise DataError(f"{problem}; rerun the run's evaluation")
            print(f"[dagzoo] warning: {problem}: left out of the report until it is evaluated", file=sys.stderr)
            continue
        wrong = next(((k, v) for k, v in doc["metrics"].items() if isinstance(v, (str, bool))), None)
        if wrong:  # every family's metric is a number (lists and objects are details, not columns)
            raise DataError(
                f"{d / 'metrics.json'}: metric {wrong[0]!r} is {wrong[1]!r}, not a number; rerun the run's evaluation"
            )
        metrics = {k: v for k, v in doc["metrics"].items() if v is None or isinstance(v, (int, float))}
        fam = get_family(spec.get("family"), where=f"{d / 'spec.json'}: family")
        fields = fam.summary_fields(d, spec, metrics)
        rows.append(
            {
                "family": spec["family"],
                "experiment": spec["experiment"],
                "model": spec["model"],
                "seed": spec["seed"],
                "config_hash": spec["config_hash"],
                "run_dir": str(d),
                **fields,
                **metrics,
            }
        )
        histories[str(d)] = read_jsonl(d / "history.jsonl", numeric=True)
    df = pd.DataFrame(rows)
    if not df.empty:
        df = df.sort_values(["family", "experiment", "seed"]).reset_index(drop=True)
    return df, histories


def metric_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c not in ID_COLUMNS and pd.api.types.is_numeric_dtype(df[c])]


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """One row per experiment: every metric's mean and std over seeds (std empty for one seed)."""
    if df.empty:
        return pd.DataFrame(columns=[*GROUP_COLUMNS, "n_seeds"])
    cols = metric_columns(df)
    grouped = df.groupby(GROUP_COLUMNS, sort=True)
    out = grouped.size().rename("n_seeds").to_frame()
    means = grouped[cols].mean().add_suffix("_mean")
    stds = grouped[cols].std(ddof=1).add_suffix("_std")
    interleaved = [c for pair in zip(means.columns, stds.columns) for c in pair]
    return pd.concat([out, means, stds], axis=1)[["n_seeds", *interleaved]].reset_index()


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    with atomic_writer(path) as f:
        df.to_parquet(f, index=False)


# ---------------------------------------------------------------------------------- the report
def write_report(
    results: Path,
    out: Path | None = None,
    run_dirs: list[Path] | None = None,
    claims: list[dict] | None = None,
    tables: Path | None = None,
    listed: bool | None = None,
) -> list[Path]:
    """The report of `run_dirs` (default: every run under `results`) into `out` (default:
    <results>/report), and its tables (summary.parquet, summary_by_experiment.parquet,
    claims.json) into `tables` (default: `results`). `listed`: the runs were named (default: when
    `run_dirs` is given), see `collect`."""
    from dagzoo.claims import claims_table, evaluate_claims, write_claims
    from dagzoo.family import families
    from dagzoo.sweep_report import sweep_section
    from dagzoo.tracking import find_run_dirs

    results = Path(results)
    out = out or results / "report"
    tables = tables or results
    listed = run_dirs is not None if listed is None else listed
    run_dirs = run_dirs if run_dirs is not None else find_run_dirs(results)
    df, histories = collect(run_dirs, listed)
    agg = aggregate(df)
    claim_results = evaluate_claims(claims or [], df)
    md = ["# dagzoo report", "", f"{len(df)} runs from `{results}`.", ""]
    if claim_results:
        md += ["## Claims", "", *claims_table(claim_results), ""]
    out.mkdir(parents=True, exist_ok=True)
    plots = []
    for fam in families().values():
        if df.empty or not (df.family == fam.name).any():
            continue
        section, family_plots = fam.report_section(df, histories, results, out)
        md += section
        plots += family_plots
    section, sweep_plots = sweep_section(df, out)
    md += section
    plots += sweep_plots
    # the tables last, once every section is made: a report that fails replaces none of them
    tables.mkdir(parents=True, exist_ok=True)
    summary, by_exp, claims_path = (
        tables / "summary.parquet",
        tables / "summary_by_experiment.parquet",
        tables / "claims.json",
    )
    _write_parquet(df, summary)
    _write_parquet(agg, by_exp)
    atomic_write_text(out / "summary.csv", agg.to_csv(index=False))
    write_claims(claims_path, claim_results)
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")
    return [summary, by_exp, out / "summary.csv", claims_path, out / "report.md", *plots]
