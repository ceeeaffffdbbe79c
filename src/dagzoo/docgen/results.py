"""A results page (e.g. docs/results/default.md) generated from a finished results tree, so that
the numbers in the docs come from runs and are never copied by hand.

The header says what produced the runs: config file(s), the code's git commit(s), the date, the
CPU, cores and threads, torch and dagzoo versions and the DAG's wall time. It reads
<results>/dag.json (written when a DAG invocation that ran jobs finishes) and every reported run's
provenance-<stage>.json; a tree can mix runs of several commits or machines, so every distinct
value is listed with how many stage records carry it.

The body is the report's claims table and family sections, made by the functions that write
report/report.md from the same summary.parquet and claims.json, so every number equals the one in
the report; when report.md exists its tables are compared with the page's and a difference (a
report written by other code) is printed as a warning.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from dagzoo.errors import DataError
from dagzoo.io import atomic_write_text, read_json_object, read_jsonl

if TYPE_CHECKING:
    import pandas as pd

_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)\)$")
_TIMING = re.compile(r"\[dagzoo\] timing: command=\S+ start=([\d.]+) end=([\d.]+) threads=(\d+)")
_ID_COLUMNS = ("family", "experiment", "seed", "run_dir")


@dataclass
class ResultsTree:
    """What a results page is made of, read from one results folder."""

    root: Path
    #: summary.parquet, its run_dir column pointing into `root` (<family>/<experiment>/<seed>)
    summary: pd.DataFrame
    #: summary_by_experiment.parquet (None when absent)
    by_experiment: pd.DataFrame | None
    #: claims.json's verdicts, in the config's order
    claims: list[dict]
    #: dag.json (None when absent: a tree from code that did not write it)
    dag: dict | None
    #: every provenance-<stage>.json of the reported runs
    provenance: list[dict]
    #: report/report.md (None when absent)
    report_md: str | None


# ---------------------------------------------------------------------------------- reading
def load_tree(results: Path) -> ResultsTree:
    """The files of a finished results tree; a DataError names what is missing."""
    results = Path(results)
    if not results.is_dir():
        raise DataError(f"{results}: no such results folder")
    summary_path = results / "summary.parquet"
    if not summary_path.exists():
        raise DataError(
            f"{results}: no summary.parquet, so no finished runs to document (the DAG's report "
            f"rule writes it; or run `dagzoo report --results {results}`)"
        )
    df = _read_parquet(summary_path)
    missing = [c for c in _ID_COLUMNS if c not in df.columns]
    if df.empty or missing:
        why = "no runs" if df.empty else f"no column {', '.join(missing)}"
        raise DataError(f"{summary_path}: {why}; nothing to document (rerun the DAG's report)")
    df = df.copy()
    df["run_dir"] = [str(_run_dir(results, r)) for r in df[list(_ID_COLUMNS)].itertuples(index=False)]
    by_exp_path = results / "summary_by_experiment.parquet"
    by_exp = _read_parquet(by_exp_path) if by_exp_path.exists() else None
    claims_path = results / "claims.json"
    claims = read_json_object(claims_path, {"claims": list})["claims"] if claims_path.exists() else []
    dag_path = results / "dag.json"
    dag = read_json_object(dag_path) if dag_path.exists() else None
    provenance = [
        read_json_object(p) for d in dict.fromkeys(df.run_dir) for p in sorted(Path(d).glob("provenance-*.json"))
    ]
    report_path = results / "report" / "report.md"
    report_md = report_path.read_text(encoding="utf-8") if report_path.exists() else None
    return ResultsTree(results, df, by_exp, claims, dag, provenance, report_md)


def _read_parquet(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as e:  # pyarrow's errors for a damaged file are ValueError or OSError
        raise DataError(f"{path}: cannot be read ({type(e).__name__}: {e}); rerun the DAG's report") from None


def _run_dir(results: Path, row) -> Path:
    """The run's folder in this tree: summary.parquet stores it as the DAG saw it (relative to the
    DAG's working directory), and a copied or moved tree keeps the <family>/<experiment>/<seed> layout."""
    here = results / str(row.family) / str(row.experiment) / str(int(row.seed))
    return here if here.exists() or not Path(row.run_dir).exists() else Path(row.run_dir)


# ---------------------------------------------------------------------------------- header
def _parse_time(text) -> datetime | None:
    if not isinstance(text, str):
        return None
    for parse in (lambda s: datetime.strptime(s, "%Y-%m-%dT%H:%M:%S%z"), datetime.fromisoformat):
        try:
            return parse(text)
        except ValueError:
            continue
    return None


def duration(seconds: float) -> str:
    """'1 h 02 min 03 s (3723 s)': readable, with the exact seconds beside it."""
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    text = f"{h} h {m:02d} min {sec:02d} s" if h else f"{m} min {sec:02d} s" if m else f"{sec} s"
    return f"{text} ({seconds:.0f} s)" if h or m else text


def distinct(tree: ResultsTree, key: str, code: bool = False) -> str:
    """Every value of `key` in dag.json and the runs' provenance: one value when they agree,
    else each with where it comes from (a tree that mixes runs)."""
    quote = (lambda v: f"`{v}`") if code else str
    counts = Counter(str(p[key]) for p in tree.provenance if p.get(key) is not None)
    dag_value = tree.dag.get(key) if tree.dag else None
    values = list(
        dict.fromkeys(([str(dag_value)] if dag_value is not None else []) + [v for v, _ in counts.most_common()])
    )
    if not values:
        return "not recorded"
    n, unrecorded = len(tree.provenance), len(tree.provenance) - sum(counts.values())
    if len(values) == 1:
        text = quote(values[0])
    else:
        parts = []
        for v in values:
            where = (["dag.json"] if dag_value is not None and str(dag_value) == v else []) + (
                [f"{counts[v]} of {n} stage records"] if counts[v] else []
            )
            parts.append(f"{quote(v)} ({', '.join(where)})")
        text = "**differ**: " + "; ".join(parts)
    if unrecorded:  # older code's records lack the newer keys
        text += f"; not recorded in {unrecorded} of {n} stage records"
    return text


def _job_timings(results: Path) -> list[tuple[float, float, int]]:
    """(start, end, threads) of every job's timing line in <results>/logs (dagzoo.timing)."""
    jobs = []
    for log in sorted((results / "logs").rglob("*.log")):
        for m in _TIMING.finditer(log.read_text(encoding="utf-8", errors="replace")):
            jobs.append((float(m[1]), float(m[2]), int(m[3])))
    return jobs


def header_lines(tree: ResultsTree) -> list[str]:
    """The facts of the runs as a Markdown list (not a table: the tables are the results)."""
    dag, df = tree.dag or {}, tree.summary
    configs = dag.get("configfiles")
    config = (
        ", ".join(f"`{c}`" for c in configs)
        if isinstance(configs, list) and configs
        else "not recorded (no dag.json)"
        if tree.dag is None
        else "not recorded"
    )
    commits = distinct(tree, "git_commit", code=True)
    if "-dirty" in commits:
        commits += " (-dirty: the checkout had uncommitted changes to tracked files)"
    lines = [
        f"- config: {config}",
        f"- code (git commit): {commits}",
        f"- date: {_date(tree)}",
        f"- CPU: {distinct(tree, 'cpu_model')}; logical CPUs: {distinct(tree, 'cpu_count')}",
        f"- cores and threads: {_cores(tree)}",
        (
            f"- torch: {distinct(tree, 'torch_version')}; dagzoo: {distinct(tree, 'dagzoo_version')}; "
            f"python: {distinct(tree, 'python')}"
        ),
        f"- host: {distinct(tree, 'host')}",
        f"- wall time: {_wall(tree)}",
    ]
    per_family = ", ".join(f"{fam} {n}" for fam, n in df.groupby("family", sort=False).size().items())
    n_exp = df.groupby(["family", "experiment"]).ngroups
    seeds = ", ".join(str(int(s)) for s in sorted(df.seed.unique()))
    lines.append(f"- runs: {len(df)} ({per_family}) in {n_exp} experiments; seeds {seeds}")
    return lines


def _date(tree: ResultsTree) -> str:
    dag = tree.dag or {}
    finished, started = _parse_time(dag.get("finished")), _parse_time(dag.get("started"))
    if finished:
        return (
            f"{finished.date()} (DAG started {dag.get('started', '?')}, finished {dag['finished']})"
            if started
            else f"{finished.date()} (DAG finished {dag['finished']})"
        )
    stamps = sorted(
        ((t, p["started"]) for p in tree.provenance if (t := _parse_time(p.get("started")))),
        key=lambda stamp: stamp[0].timestamp(),
    )  # timestamp(): naive and aware times compare
    if not stamps:
        return "not recorded"
    (_, first), (last_time, last) = stamps[0], stamps[-1]
    return f"{last_time.date()} (the runs' stages started from {first} to {last}, from their provenance)"


def _cores(tree: ResultsTree) -> str:
    dag = tree.dag or {}
    cores = (
        f"DAG run with --cores {dag['cores']}"
        if isinstance(dag.get("cores"), int)
        else "the DAG's --cores not recorded"
    )
    threads = Counter(str(p["threads"]) for p in tree.provenance if p.get("threads") is not None)
    unit, source = "stage records", ""
    if not threads:  # older trees: the timing line each job prints into its log
        threads = Counter(str(t) for _, _, t in _job_timings(tree.root))
        unit, source = "jobs", ", from the timing lines in logs/"
    if not threads:
        return f"{cores}; threads per job not recorded"
    per = ", ".join(f"{t} ({n} {unit})" for t, n in sorted(threads.items(), key=lambda kv: int(kv[0])))
    return f"{cores}; threads per job: {per}{source}"


def _wall(tree: ResultsTree) -> str:
    dag = tree.dag or {}
    wall, jobs = dag.get("wall_s"), dag.get("jobs")
    if isinstance(wall, (int, float)) and not isinstance(wall, bool):
        ran = f"; {jobs} jobs ran" if isinstance(jobs, int) and not isinstance(jobs, bool) else ""
        return f"{duration(float(wall))}, of the last DAG invocation that ran jobs (dag.json{ran})"
    jobs = _job_timings(tree.root)
    why = "no dag.json" if tree.dag is None else "dag.json has no wall_s"
    if not jobs:
        return f"not recorded ({why})"
    span = max(e for _, e, _ in jobs) - min(s for s, _, _ in jobs)
    return (
        f"not recorded ({why}); the timing lines of the jobs' last runs in logs/ span {duration(span)} from "
        "the first start to the last end (not a wall time if the DAG ran in several invocations)"
    )


# ---------------------------------------------------------------------------------- body
def body_lines(tree: ResultsTree, scratch: Path) -> list[str]:
    """The claims table, every family's report section and the sweeps', by the report's own
    functions (figures drawn into `scratch`; see `place_figures`)."""
    from dagzoo.claims import claims_table
    from dagzoo.family import families
    from dagzoo.sweep_report import sweep_section

    df = tree.summary
    md = ["## Claims", "", *claims_table(tree.claims), ""] if tree.claims else []
    histories = {d: read_jsonl(Path(d) / "history.jsonl", numeric=True) for d in df.run_dir}
    registered = families()
    for name, fam in registered.items():
        if (df.family == name).any():
            section, _ = fam.report_section(df, histories, tree.root, scratch)
            md += section
    md += sweep_section(df, scratch)[0]
    unknown = sorted(set(df.family) - set(registered))
    if unknown:
        md += [f"Runs of families not installed with this dagzoo, left out: {', '.join(unknown)}.", ""]
    return md


def place_figures(lines: list[str], tree: ResultsTree, scratch: Path, figure_dir: Path | None, link: str) -> list[str]:
    """Figure lines of the sections: with `figure_dir`, the report's PNG (else the one drawn into
    `scratch`) is copied there and linked as <link>/<name>; without, one note names the figures of
    a run of figure lines (figures are heavy in git)."""
    out: list[str] = []
    skipped: list[str] = []  # figures of the current run of figure lines, not copied

    def flush() -> None:
        if skipped:
            names = ", ".join(f"`report/{name}`" for name in skipped)
            out.append(
                f"*Figure{'s' if len(skipped) > 1 else ''} {names} of the results tree (not copied into the docs).*"
            )
            skipped.clear()

    for line in lines:
        m = _IMAGE.match(line.strip())
        if not m:
            flush()
            out.append(line)
            continue
        name = m["src"]
        if figure_dir is None:
            skipped.append(name)
            continue
        src = next((p for p in (tree.root / "report" / name, scratch / name) if p.is_file()), None)
        if src is None:
            out.append(f"*Figure `{name}`: not found in `{tree.root / 'report'}`.*")
            continue
        figure_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, figure_dir / Path(name).name)
        out.append(f"![{m['alt']}]({link}/{Path(name).name})")
    flush()
    return out


def table_rows(markdown: str) -> dict[str, list[str]]:
    """The table rows ('|' lines) of each '## ' section of a Markdown page."""
    sections: dict[str, list[str]] = {}
    heading = None
    for line in markdown.splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
            sections.setdefault(heading, [])
        elif heading is not None and line.startswith("|"):
            sections[heading].append(line.rstrip())
    return sections


def check_against_report(page_md: str, tree: ResultsTree) -> list[str]:
    """Differences between the page's tables and report.md's (and between the summary and
    summary_by_experiment.parquet's seed counts): empty when the page repeats the report."""
    problems = []
    if tree.report_md is not None:
        report = table_rows(tree.report_md)
        for heading, rows in table_rows(page_md).items():
            if heading not in report:
                problems.append(f"report.md has no section {heading!r}")
            elif rows != report[heading]:
                first = next(
                    (i for i, (a, b) in enumerate(zip(rows, report[heading])) if a != b),
                    min(len(rows), len(report[heading])),
                )
                page_row = rows[first] if first < len(rows) else "(none)"
                report_row = report[heading][first] if first < len(report[heading]) else "(none)"
                problems.append(
                    f"section {heading!r}, table line {first + 1}: page {page_row!r}, report.md {report_row!r}"
                )
    by_exp = tree.by_experiment
    if by_exp is not None and {"family", "experiment", "n_seeds"} <= set(by_exp.columns):
        counts = tree.summary.groupby(["family", "experiment"]).size()
        for r in by_exp.itertuples(index=False):
            if counts.get((r.family, r.experiment)) != r.n_seeds:
                problems.append(
                    f"summary_by_experiment.parquet: {r.family}/{r.experiment} has n_seeds {r.n_seeds}, "
                    f"summary.parquet {counts.get((r.family, r.experiment), 0)} runs"
                )
    return problems


# ---------------------------------------------------------------------------------- the page
def write_results_page(results: Path, out: Path, title: str | None = None, *, figures: bool = False) -> Path:
    """Write the page `out` for the results tree `results` and return its path. `figures`: copy
    the report's PNGs into <out's folder>/<out's stem>/ and link them (default: a note instead)."""
    results, out = Path(results), Path(out)
    tree = load_tree(results)
    with tempfile.TemporaryDirectory(prefix="dagzoo-docs-") as tmp:
        body = body_lines(tree, Path(tmp))
        page_body = place_figures(body, tree, Path(tmp), out.parent / out.stem if figures else None, out.stem)
    for problem in check_against_report("\n".join(body), tree):
        print(
            f"[dagzoo] warning: {results}: {problem} (the report was written by other code or from other "
            "runs; rerun the DAG's report to refresh it)",
            file=sys.stderr,
        )
    intro = (
        f"Generated by `dagzoo.docgen.results` from the results tree `{results}`: every number comes from its "
        "summary.parquet, claims.json and run files, through the functions that write its report/report.md. "
        "Do not edit by hand; regenerate it."
    )
    lines = [f"# {title or f'Results: {out.stem}'}", "", intro, "", *header_lines(tree), "", *page_body]
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "\n".join(lines).rstrip("\n") + "\n")
    return out
