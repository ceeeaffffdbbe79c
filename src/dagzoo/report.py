"""The report: ``summary.parquet`` (one row per experiment x seed, every metric, plus its mean and
std over the seeds of that experiment), ``report/summary.csv`` (one row per experiment) and
``report/report.md`` with comparison tables, plain-language findings and plots."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from dagzoo.io import atomic_write_text, read_json, read_jsonl

ID_COLUMNS = ["family", "experiment", "model", "seed", "config_hash", "likelihood", "run_dir", "genppl_evaluator"]


def collect(run_dirs: list[Path]) -> tuple[pd.DataFrame, dict[str, list[dict]]]:
    rows, histories = [], {}
    for d in run_dirs:
        d = Path(d)
        if not (d / "metrics.json").exists():
            continue
        m = read_json(d / "metrics.json")
        spec = read_json(d / "spec.json")
        evaluator = None
        if (d / "genppl.json").exists():
            gen = read_json(d / "genppl.json")
            m["metrics"].update(gen["metrics"])
            evaluator = gen.get("evaluator")
        likelihood = ("exact" if m.get("exact_likelihood", True) else "bound") if spec["family"] == "text" else \
            "bound" if "test/bits_per_dim" in m["metrics"] else "none"
        rows.append({"family": spec["family"], "experiment": spec["experiment"], "model": spec["model"],
                     "seed": spec["seed"], "config_hash": spec["config_hash"], "likelihood": likelihood,
                     "run_dir": str(d), "genppl_evaluator": evaluator, **m["metrics"]})
        histories[str(d)] = read_jsonl(d / "history.jsonl")
    df = pd.DataFrame(rows)
    if df.empty:
        return df, histories
    metric_cols = [c for c in df.columns if c not in ID_COLUMNS and pd.api.types.is_numeric_dtype(df[c])]
    grouped = df.groupby(["family", "experiment"])
    for c in metric_cols:
        df[f"{c}_mean"] = grouped[c].transform("mean")
        df[f"{c}_std"] = grouped[c].transform(lambda s: s.std(ddof=1) if s.count() > 1 else 0.0)
    return df.sort_values(["family", "experiment", "seed"]).reset_index(drop=True), histories


def _fmt(x, digits=4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, (int, np.integer)) or (isinstance(x, float) and x.is_integer() and abs(x) >= 1000):
        return _si(float(x)) if abs(x) >= 1e5 else f"{int(x)}"
    return f"{x:.{digits}g}" if abs(x) < 1e5 else _si(x)


def _si(x: float) -> str:
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _mean_std(df: pd.DataFrame, col: str) -> str:
    if col not in df or df[col].isna().all():
        return "—"
    mean, n = df[col].mean(), df[col].count()
    if n > 1:
        return f"{mean:.4f} ± {df[col].std(ddof=1):.4f}"
    return _fmt(float(mean))


def _val_curve(history: list[dict]) -> list[tuple[float, float, float, float | None]]:
    """(tokens, val bpc, train seconds, flops) of every validation point."""
    return [(r["tokens"], r["val/bpc"], r.get("train_time_s", float("nan")), r.get("flops"))
            for r in history if "val/bpc" in r and r["tokens"] > 0]


def text_findings(df: pd.DataFrame, histories: dict) -> list[str]:
    """Plain statements: who wins, and where (if anywhere) a neural model passes the best n-gram."""
    text = df[df.family == "text"]
    if text.empty:
        return []
    lines = []
    by_exp = text.groupby("experiment")["test/bpc"].mean().sort_values()
    best = by_exp.index[0]
    lines.append(f"Best test BPC: **{best}** ({by_exp.iloc[0]:.4f}).")
    ngrams = text[text.model == "ngram"]
    neural = text[text.model != "ngram"]
    if ngrams.empty or neural.empty:
        return lines
    ng_test = ngrams.groupby("experiment")["test/bpc"].mean().sort_values()
    best_ng, best_ng_bpc = ng_test.index[0], ng_test.iloc[0]
    ng_val = {}
    for _, r in ngrams.iterrows():
        pts = _val_curve(histories.get(r.run_dir, []))
        if pts:
            ng_val.setdefault(r.experiment, []).append(pts[-1][1])
    best_ng_val = min((np.mean(v), k) for k, v in ng_val.items()) if ng_val else None
    for exp, group in neural.groupby("experiment"):
        bpc = group["test/bpc"].mean()
        verdict = "beats" if bpc < best_ng_bpc else "does not beat"
        cost = [f"{_si(group['train/tokens'].mean())} training tokens"]
        if "train/flops" in group and not group["train/flops"].isna().all():
            cost.append(f"{_si(group['train/flops'].mean())}FLOP")
        cost.append(f"{group['train/time_s'].mean():.0f} s of training")
        bound = " (an upper bound, its NELBO)" if group.likelihood.iloc[0] == "bound" else ""
        lines.append(f"**{exp}** ({group.model.iloc[0]}) {verdict} the best n-gram **{best_ng}** on test BPC"
                     f"{bound}: {bpc:.4f} vs {best_ng_bpc:.4f} after {', '.join(cost)}.")
        if best_ng_val is None:
            continue
        target, target_exp = best_ng_val
        for _, r in group.iterrows():
            pts = _val_curve(histories.get(r.run_dir, []))
            cross = next((p for p in pts if p[1] < target), None)
            if cross:
                flops = f", {_si(cross[3])}FLOP" if cross[3] else ""
                lines.append(f"  - seed {r.seed}: validation BPC first drops below {target_exp}'s "
                             f"({target:.4f}) at {_si(cross[0])} tokens, {cross[2]:.0f} s of training{flops} "
                             f"(val BPC {cross[1]:.4f}).")
            elif pts:
                lines.append(f"  - seed {r.seed}: validation BPC never drops below {target_exp}'s ({target:.4f}); "
                             f"last {pts[-1][1]:.4f} at {_si(pts[-1][0])} tokens. At this budget the n-gram wins.")
    return lines


def plot_text_curves(df: pd.DataFrame, histories: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    text = df[df.family == "text"] if not df.empty else df
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn = False
    for i, (_, r) in enumerate(text.iterrows()):
        pts = _val_curve(histories.get(r.run_dir, []))
        if not pts:
            continue
        label = f"{r.experiment} (seed {r.seed})"
        if r.model == "ngram" or len(pts) == 1:
            ax.axhline(pts[-1][1], ls="--", lw=1, color=colors[i % len(colors)], label=f"{label}: {pts[-1][1]:.3f}")
        else:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", color=colors[i % len(colors)], label=label)
        drawn = True
    if drawn:
        ax.set_xscale("log")
        ax.legend(fontsize=7, loc="upper right")
    else:
        ax.text(0.5, 0.5, "no text runs in this config", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("training tokens")
    ax.set_ylabel("validation bits per character")
    ax.set_title("Validation BPC vs training tokens (n-grams: dashed reference lines)")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def _text_table(df: pd.DataFrame) -> list[str]:
    text = df[df.family == "text"]
    if text.empty:
        return []
    genppl = "samples/gen_ppl" in text
    head = ("| experiment | model | likelihood | test BPC | ± SE (bound) | nats/token | ppl | train tokens | "
            "train FLOPs | train time (s) | params | seeds |" + (" gen PPL | sample entropy (nats) |" if genppl else ""))
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    order = text.groupby("experiment")["test/bpc"].mean().sort_values().index
    for exp in order:
        g = text[text.experiment == exp]
        bound = g.likelihood.iloc[0] == "bound"
        cells = [exp, g.model.iloc[0], "≤ (NELBO)" if bound else "exact", _mean_std(g, "test/bpc"),
                 _fmt(float(g["test/bpc_se"].mean())) if bound and "test/bpc_se" in g else "—",
                 _mean_std(g, "test/nll"), _mean_std(g, "test/ppl"), _fmt(g["train/tokens"].mean()),
                 _fmt(g["train/flops"].mean()) if "train/flops" in g else "—",
                 f"{g['train/time_s'].mean():.1f}", _fmt(g["train/params"].mean()) if "train/params" in g else "—",
                 str(len(g))]
        if genppl:
            cells += [_mean_std(g, "samples/gen_ppl"), _mean_std(g, "samples/unigram_entropy")]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("FLOPs: 6N + 12LdT per training token (PaLM convention) for neural models; n-grams count, "
                 "they do no floating-point training (—). Times are this machine's training time. Diffusion "
                 "models report an upper bound on the NLL (NELBO) with the standard error of its estimate.")
    neural = text[text.model != "ngram"]
    if len(neural.experiment.unique()) > 1:
        ranked = (neural.groupby("experiment").agg(bpc=("test/bpc", "mean"), lik=("likelihood", "first"))
                  .sort_values("bpc"))
        lines.append("Neural models from best to worst test BPC (≤: an upper bound): " + ", ".join(
            f"{exp} {'≤ ' if r.lik == 'bound' else ''}{r.bpc:.3f}" for exp, r in ranked.iterrows()) + ".")
    if genppl:
        names = sorted(set(text["genppl_evaluator"].dropna())) if "genppl_evaluator" in text else []
        lines.append("Generative perplexity: the samples scored by "
                     f"{', '.join(names) or 'the evaluator named in the config'}; always read it next to the "
                     "samples' unigram entropy (repetitive samples score well).")
    return lines


def write_report(results: Path, out: Path | None = None, run_dirs: list[Path] | None = None) -> list[Path]:
    from dagzoo.tracking import find_run_dirs

    results = Path(results)
    out = out or results / "report"
    out.mkdir(parents=True, exist_ok=True)
    run_dirs = run_dirs if run_dirs is not None else find_run_dirs(results)
    df, histories = collect(run_dirs)
    summary = results / "summary.parquet"
    tmp = summary.with_name(".summary.tmp.parquet")
    df.to_parquet(tmp, index=False)
    tmp.replace(summary)
    per_exp = (df.drop(columns=["seed", "run_dir", "config_hash"]).groupby(["family", "experiment", "model",
                                                                             "likelihood"]).mean(numeric_only=True)
               if not df.empty else df)
    atomic_write_text(out / "summary.csv", per_exp.to_csv())
    curves = out / "text_val_bpc.png"
    plot_text_curves(df, histories, curves)

    md = ["# dagzoo report", "", f"{len(df)} runs from `{results}`.", ""]
    if not df.empty and (df.family == "text").any():
        text = df[df.family == "text"]
        md += ["## Text", "", f"Test split: {int(text['test/tokens'].iloc[0])} tokens, "
               f"{int(text['test/chars'].iloc[0])} characters, scored in windows of "
               f"{read_json(Path(text.run_dir.iloc[0]) / 'metrics.json').get('window')} tokens after a BOS "
               "(every token scored; the same windows for every model).", ""]
        md += _text_table(df) + [""]
        md += ["### Findings", ""] + [f"- {line}" if not line.startswith("  ") else line
                                      for line in text_findings(df, histories)] + [""]
        md += [f"![validation BPC vs training tokens]({curves.name})", ""]
        md += ["### Samples (first 300 characters of the first sample)", ""]
        for _, r in text.drop_duplicates("experiment").iterrows():
            path = Path(r.run_dir) / "samples.txt"
            if path.exists():
                samples = path.read_text(encoding="utf-8").split("----- sample ")[1:]
                body = samples[0].split("-----\n", 1)[-1][:300] if samples else "(no samples)"
                md += [f"**{r.experiment}**", "", "```", body.rstrip(), "```", ""]
    from dagzoo.image.report import image_section

    image_md, image_plots = image_section(df, results, out)
    md += image_md
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")
    return [summary, out / "summary.csv", out / "report.md", curves, *image_plots]
