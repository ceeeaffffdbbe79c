"""The report's sweep section: for each sweep (the experiments named ``<name>@<key>=<value>,...``,
see dagzoo.sweep), a table of its points and a figure of each headline metric of its family
against each swept parameter: mean +- std over seeds, one line per combination of the other
swept parameters' values."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from dagzoo.family import families
from dagzoo.sweep import parse_name


def _sweeps(df: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """{(family, base name): its expanded experiments' rows} for every sweep in the summary."""
    if df.empty:
        return {}
    bases = df["experiment"].map(lambda e: parse_name(e)[0] if "@" in e else None)
    return {(fam, base): rows for (fam, base), rows in df[bases.notna()].groupby(["family", bases[bases.notna()]])}


def _cell(values: pd.Series, digits: int) -> str:
    values = values.dropna()
    if values.empty:
        return "—"
    mean = f"{values.mean():.{digits}f}"
    return mean + (f" ± {values.std(ddof=1):.{digits}f}" if len(values) > 1 else "")


def _sortable(v):
    """Numbers (numpy's too) by value, before words by text."""
    number = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
    return (0, float(v), "") if number else (1, 0, str(v))


def _axis(values: list) -> tuple[list[float], list[str] | None, bool]:
    """x positions, tick labels for words, and whether a log axis suits (positive numbers over a
    decade or more)."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        xs = [float(v) for v in values]
        return xs, None, min(xs) > 0 and max(xs) / min(xs) >= 10
    return list(range(len(values))), [str(v) for v in values], False


def plot_sweep(points: pd.DataFrame, keys: list[str], metrics: list[tuple[str, str, int]], title: str, path: Path):
    """One panel per (headline metric, swept parameter); `points`: one row per experiment x seed
    with a column per swept key."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dagzoo.plotting import save_figure

    fig, axes = plt.subplots(len(metrics), len(keys), figsize=(4.2 * len(keys), 3.2 * len(metrics)), squeeze=False)
    for (label, metric, _), row in zip(metrics, axes):
        for key, ax in zip(keys, row):
            values = sorted(points[key].drop_duplicates().tolist(), key=_sortable)
            xs, ticks, log = _axis(values)
            others = [k for k in keys if k != key]
            levels = [sorted(points[k].drop_duplicates().tolist(), key=_sortable) for k in others]
            for combo in itertools.product(*levels) if others else [()]:
                sel = points
                for k, v in zip(others, combo):
                    sel = sel[sel[k] == v]
                stats = sel.groupby(key)[metric].agg(["mean", "std", "count"])
                ys = [stats["mean"].get(v, np.nan) for v in values]
                err = [stats["std"].get(v, np.nan) if stats["count"].get(v, 0) > 1 else 0.0 for v in values]
                name = ", ".join(f"{k}={v}" for k, v in zip(others, combo)) or metric
                ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=name)
            if log:
                ax.set_xscale("log")
            if ticks:
                ax.set_xticks(xs, ticks)
            ax.set_xlabel(key)
            ax.set_ylabel(f"{label} ({metric})")
            ax.grid(alpha=0.3, which="both")
            if others:
                ax.legend(fontsize=7)
    fig.suptitle(f"{title}: mean ± std over seeds")
    save_figure(fig, path)


def sweep_section(df: pd.DataFrame, out: Path) -> tuple[list[str], list[Path]]:
    """The markdown of every sweep in the summary, and its figures (written into `out`)."""
    sweeps = _sweeps(df)
    if not sweeps:
        return [], []
    fams = families()
    md = [
        "## Sweeps",
        "",
        "Each sweep's experiments, named `<experiment>@<key>=<value>,...`, with their family's headline metrics "
        "(mean ± std over seeds), and each metric against each swept parameter.",
        "",
    ]
    figures = []
    for (family, base), rows in sweeps.items():
        fam = fams.get(family)
        keys = list(parse_name(rows["experiment"].iloc[0])[1])
        metric_cols = [c for c in rows.columns if pd.api.types.is_numeric_dtype(rows[c]) and c != "seed"]
        metrics = fam.headline_keys(metric_cols, lambda m: rows[m].notna().any()) if fam else []
        points = rows.copy()
        for key in keys:
            points[key] = rows["experiment"].map(lambda e, key=key: parse_name(e)[1].get(key))
        n_exp = points["experiment"].nunique()
        md += [
            f"### {family}/{base}",
            "",
            f"{n_exp} experiments over {', '.join(f'`{k}`' for k in keys)}; seeds per experiment: "
            f"{', '.join(map(str, sorted(set(points.groupby('experiment').size()))))}.",
            "",
            "| " + " | ".join([*keys, *(f"{label} (`{m}`)" for label, m, _ in metrics)]) + " |",
            "|" + "---|" * (len(keys) + len(metrics)),
        ]
        order = sorted(points.groupby("experiment"), key=lambda g: [_sortable(g[1][k].iloc[0]) for k in keys])
        for _, g in order:
            cells = [str(g[k].iloc[0]) for k in keys] + [_cell(g[m], d) for _, m, d in metrics]
            md.append("| " + " | ".join(cells) + " |")
        md.append("")
        if metrics:
            path = out / f"sweep_{family}_{base}.png"
            plot_sweep(points, keys, metrics, f"{family}/{base}", path)
            md += [f"![sweep {family}/{base}]({path.name})", ""]
            figures.append(path)
        else:
            md += ["(no headline metric of this family in these runs)", ""]
    return md, figures
