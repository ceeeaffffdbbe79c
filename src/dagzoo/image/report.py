"""The image section of the report: real-vs-real, per-sampler FID/KID/NFE table, the checks a
reader wants answered in words, FID-versus-NFE plot and the sample grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dagzoo.io import read_json
from dagzoo.plotting import save_figure


def _rows(df: pd.DataFrame) -> list[dict]:
    rows = []
    for _, r in df[df.family == "image"].iterrows():
        m = read_json(Path(r.run_dir) / "metrics.json")
        for s in m["samplers"]:
            rows.append(
                {
                    "experiment": r.experiment,
                    "model": r.model,
                    "seed": r.seed,
                    "run_dir": r.run_dir,
                    "main": s["sampler"] == m["main_sampler"],
                    **s,
                    "bits_per_dim": r.get("test/bits_per_dim", np.nan),
                }
            )
    return rows


def _f(x, d=3) -> str:
    return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{d}g}" if abs(x) < 1e4 else f"{x:.4g}"


def image_section(df: pd.DataFrame, results: Path, out: Path) -> tuple[list[str], list[Path]]:
    rows = _rows(df)
    if not rows:
        return [], []
    table = pd.DataFrame(rows)
    real_path = Path(results) / "image" / "real_vs_real.json"
    real = read_json(real_path) if real_path.exists() else None
    md = ["## Images", ""]
    spec = read_json(Path(table.run_dir.iloc[0]) / "spec.json")
    md += [
        f"Data: `{spec['data']['source']}` (resize {spec['data']['resize']}, channels {spec['data']['channels']}). "
        "FID and KID use the TF-FID Inception-v3 (2015-12-05) pool3 features against the statistics of the "
        "train split; the subscript is the number of generated images, so these numbers are not comparable "
        "with 50k-sample FIDs in papers. KID is unbiased (its std over subsets is given); with few samples "
        "FID is biased upwards, so compare FIDs only at equal N.",
        "",
    ]
    if real:
        n = real["n"]
        md += [
            f"Real vs real (test split, {n} images, against the train reference): **FID_{n} {_f(real[f'fid_{n}'])}, "
            f"KID_{n} {real[f'kid_{n}']:.4f} ± {real[f'kid_{n}_std']:.4f}** — the floor for every model.",
            "",
        ]
    head = "| experiment | sampler | kind | NFE | FID_N | KID_N ± std | N | s / image | test bits/dim |"
    md += [head, "|" + "|".join(["---"] * 9) + "|"]
    for _, r in table.sort_values(["experiment", "untrained", "nfe"]).iterrows():
        name = f"**{r.sampler}**" if r.main else r.sampler
        md.append(
            f"| {r.experiment} | {name} | {r.kind} | {r.nfe} | {_f(r.fid)} | {r.kid:.4f} ± {r.kid_std:.4f} | "
            f"{r.n} | {r.seconds_per_image:.3g} | {_f(r.bits_per_dim) if not r.untrained else '—'} |"
        )
    md += [
        "",
        "Bold: the experiment's main sampler. `untrained`: the same network and main sampler before "
        "training (the baseline). bits/dim: the VAEs' NELBO on the test split (an upper bound).",
        "",
    ]
    md += ["### Findings", ""] + [f"- {x}" for x in _findings(table, real)] + [""]
    plot = out / "image_fid_nfe.png"
    grids = out / "image_samples.png"
    _plot_fid_nfe(table, real, plot)
    _plot_grids(table, grids)
    md += [f"![FID and KID vs NFE]({plot.name})", "", f"![samples of every model's main sampler]({grids.name})", ""]
    return md, [plot, grids]


def _findings(t: pd.DataFrame, real: dict | None) -> list[str]:
    out = []
    trained = t[~t.untrained]
    if real is not None and not trained.empty:
        n = real["n"]
        best = trained.loc[trained.kid.idxmin()]
        verdict = (
            "near 0, below every model"
            if real[f"kid_{n}"] < trained.kid.min()
            else "NOT below every model (check the reference and the sample sizes)"
        )
        out.append(
            f"Real-vs-real KID {real[f'kid_{n}']:.4f} is {verdict}; the best model "
            f"({best.experiment}/{best.sampler}) has KID {best.kid:.4f}."
        )
    for exp, g in t.groupby("experiment"):
        base = g[g.untrained]
        main = g[g.main & ~g.untrained]
        if base.empty or main.empty:
            continue
        b, m = base.iloc[0], main.iloc[0]
        ratio = b.kid / m.kid if m.kid > 0 else float("inf")
        word = "far below" if ratio >= 5 else "below" if ratio > 1 else "NOT below"
        out.append(
            f"{exp}: KID {m.kid:.4f} ({m.sampler}) is {word} the untrained network's {b.kid:.4f} "
            f"({ratio:.1f}x); FID {_f(m.fid)} vs {_f(b.fid)}."
        )
    return out


def _plot_fid_nfe(t: pd.DataFrame, real: dict | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    trained = t[~t.untrained]
    for ax, key in zip(axes, ("fid", "kid")):
        for exp, g in trained.groupby("experiment"):
            g = g.sort_values("nfe")
            line = ax.plot(g.nfe, g[key], marker="o", label=exp)[0]
            for _, r in g.iterrows():
                ax.annotate(
                    r.sampler,
                    (r.nfe, r[key]),
                    textcoords="offset points",
                    xytext=(3, 3),
                    fontsize=7,
                    color=line.get_color(),
                )
        if real is not None:
            n = real["n"]
            ax.axhline(real[f"{key}_{n}"], color="k", ls="--", lw=1, label="real vs real (test)")
        ax.set_xscale("log")
        ax.set_xlabel("network evaluations per image (NFE)")
        ax.set_ylabel(f"{key.upper()}_{int(trained.n.iloc[0]) if not trained.empty else ''}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Sample quality vs sampling cost (lower is better)")
    save_figure(fig, path, dpi=120)


def _plot_grids(t: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    panels = [
        (
            f"{r.experiment}/{r.sampler}" + (f" ({r.nfe} NFE)" if r.nfe > 1 else ""),
            Path(r.run_dir) / "samples" / r.sampler / "grid.png",
        )
        for _, r in t[t.main | t.untrained].drop_duplicates(["experiment", "sampler"]).iterrows()
    ]
    panels = [(title, p) for title, p in panels if p.exists()]
    cols = min(4, max(1, len(panels)))
    rows = int(np.ceil(len(panels) / cols)) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, p) in zip(axes.flat, panels):
        with Image.open(p) as im:
            ax.imshow(np.asarray(im), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=8)
    save_figure(fig, path, dpi=110)
