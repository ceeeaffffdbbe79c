"""The part-segmentation section of the report: instance mIoU, class mIoU and point accuracy per
experiment (mean over seeds ± their std, ddof 1; one seed: ± the SE over shapes), the mean IoU
per category, and the first seed's figure of the best experiment."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from dagzoo.points.report import mean_pm, passes, seed_mean_count


def _per_category_table(rows: pd.DataFrame) -> list[str]:
    """Test mIoU per category (%, mean over seeds), one column per experiment."""
    keys = [k for k in rows.columns if k.startswith("test/miou/")]
    if not keys:
        return []
    exps = list(dict.fromkeys(rows.experiment))
    md = [
        "Test mIoU per category (%, mean over seeds):",
        "",
        "| category | " + " | ".join(exps) + " |",
        "|---|" + "---|" * len(exps),
    ]
    for key in keys:
        cells = []
        for e in exps:
            v = rows.loc[rows.experiment == e, key].dropna()
            cells.append(f"{100 * v.mean():.1f}" if len(v) else "—")
        md.append(f"| {key.rsplit('/', 1)[1]} | " + " | ".join(cells) + " |")
    return md + [""]


def parts_section(df: pd.DataFrame, histories: dict, results: Path, out: Path) -> tuple[list[str], list[Path]]:
    rows = df[df.family == "parts"]
    if rows.empty:
        return [], []
    md = [
        "## Part segmentation",
        "",
        "ShapeNetPart's scores in % on the whole test split, of the last checkpoint (the test split is read only "
        "by the evaluation): a shape's IoU is the mean over its own category's parts (a part absent from both "
        "prediction and truth counts 1), instance mIoU averages the shapes, class mIoU the categories' means; "
        "each shape's prediction is restricted to its category's parts. `height_prior` gives every point the "
        "majority part of its category at its height: the gap to it is what a network adds. ± is the std over "
        "seeds (ddof 1; one seed: the SE over shapes). Epochs: passes over the training shapes.",
        "",
        "| experiment | model | seeds | instance mIoU | class mIoU | point acc | val instance mIoU | epochs | params "
        "| clouds/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for exp, g in rows.groupby("experiment", sort=False):
        class_miou = g["test/class_miou"].dropna() if "test/class_miou" in g else pd.Series(dtype=float)
        class_cell = (
            f"{100 * class_miou.mean():.1f}" + (f" ± {100 * class_miou.std(ddof=1):.1f}" if len(class_miou) > 1 else "")
            if len(class_miou)
            else "—"
        )
        md.append(
            f"| {exp} | {g.model.iloc[0]} | {len(g)} | {mean_pm(g, 'test/instance_miou')} | {class_cell} | "
            f"{mean_pm(g, 'test/point_acc')} | {mean_pm(g, 'val/instance_miou')} | {passes(g)} | "
            f"{seed_mean_count(g, 'train/params')} | {seed_mean_count(g, 'train/clouds_per_s')} |"
        )
    md.append("")
    md += _per_category_table(rows)
    figures = []
    if "test/instance_miou" in rows and rows["test/instance_miou"].notna().any():
        means = rows.groupby("experiment", sort=False)["test/instance_miou"].mean()
        best = rows[rows.experiment == means.idxmax()].sort_values("seed").iloc[0]
        src = Path(best.run_dir) / "parts.png"
        if src.exists():
            dst = out / "parts_segmentation.png"
            shutil.copyfile(src, dst)
            md += [
                f"Test shapes segmented by {best.experiment} (seed {best.seed}), one per category:",
                "",
                f"![parts]({dst.name})",
                "",
            ]
            figures.append(dst)
    return md, figures
