"""The part-segmentation family's evaluate stage (training is the shared train stage): the last
checkpoint scored on the whole test split (every point of the prepared clouds, each shape's
prediction restricted to its category's parts): instance mIoU, class mIoU, point accuracy, the
mean IoU per category (per_category.json), and a figure of one test shape per category, ground
truth beside prediction. Writes metrics.json last, atomically.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from dagzoo.io import atomic_write_json
from dagzoo.plotting import save_figure
from dagzoo.stages import load_trained, write_metrics


def parts_png(clouds, true, pred, cats, data, path: Path, title: str, ious: np.ndarray) -> None:
    """The first test shape of each category: ground truth (top) and prediction (bottom), points
    coloured by their part's position in the category's part list."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [int(np.flatnonzero(cats == c)[0]) for c in range(data.num_categories) if (cats == c).any()]
    local = np.zeros(data.num_parts, np.int64)  # a part's index within its category: its colour
    for own in data.parts_of:
        local[own] = np.arange(len(own))
    cmap = plt.get_cmap("tab10")
    fig = plt.figure(figsize=(2.2 * len(shown), 4.6))
    for col, i in enumerate(shown):
        for row, (labels, what) in enumerate(((true, "truth"), (pred, "prediction"))):
            ax = fig.add_subplot(2, len(shown), row * len(shown) + col + 1, projection="3d")
            x = clouds[i]
            ax.scatter(x[:, 0], x[:, 1], x[:, 2], c=cmap(local[labels[i]] % 10), s=2, depthshade=False)
            ax.set_axis_off()
            ax.set_box_aspect((1, 1, 1))
            ax.set(xlim=(-1, 1), ylim=(-1, 1), zlim=(-1, 1))
            name = data.categories[cats[i]]
            ax.set_title(f"{name}: {what}" if row == 0 else f"{what}, IoU {ious[i]:.2f}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path, dpi=100)


def evaluate(spec_path, data_dir: Path, run_dir: Path, results: Path, rule: str | None = None) -> dict:
    run_dir = Path(run_dir)
    spec, _, _, data, model = load_trained(spec_path, data_dir, run_dir, "evaluate", rule, "parts")
    t0 = time.perf_counter()
    clouds, cats = data.clouds("test"), data.category("test")
    true = data.labels("test")  # read here and only here: the final score
    pred = model.predict(clouds, cats)
    from dagzoo.parts.metrics import segmentation_scores

    test = segmentation_scores(pred, true, cats, data.parts_of, data.categories)
    val = model.scores("val")
    seconds = time.perf_counter() - t0
    atomic_write_json(
        run_dir / "per_category.json",
        {"per_category": test["per_category"], "parts": data.part_names(), "shape_iou": test["shape_ious"]},
    )
    parts_png(
        clouds,
        true,
        pred,
        cats,
        data,
        run_dir / "parts.png",
        f"{spec['experiment']} seed {spec['seed']}: instance mIoU {test['instance_miou']:.3f}",
        test["shape_ious"],
    )
    metrics = {
        "test/instance_miou": test["instance_miou"],
        "test/instance_miou_se": test["instance_miou_se"],
        "test/class_miou": test["class_miou"],
        "test/point_acc": test["point_acc"],
        "test/point_acc_se": test["point_acc_se"],
        "test/n": test["n"],
        "eval/time_s": seconds,
    }
    metrics.update({f"test/miou/{c}": v["miou"] for c, v in test["per_category"].items()})
    if val is not None:
        metrics.update({"val/instance_miou": val["instance_miou"], "val/class_miou": val["class_miou"]})
        metrics["val/point_acc"] = val["point_acc"]
    return write_metrics(run_dir, spec, metrics, Path(results))
