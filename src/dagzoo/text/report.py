"""The text section of the report: the likelihood table (exact vs bound), the ranking of the
neural models, validation curves and the first sample of every experiment."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dagzoo.io import read_json
from dagzoo.plotting import save_figure
from dagzoo.report import fmt, mean_std, si


def _val_curve(history: list[dict]) -> list[tuple[float, float]]:
    """(tokens, val bpc) of every validation point after training started."""
    return [(r["tokens"], r["val/bpc"]) for r in history if "val/bpc" in r and r["tokens"] > 0]


def text_findings(text: pd.DataFrame) -> list[str]:
    """Plain statements of what was measured; a study's conclusions are its config's claims."""
    by_exp = text.groupby("experiment")["test/bpc"].mean().sort_values()
    best = by_exp.index[0]
    bound = " (an upper bound, its NELBO)" if text[text.experiment == best].likelihood.iloc[0] == "bound" else ""
    lines = [f"Best test BPC: **{best}** ({by_exp.iloc[0]:.4f}){bound}."]
    for exp, group in text.groupby("experiment"):
        cost = [f"{si(group['train/tokens'].mean())} training tokens"]
        if "train/flops" in group and not group["train/flops"].isna().all():
            cost.append(f"{si(group['train/flops'].mean())}FLOP")
        cost.append(f"{group['train/time_s'].mean():.1f} s of training")
        kind = "≤ " if group.likelihood.iloc[0] == "bound" else ""
        lines.append(
            f"**{exp}** ({group.model.iloc[0]}): test BPC {kind}{group['test/bpc'].mean():.4f} after {', '.join(cost)}."
        )
    return lines


def plot_text_curves(text: pd.DataFrame, histories: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn = False
    for i, (_, r) in enumerate(text.iterrows()):
        pts = _val_curve(histories.get(r.run_dir, []))
        if not pts:
            continue
        label = f"{r.experiment} (seed {r.seed})"
        if len(pts) == 1:  # a model fitted in one pass (n-grams): a reference line
            ax.axhline(pts[-1][1], ls="--", lw=1, color=colors[i % len(colors)], label=f"{label}: {pts[-1][1]:.3f}")
        else:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", color=colors[i % len(colors)], label=label)
        drawn = True
    if drawn:
        ax.set_xscale("log")
        ax.legend(fontsize=7, loc="upper right")
    else:
        ax.text(0.5, 0.5, "no validation curves", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("training tokens")
    ax.set_ylabel("validation bits per character")
    ax.set_title("Validation BPC vs training tokens (one-pass models: dashed reference lines)")
    ax.grid(alpha=0.3, which="both")
    save_figure(fig, path)


def _text_table(text: pd.DataFrame) -> list[str]:
    genppl = "samples/gen_ppl" in text
    head = (
        "| experiment | model | likelihood | test BPC | ± SE (bound) | nats/token | ppl | train tokens | "
        "train FLOPs | train time (s) | params | seeds |" + (" gen PPL | sample entropy (nats) |" if genppl else "")
    )
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    order = text.groupby("experiment")["test/bpc"].mean().sort_values().index
    for exp in order:
        g = text[text.experiment == exp]
        bound = g.likelihood.iloc[0] == "bound"
        cells = [
            exp,
            g.model.iloc[0],
            "≤ (NELBO)" if bound else "exact",
            mean_std(g, "test/bpc"),
            # NaN (unestimable, e.g. one NELBO sample per window) in any seed -> "—", never a
            # mean of the other seeds' SEs nor 0
            fmt(float(g["test/bpc_se"].mean(skipna=False))) if bound and "test/bpc_se" in g else "—",
            mean_std(g, "test/nll"),
            mean_std(g, "test/ppl"),
            fmt(g["train/tokens"].mean()),
            fmt(g["train/flops"].mean()) if "train/flops" in g else "—",
            f"{g['train/time_s'].mean():.1f}",
            fmt(g["train/params"].mean()) if "train/params" in g else "—",
            str(len(g)),
        ]
        if genppl:
            cells += [mean_std(g, "samples/gen_ppl"), mean_std(g, "samples/unigram_entropy")]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "FLOPs: 6N + 12LdT per training token (PaLM convention) for neural models; n-grams count, "
        "they do no floating-point training (—). Times are training wall times on the machine that ran "
        "them. Diffusion models report an upper bound on the NLL (NELBO) with the standard error of its "
        "estimate."
    )
    neural = text[text["train/flops"].notna()] if "train/flops" in text else text.iloc[0:0]
    if len(neural.experiment.unique()) > 1:
        ranked = (
            neural.groupby("experiment").agg(bpc=("test/bpc", "mean"), lik=("likelihood", "first")).sort_values("bpc")
        )
        lines.append(
            "Neural models from best to worst test BPC (≤: an upper bound): "
            + ", ".join(f"{exp} {'≤ ' if r.lik == 'bound' else ''}{r.bpc:.3f}" for exp, r in ranked.iterrows())
            + "."
        )
    if genppl:
        names = sorted(set(text["genppl_evaluator"].dropna())) if "genppl_evaluator" in text else []
        lines.append(
            "Generative perplexity: the samples scored by "
            f"{', '.join(names) or 'the evaluator named in the config'}; always read it next to the "
            "samples' unigram entropy (repetitive samples score well)."
        )
    return lines


def _window_table(text: pd.DataFrame) -> list[str]:
    """The masked-diffusion runs' training windows: the window, the variance of the training-loss
    estimator at it and at the full range on the same validation batches, beside the bound."""
    if "model/clip_low" not in text or text["model/clip_low"].isna().all():
        return []
    rows = text[text["model/clip_low"].notna()]
    lines = [
        "### Training windows",
        "",
        "Masked-diffusion models train on masking rates t ~ U[low, high] (BD3-LM's clipped schedules; `clip: "
        "search` picks the window of least estimator variance on a pilot). Estimator variance: the variance over "
        "fixed validation batches of the training loss (NELBO per token, nats) at the run's own window and at "
        "the full range U[eps, 1], same batches; the test bound is always over the full range. Mean over seeds.",
        "",
        "| experiment | model | window | variance at its window | variance at U[eps, 1] | test BPC (bound) |",
        "|---|---|---|---|---|---|",
    ]
    for exp, g in rows.groupby("experiment", sort=False):
        windows = sorted({(round(lo, 3), round(hi, 3)) for lo, hi in zip(g["model/clip_low"], g["model/clip_high"])})
        window = ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in windows)
        lines.append(
            f"| {exp} | {g.model.iloc[0]} | {window} | {mean_std(g, 'val/loss_var')} | "
            f"{mean_std(g, 'val/loss_var_full')} | {mean_std(g, 'test/bpc')} |"
        )
    return lines + [""]


def text_section(df: pd.DataFrame, histories: dict, out: Path) -> tuple[list[str], list[Path]]:
    text = df[df.family == "text"]
    curves = out / "text_val_bpc.png"
    plot_text_curves(text, histories, curves)
    if text.empty:
        return [], [curves]
    window = read_json(Path(text.run_dir.iloc[0]) / "metrics.json").get("window")
    md = [
        "## Text",
        "",
        f"Test split: {int(text['test/tokens'].iloc[0])} tokens, "
        f"{int(text['test/chars'].iloc[0])} characters, scored in windows of {window} tokens after a BOS "
        "(every token scored; the same windows for every model).",
        "",
    ]
    md += _text_table(text) + [""]
    md += _window_table(text)
    md += ["### Findings", ""] + [f"- {line}" for line in text_findings(text)] + [""]
    md += [f"![validation BPC vs training tokens]({curves.name})", ""]
    md += ["### Samples (first 300 characters of the first sample)", ""]
    for _, r in text.drop_duplicates("experiment").iterrows():
        path = Path(r.run_dir) / "samples.txt"
        if path.exists():
            samples = path.read_text(encoding="utf-8").split("----- sample ")[1:]
            body = samples[0].split("-----\n", 1)[-1][:300] if samples else "(no samples)"
            md += [f"**{r.experiment}**", "", "```", body.rstrip(), "```", ""]
    return md, [curves]
