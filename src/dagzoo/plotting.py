"""The one way a run draws its own curve.png (an MLflow artifact): series against training amount."""

from __future__ import annotations

from pathlib import Path


def save_figure(fig, path: Path, dpi: int = 120) -> None:
    """Write a matplotlib figure as PNG atomically (tight layout) and close it."""
    import matplotlib.pyplot as plt

    from dagzoo.io import atomic_writer

    fig.tight_layout()
    with atomic_writer(Path(path)) as f:
        fig.savefig(f, format="png", dpi=dpi)
    plt.close(fig)


def write_run_curve(
    run_dir: Path,
    spec: dict,
    series: list[tuple[str | None, list[tuple[float, float]], dict]],
    xlabel: str,
    ylabel: str,
    log_y: bool = False,
) -> None:
    """Plot every non-empty (label, points, matplotlib kwargs) series into run_dir/curve.png
    (written atomically); nothing is written unless some series has two points."""
    if all(len(points) < 2 for _, points, _ in series):
        return
    series = [s for s in series if s[1]]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, points, style in series:
        ax.plot(*zip(*points), label=label, **style)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("log")
    ax.set_title(f"{spec['experiment']} (seed {spec['seed']})")
    ax.grid(alpha=0.3)
    if any(label for label, _, _ in series):
        ax.legend()
    save_figure(fig, Path(run_dir) / "curve.png", dpi=110)
