"""The representations section of the report: one table (method, encoder, parameters, train
time, linear probe ± SE, kNN, MI bound with its log N cap, CE vs soft-F1 probes' macro-F1), the
online-probe curves, and every run's receptive-field heat map and embedding plot."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from dagzoo.plotting import save_figure
from dagzoo.report import fmt, mean_std


def _cell(rows: pd.DataFrame, col: str) -> str:
    return mean_std(rows, col)


def _long_tailed_table(runs: pd.DataFrame) -> list[str]:
    """Accuracy and macro-F1 of the long-tailed probes, one column pair per training loss."""
    losses = (("ce", "cross-entropy"), ("softf1", "soft-F1"), ("reinforce", "REINFORCE"))
    if not any(f"test/macro_f1_{short}" in runs for short, _ in losses):
        return []
    head = " | ".join(f"{name} acc | {name} macro-F1" for _, name in losses)
    md = [
        "Probes on the long-tailed train subset, scored on the balanced test split (REINFORCE: the probe "
        "is a policy, its sampled class earns reward 1 when right, with a moving-average baseline):",
        "",
        f"| experiment | {head} |",
        "|" + "|".join(["---"] * (1 + 2 * len(losses))) + "|",
    ]
    for exp, rows in runs.groupby("experiment", sort=False):
        cells = " | ".join(
            f"{_cell(rows, f'test/acc_{short}_imbalanced')} | {_cell(rows, f'test/macro_f1_{short}')}"
            for short, _ in losses
        )
        md.append(f"| {exp} | {cells} |")
    return md + [""]


def repr_section(df: pd.DataFrame, histories: dict, out: Path) -> tuple[list[str], list[Path]]:
    runs = df[df.family == "repr"]
    if runs.empty:
        return [], []
    first = runs.iloc[0]
    knn = (
        f" (k = {fmt(first['knn/k'])}, T = {fmt(first['knn/temperature'])})"
        if "knn/k" in runs and pd.notna(first.get("knn/k"))
        else ""
    )
    md = [
        "## Representations",
        "",
        "Frozen pre-projector features of each encoder. **Linear probe**: multinomial logistic regression on "
        "standardised features, its L2 strength C chosen on the validation split (carved from train, "
        "stratified), refitted on train + validation, scored once on test (± binomial SE; across seeds: "
        f"mean ± std). **kNN**: cosine, exp(s/T)-weighted votes of the k nearest train+val features{knn}. "
        "**MI bound**: log N - L_NCE on held-out "
        "views (never above log N, shown in brackets). **After projector**: the same probe on SimCLR's projector "
        "output (SimCLR probes before it). **Raw: bias / no bias**: the probe on raw, uncentred features with "
        "and without an intercept (only the intercept differs). **Macro-F1 CE / soft-F1 / REINFORCE**: linear "
        "probes trained with cross-entropy, the soft-F1 loss, or by REINFORCE with each example's accuracy as "
        "its reward, on a long-tailed train subset (their accuracies in the table below). `random`: the same "
        "encoder untrained; `raw`: pixels.",
        "",
        "| experiment | method | encoder | params | train s | linear acc | after projector | raw: bias / no bias "
        "| kNN acc | MI bound [log N] | macro-F1 CE / soft-F1 / REINFORCE | RF (theor. / ERF90) |",
        "|" + "|".join(["---"] * 12) + "|",
    ]
    for exp, rows in runs.groupby("experiment", sort=False):
        r = rows.iloc[0]
        se = f" (± {fmt(float(r['test/linear_acc_se']), 2)})" if len(rows) == 1 else ""
        mi = "—"
        if "test/mi_bound" in rows and rows["test/mi_bound"].notna().any():
            mi = f"{_cell(rows, 'test/mi_bound')} [{fmt(float(r['test/mi_log_n']), 3)}]"
        rf = f"{fmt(r.get('model/receptive_field', np.nan))} / {fmt(r.get('model/erf90_trained', np.nan))}"
        md.append(
            f"| {exp} | {r.model} | {r.get('encoder', '—')} | {fmt(r.get('train/params', np.nan))} | "
            f"{fmt(float(rows['train/time_s'].mean()), 3)} | {_cell(rows, 'test/linear_acc')}{se} | "
            f"{_cell(rows, 'test/linear_acc_projector')} | "
            f"{_cell(rows, 'test/linear_acc_raw')} / {_cell(rows, 'test/linear_acc_nobias')} | "
            f"{_cell(rows, 'test/knn_acc')} | {mi} | "
            f"{_cell(rows, 'test/macro_f1_ce')} / {_cell(rows, 'test/macro_f1_softf1')} / "
            f"{_cell(rows, 'test/macro_f1_reinforce')} | {rf} |"
        )
    md.append("")
    md += _long_tailed_table(runs)
    if "probe/C_at_edge" in runs:
        edge = sorted(set(runs.loc[runs["probe/C_at_edge"] == 1, "experiment"]))
        if edge:
            md += [
                f"The linear probe's C was chosen at an end of `repr.eval.probe_grid` for {', '.join(edge)}: "
                "a C beyond the grid may do better on validation; widen the grid to be sure.",
                "",
            ]
    if "probe/unconverged" in runs:
        capped = runs.loc[runs["probe/unconverged"] > 0].drop_duplicates("experiment")
        if len(capped):
            which = ", ".join(f"{r.experiment} ({int(r['probe/unconverged'])})" for _, r in capped.iterrows())
            md += [
                "Linear-probe refits that L-BFGS stopped before its tolerance was met (the iteration cap or a "
                "failed line search), short of their optimum (per "
                f"experiment, how many of its main, raw, no-bias and after-projector probes): {which}; the "
                "iterations are in each run's probe.json.",
                "",
            ]
    written = []
    curves = out / "repr_online_probe.png"
    if _plot_online(runs, histories, curves):
        md += [f"![online linear probe on the validation split during training]({curves.name})", ""]
        written.append(curves)
    for kind, title in (
        ("erf", "Effective receptive fields (untrained | trained)"),
        ("embedding", "Test features, first two principal components"),
    ):
        copies = []
        for _, r in runs.drop_duplicates("experiment").iterrows():
            src = Path(r.run_dir) / f"{kind}.png"
            if src.exists():
                dst = out / f"repr_{kind}_{r.experiment}.png"
                shutil.copyfile(src, dst)
                copies.append(dst)
        if copies:
            md += [f"### {title}", "", *[f"![{p.stem}]({p.name})" for p in copies], ""]
            written += copies
    return md, written


def _plot_online(runs: pd.DataFrame, histories: dict, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    drawn = False
    for _, r in runs.iterrows():
        pts = [
            (h["images"], h["val/online_acc"])
            for h in histories.get(r.run_dir, [])
            if "val/online_acc" in h and "images" in h
        ]
        if len(pts) >= 2:
            ax.plot(*zip(*pts), label=f"{r.experiment} s{r.seed}", marker=".")
            drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xlabel("training images")
    ax.set_ylabel("online probe accuracy (val)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)
    return True
