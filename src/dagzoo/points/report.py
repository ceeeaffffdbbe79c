"""The point-cloud section of the report: OA / mAcc / SO(3) accuracy per experiment (mean over
seeds ± their std, ddof 1, as SimpleView asks; with a single seed ± its binomial SE), the
validation curves, and the first seed's confusion matrix of the best experiment."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from dagzoo.io import read_json


def mean_pm(g: pd.DataFrame, key: str) -> str:
    """mean ± std over seeds (one seed: ± the metric's binomial SE)."""
    if key not in g or g[key].isna().all():
        return "—"
    v = g[key].dropna()
    se = v.std(ddof=1) if len(v) > 1 else g.get(f"{key}_se", pd.Series([np.nan])).iloc[0]
    return f"{100 * v.mean():.1f} ± {100 * se:.1f}" if np.isfinite(se) else f"{100 * v.mean():.1f}"


def seed_mean_count(g: pd.DataFrame, key: str) -> str:
    """The mean over the seeds that have it, as a whole number; "—" for none."""
    values = g[key].dropna() if key in g else []
    return f"{round(float(values.mean())):,}" if len(values) else "—"


def _per_class_table(rows: pd.DataFrame) -> list[str]:
    """Test accuracy per class (%, mean over seeds), one column per experiment."""
    acc: dict[str, dict[str, list[float]]] = {}
    for _, r in rows.iterrows():
        path = Path(r.run_dir) / "per_class.json"
        if not path.exists():
            continue
        for c in read_json(path)["per_class"]:
            acc.setdefault(c["class"], {}).setdefault(r.experiment, []).append(c["accuracy"])
    if not acc:
        return []
    exps = list(dict.fromkeys(rows.experiment))
    md = [
        "Test accuracy per class (%, mean over seeds):",
        "",
        "| class | " + " | ".join(exps) + " |",
        "|---|" + "---|" * len(exps),
    ]
    for cls, by_exp in acc.items():
        md.append(
            f"| {cls} | " + " | ".join(f"{100 * np.mean(by_exp[e]):.0f}" if e in by_exp else "—" for e in exps) + " |"
        )
    return md + [""]


def passes(g: pd.DataFrame) -> str:
    """Passes over the training clouds (train/epochs), e.g. 16.4; runs made before it was logged: —."""
    if "train/epochs" not in g or g["train/epochs"].isna().all():
        return "—"
    return f"{g['train/epochs'].mean():.1f}"


def points_section(df: pd.DataFrame, histories: dict, results: Path, out: Path) -> tuple[list[str], list[Path]]:
    rows = df[df.family == "points"]
    if rows.empty:
        return [], []
    md = [
        "## Point clouds",
        "",
        "Test overall accuracy (OA) and mean per-class accuracy (mAcc) in % on the whole test split, single "
        "view, no voting, of the last checkpoint (the test split is read only by the evaluation). SO(3): the "
        "same model on test clouds under uniformly random 3D rotations (training rotates about the up axis "
        "only). ± is the std over seeds (ddof 1; one seed: the binomial SE). Epochs: passes over the training "
        "clouds (each epoch a fresh shuffle, the last partial batch dropped).",
        "",
        "| experiment | model | seeds | test OA | test mAcc | OA under SO(3) | val OA | epochs | params | clouds/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for exp, g in rows.groupby("experiment", sort=False):
        md.append(
            f"| {exp} | {g.model.iloc[0]} | {len(g)} | {mean_pm(g, 'test/oa')} | {mean_pm(g, 'test/macc')} | "
            f"{mean_pm(g, 'test/oa_so3')} | {mean_pm(g, 'val/oa')} | {passes(g)} | "
            f"{seed_mean_count(g, 'train/params')} | {seed_mean_count(g, 'train/clouds_per_s')} |"
        )
    md.append("")
    md += _per_class_table(rows)
    figures = []
    best = rows.loc[rows["test/oa"].idxmax()] if "test/oa" in rows else None
    if best is not None:
        src = Path(best.run_dir) / "confusion.png"
        if src.exists():
            dst = out / "points_confusion.png"
            shutil.copyfile(src, dst)
            md += [f"Confusion matrix of {best.experiment} (seed {best.seed}):", "", f"![confusion]({dst.name})", ""]
            figures.append(dst)
    return md, figures
