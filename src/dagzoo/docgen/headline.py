"""The README's headline tables, generated from a finished results tree (`dagzoo docs --results`):
one short table per family with the metrics its `Family.headline_metrics` names, each table
headed by the machine, commit and date its numbers came from and linked to the full page."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from dagzoo.errors import DataError
from dagzoo.family import families
from dagzoo.io import atomic_write_text

START = "<!-- headline:start"
END = "<!-- headline:end -->"


def _origin(results: Path) -> str:
    """'<CPU>, <cores>; commit <sha>; <date>' of the DAG run that made the tree (dag.json), else
    of its runs' provenance files."""
    dag = results / "dag.json"
    if dag.is_file():
        d = json.loads(dag.read_text())
        return (
            f"{d.get('cpu_model', 'unknown CPU')}, {d.get('cores')} of {d.get('cpu_count')} cores; "
            f"commit {str(d.get('git_commit', 'unknown'))[:12]}; {str(d.get('finished', ''))[:10]}"
        )
    provenance = sorted(results.glob("*/*/*/provenance-train.json"))
    if not provenance:
        return "machine and commit not recorded"
    p = json.loads(provenance[-1].read_text())
    return (
        f"{p.get('cpu_model', 'unknown CPU')}; commit {str(p.get('git_commit', 'unknown'))[:12]}; "
        f"{str(p.get('started', ''))[:10]}"
    )


def _number(mean: float, std: float, digits: int) -> str:
    if mean is None or not math.isfinite(mean):
        return "—"
    text = f"{mean:.{digits}f}"
    return text + (f" ± {std:.{digits}f}" if std is not None and math.isfinite(std) else "")


def headline_markdown(results: Path, page: str) -> str:
    """The headline tables of every family in the tree's summary_by_experiment.parquet."""
    path = Path(results) / "summary_by_experiment.parquet"
    if not path.is_file():
        raise DataError(f"{path}: missing; run the DAG (its report writes it) before `dagzoo docs --results`")
    df = pd.read_parquet(path)
    origin = _origin(Path(results))
    out = [f"*{origin}; mean ± std over seeds; the full tables, claims and findings: [{page}]({page})*", ""]
    for name, fam in families().items():
        rows = df[df["family"] == name]
        if rows.empty or not fam.headline_metrics:
            continue
        metrics = [c.removesuffix("_mean") for c in rows.columns if c.endswith("_mean")]
        columns = [
            (f"{label} (`{key}`)", key, digits)
            for label, key, digits in fam.headline_keys(metrics, lambda m: rows[f"{m}_mean"].notna().any())
        ]
        if not columns:
            continue
        seeds = sorted(set(rows["n_seeds"].astype(int)))
        out += [
            f"**{name}** (seeds per experiment: {', '.join(map(str, seeds))})",
            "",
            "| experiment | model | " + " | ".join(c[0] for c in columns) + " |",
            "|---|---|" + "---|" * len(columns),
        ]
        for _, r in rows.sort_values("experiment").iterrows():
            cells = [_number(r.get(f"{k}_mean"), r.get(f"{k}_std"), d) for _, k, d in columns]
            out.append(f"| {r['experiment']} | {r['model']} | " + " | ".join(cells) + " |")
        out.append("")
    if len(out) == 2:
        raise DataError(f"{path}: no experiment of a known family with a headline metric")
    return "\n".join(out).rstrip() + "\n"


def update_readme(readme: Path, block: str) -> bool:
    """Replace what stands between the README's headline markers; True when the file changed."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise DataError(f"{readme}: no headline block ({START} ... {END}) to fill")
    head = text[: text.index("\n", start) + 1]
    new = head + block + text[end:]
    if new == text:
        return False
    atomic_write_text(readme, new)
    return True
