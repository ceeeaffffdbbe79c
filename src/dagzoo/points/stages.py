"""The point-cloud family's evaluate stage (training is the shared train stage): the last
checkpoint (selection never looks at the test split) scored on the whole test split, single
view, no voting: OA and mAcc with binomial SEs, per-class accuracy, a confusion-matrix PNG, and
the accuracy on the same test clouds under random SO(3) rotations (robustness to orientation,
which training only randomised about the up axis). Writes metrics.json last, atomically.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from dagzoo.io import atomic_write_json
from dagzoo.plotting import save_figure
from dagzoo.points import transforms as T
from dagzoo.points.base import accuracy_counts, predict, repeated_views_se
from dagzoo.stages import load_trained, write_metrics

_SO3_STREAM = 0x50C3


def confusion_png(conf: np.ndarray, classes: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(classes)
    fig, ax = plt.subplots(figsize=(2 + 0.35 * k, 1.5 + 0.35 * k))
    rows = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(k), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if conf[i, j]:
                    ax.text(
                        j,
                        i,
                        str(conf[i, j]),
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if rows[i, j] > 0.5 else "black",
                    )
    ax.set_title(title, fontsize=9)
    save_figure(fig, path, dpi=110)


def evaluate(spec_path, data_dir: Path, run_dir: Path, results: Path, rule: str | None = None) -> dict:
    run_dir = Path(run_dir)
    spec, _, _, data, model = load_trained(spec_path, data_dir, run_dir, "evaluate", rule, "points")
    p, net, k = model.params, model.net, data.num_classes
    net.eval()
    t0 = time.perf_counter()
    x = torch.from_numpy(data.clouds("test")).to(model.device)
    y = data.labels("test")  # read here and only here: the final score
    test = accuracy_counts(predict(net, x, p.eval_batch_size).cpu().numpy(), y, k)
    # the same clouds, each under so3_rotations random rotations (seeded by the run's seed)
    g = torch.Generator().manual_seed(int(spec["seed"]) ^ _SO3_STREAM)
    preds = []
    for _ in range(p.so3_rotations):
        rot = T.random_so3(len(x), g).to(model.device)
        preds.append(predict(net, T.rotate(x, rot), p.eval_batch_size).cpu().numpy())
    so3 = accuracy_counts(np.concatenate(preds), np.tile(y, p.so3_rotations), k)
    so3["oa_se"] = repeated_views_se(np.stack(preds) == y)  # a cloud's rotations are not independent
    val_x = data.clouds("val")
    val = (
        accuracy_counts(
            predict(net, torch.from_numpy(val_x).to(model.device), p.eval_batch_size).cpu().numpy(),
            data.labels("val"),
            k,
        )
        if len(val_x)
        else None
    )
    seconds = time.perf_counter() - t0
    per_class = [
        {"class": c, "n": int(test["confusion"][i].sum()), "accuracy": float(test["per_class"][i])}
        for i, c in enumerate(data.classes)
    ]
    atomic_write_json(
        run_dir / "per_class.json", {"classes": data.classes, "per_class": per_class, "confusion": test["confusion"]}
    )
    confusion_png(
        test["confusion"],
        data.classes,
        run_dir / "confusion.png",
        f"{spec['experiment']} seed {spec['seed']}: OA {test['oa']:.3f}, mAcc {test['macc']:.3f}",
    )
    metrics = {
        "test/oa": test["oa"],
        "test/oa_se": test["oa_se"],
        "test/macc": test["macc"],
        "test/macc_se": test["macc_se"],
        "test/n": test["n"],
        "test/oa_so3": so3["oa"],
        "test/oa_so3_se": so3["oa_se"],
        "test/macc_so3": so3["macc"],
        "test/chance": float(np.bincount(y, minlength=k).max() / len(y)),
        "eval/time_s": seconds,
    }
    if val is not None:
        metrics.update({"val/oa": val["oa"], "val/oa_se": val["oa_se"], "val/macc": val["macc"]})
    return write_metrics(run_dir, spec, metrics, Path(results), per_class=per_class)
