"""The representations family's stages after training, each reading the trained encoder's frozen
features (features.npz, written by `encode`) and writing one JSON file into the run directory;
`evaluate` collects them into metrics.json."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from dagzoo.io import atomic_write_json, atomic_writer, read_json
from dagzoo.repr.probes import FrozenFeatures, accuracy, macro_f1

SPLITS = ("train", "val", "test")
#: the stream of the held-out views of the MI bound
MI_STREAM = 0x1B0


def _plot(fig, path: Path) -> None:
    from dagzoo.plotting import save_figure

    save_figure(fig, path, dpi=110)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def encode(spec_path, data_dir: Path, run_dir: Path, rule: str | None, mi_batch: int, erf_images: int) -> dict:
    """features.npz (the frozen pre-projector features and labels of every split), then
    encode.json: the held-out InfoNCE bound (InfoNCE methods), the theoretical receptive field
    per layer and the effective one (trained and untrained; erf.png), and embedding.png."""
    import torch

    from dagzoo.repr.encoders import effective_receptive_field
    from dagzoo.stages import load_trained
    from dagzoo.train import default_device

    t0 = time.time()
    spec, _, cls, data, model = load_trained(spec_path, data_dir, run_dir, "evaluate-encode", rule, "repr")
    arrays = {}
    for split in SPLITS:
        arrays[f"{split}_x"] = model.encode(data.images(split)).numpy()
        arrays[f"{split}_y"] = data.labels(split)
        if cls.has_projector:
            arrays[f"proj_{split}_x"] = model.encode(data.images(split), projected=True).numpy()
    with atomic_writer(run_dir / "features.npz") as f:
        np.savez(f, **arrays)

    out = {"feature_dim": int(arrays["train_x"].shape[1]), "receptive_field": model.receptive_field()}
    test = torch.from_numpy(data.images("test")).float() / 255.0
    if cls.infonce:
        out["mi"] = _mi_bound(model, test, spec["seed"], mi_batch)
    untrained = cls.load(model.params, data, None, default_device(), seed=spec["seed"])
    erf = {}
    for name, m in (("untrained", untrained), ("trained", model)):
        m.net.eval()
        erf[name] = (
            effective_receptive_field(lambda x, m=m: m.feature_map(x, m.net), test[:erf_images].to(m.device))
            .cpu()
            .numpy()
        )
    out["effective_receptive_field"] = {name: _erf_summary(e) for name, e in erf.items()}
    _plot_erf(erf, out["receptive_field"], spec, run_dir / "erf.png")
    _plot_embedding(arrays["test_x"], arrays["test_y"], spec, run_dir / "embedding.png")
    out["seconds"] = time.time() - t0
    atomic_write_json(run_dir / "encode.json", out)
    return {k: v for k, v in out.items() if k != "receptive_field"}


def _mi_bound(model, images, seed: int, batch: int) -> dict:
    """The InfoNCE bound log M - L_NCE on held-out (test) images, L averaged over full batches of
    about `batch` candidates (SimCLR: images; CPC: patches) with fresh seeded views; per score set
    (SimCLR: one; CPC: one per k)."""
    from dagzoo.augment import step_generator
    from dagzoo.repr.probes import infonce_bound

    batch = model.nce_images(batch)
    n = (len(images) // batch) * batch
    if n == 0:
        batch = n = len(images)
    per_set: dict[str, list] = {}
    for i, start in enumerate(range(0, n, batch)):
        g = step_generator(seed, i, MI_STREAM)
        for name, scores in model.nce_scores(model.net, images[start : start + batch].to(model.device), g):
            per_set.setdefault(name, []).append(infonce_bound(scores.float().cpu()))
    out = {}
    for name, values in per_set.items():
        bounds, log_m, losses = zip(*values)
        out[name] = {
            "bound": float(np.mean(bounds)),
            "log_m": float(log_m[0]),
            "nce_loss": float(np.mean(losses)),
            "batches": len(values),
        }
    return out


def _erf_summary(erf: np.ndarray) -> dict:
    """Side of the smallest square centred on the measured unit that holds 90% of the ERF's mass
    (and the whole map's support). The unit's centre in the image is the ERF's centroid: with
    stride 2 the central unit of a 28-px image sees rows 9-23, not a field around pixel 14, and
    an 8-px patch's centre lies between two pixels (a square of even side then fits it)."""
    h, w = erf.shape
    total = erf.sum()
    if not total > 0:  # no gradient reaches the input (a dead unit): no field to measure
        return {"side_90": None, "support": 0, "image": [int(h), int(w)], "centre": None}
    cy = float((erf.sum(axis=1) * np.arange(h)).sum() / total)
    cx = float((erf.sum(axis=0) * np.arange(w)).sum() / total)
    side = max(h, w)
    for s in range(1, max(h, w) + 1):
        top, left = max(0, round(cy - (s - 1) / 2)), max(0, round(cx - (s - 1) / 2))
        if erf[top : top + s, left : left + s].sum() >= 0.9 * total:
            side = s
            break
    return {
        "side_90": int(side),
        "support": int((erf > 1e-12).sum()),
        "image": [int(h), int(w)],
        "centre": [round(cy, 2), round(cx, 2)],
    }


def _plot_erf(erf: dict, table: list[dict], spec: dict, path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(6, 3.2))
    theo = table[-1]["receptive_field"] if table else 1
    for ax, (name, e) in zip(axes, erf.items()):
        ax.imshow(e, cmap="magma")
        side = _erf_summary(e)["side_90"]
        ax.set_title(f"{name}: 90% in {side} px" if side else f"{name}: no gradient reaches the input")
        ax.axis("off")
    fig.suptitle(f"{spec['experiment']}: effective receptive field (theoretical {theo} px)")
    _plot(fig, path)


def _plot_embedding(x: np.ndarray, y: np.ndarray, spec: dict, path: Path) -> None:
    """The test features' first two principal components (standardised features), by class."""
    from sklearn.decomposition import PCA

    plt = _pyplot()
    std = x.std(0)
    z = PCA(n_components=2, random_state=0).fit_transform((x - x.mean(0)) / np.where(std > 1e-8, std, 1))
    fig, ax = plt.subplots(figsize=(4.2, 4))
    sc = ax.scatter(z[:, 0], z[:, 1], c=y, cmap="tab10", s=5)
    ax.legend(*sc.legend_elements(), fontsize=6, loc="best", markerscale=0.6)
    ax.set_title(f"{spec['experiment']}: test features (PCA)")
    ax.set_xticks([])
    ax.set_yticks([])
    _plot(fig, path)


def probe(features: Path, grid: list[float], out: Path) -> dict:
    """The linear probe (C chosen on val, refitted on train + val, test scored once); the bias
    ablation, a pair of probes with and without an intercept on raw, uncentred features (only the
    intercept differs between them); and for methods with a projector the probe after it (each
    its own C, chosen on val)."""
    from dagzoo.repr.probes import linear_probe

    t0 = time.time()
    ff = FrozenFeatures.load(features)
    main = linear_probe(ff, grid, bias=True, standardise=True)
    raw = linear_probe(ff, grid, bias=True, standardise=False)
    ablation = linear_probe(ff, grid, bias=False, standardise=False)
    projected = ff.projected()
    after_projector = linear_probe(projected, grid) if projected else None
    y_test = ff.y("test")  # read once, after every choice and fit
    acc, se = accuracy(main.pop("test_pred"), y_test)
    acc_raw, se_raw = accuracy(raw.pop("test_pred"), y_test)
    acc_nb, se_nb = accuracy(ablation.pop("test_pred"), y_test)
    extra = {}
    if after_projector:
        extra["test/linear_acc_projector"], extra["test/linear_acc_projector_se"] = accuracy(
            after_projector.pop("test_pred"), y_test
        )
    result = {
        **extra,
        "test/linear_acc": acc,
        "test/linear_acc_se": se,
        "probe/C": main["C"],
        "probe/val_acc": max(main["val_acc"].values()),
        "test/linear_acc_raw": acc_raw,
        "test/linear_acc_raw_se": se_raw,
        "probe/C_raw": raw["C"],
        "test/linear_acc_nobias": acc_nb,
        "test/linear_acc_nobias_se": se_nb,
        "probe/C_nobias": ablation["C"],
        # a C at the grid's end may be short of the best one: the report says so
        "probe/C_at_edge": float(len(grid) > 1 and main["C"] in (min(grid), max(grid))),
        # refits stopped at the iteration cap: their accuracy may be short of the optimum
        "probe/unconverged": float(sum(not p["converged"] for p in (main, raw, ablation, after_projector) if p)),
        "detail": {"bias": main, "bias_raw": raw, "no_bias_raw": ablation, "after_projector": after_projector},
        "seconds": time.time() - t0,
    }
    atomic_write_json(out, result)
    return result


def knn(features: Path, k: int, temperature: float, out: Path) -> dict:
    import torch

    from dagzoo.repr.probes import knn_predict

    t0 = time.time()
    ff = FrozenFeatures.load(features)
    # the bank is train + val: kNN chooses nothing, so val is just more labelled data
    bank = torch.from_numpy(np.concatenate([ff.x("train"), ff.x("val")]))
    labels = torch.from_numpy(np.concatenate([ff.y("train"), ff.y("val")]))
    classes = int(labels.max()) + 1
    pred = knn_predict(bank, labels, torch.from_numpy(ff.x("test")), classes, k, temperature).numpy()
    acc, se = accuracy(pred, ff.y("test"))
    result = {
        "test/knn_acc": acc,
        "test/knn_acc_se": se,
        "knn/k": k,
        "knn/temperature": temperature,
        "seconds": time.time() - t0,
    }
    atomic_write_json(out, result)
    return result


#: the long-tailed probes' training losses -> their metrics' suffix
SMOOTHED_LOSSES = {"cross_entropy": "ce", "soft_f1": "softf1", "reinforce": "reinforce"}


def smoothed(features: Path, ratio: float, epochs: int, lr: float, out: Path) -> dict:
    """Linear probes trained with cross-entropy, soft-F1 and REINFORCE on per-example accuracy on
    a long-tailed subset of the train split (standardised features, the same steps and lr);
    macro-F1, accuracy and soft accuracy (the mean probability of the true class, <1_y, p>: the
    seed's smoothed accuracy) of each on test."""
    import torch

    from dagzoo.repr.probes import imbalanced_subset, soft_accuracy, train_linear

    t0 = time.time()
    ff = FrozenFeatures.load(features)
    ytr = ff.y("train")
    keep = imbalanced_subset(ytr, ratio, seed=0)
    xtr = ff.x("train")[keep]
    mean, std = xtr.mean(0), np.where(xtr.std(0) > 1e-8, xtr.std(0), 1.0)
    classes = int(ytr.max()) + 1
    probs = {}
    for loss in SMOOTHED_LOSSES:
        lin = train_linear((xtr - mean) / std, ytr[keep], classes, loss, epochs, lr, 0.0, seed=0)
        with torch.no_grad():
            probs[loss] = lin(torch.from_numpy(((ff.x("test") - mean) / std).astype(np.float32))).softmax(1).numpy()
    y_test = ff.y("test")
    result = {"smooth/train_size": int(len(keep)), "smooth/imbalance_ratio": ratio, "seconds": time.time() - t0}
    for loss, short in SMOOTHED_LOSSES.items():
        pred = probs[loss].argmax(1)
        result[f"test/macro_f1_{short}"] = macro_f1(pred, y_test, classes)
        result[f"test/acc_{short}_imbalanced"] = accuracy(pred, y_test)[0]
        result[f"test/soft_acc_{short}_imbalanced"] = soft_accuracy(probs[loss], y_test)
    atomic_write_json(out, result)
    return result


def evaluate(spec_path, data_dir: Path, run_dir: Path, results: Path, rule: str | None) -> dict:
    """metrics.json from the run's encode/probe/knn/smoothed outputs."""
    from dagzoo.stages import load_trained, write_metrics

    spec, *_ = load_trained(spec_path, data_dir, run_dir, "evaluate", rule, "repr", with_model=False)
    enc = read_json(run_dir / "encode.json")
    metrics = {}
    for name in ("probe.json", "knn.json", "smoothed.json"):
        metrics.update(
            {k: v for k, v in read_json(run_dir / name).items() if isinstance(v, (int, float)) and k != "seconds"}
        )
    metrics["model/feature_dim"] = enc["feature_dim"]
    table = enc["receptive_field"]
    if table:
        metrics["model/receptive_field"] = table[-1]["receptive_field"]
    for name, e in enc["effective_receptive_field"].items():
        metrics[f"model/erf90_{name}"] = e["side_90"]
    mi = enc.get("mi") or {}
    if mi:
        # SimCLR's one set; CPC's smallest k (sets named k<offset>, in the config's order)
        first = mi[min(mi, key=lambda name: int(name[1:]) if name[1:].isdigit() else 0)]
        metrics["test/mi_bound"], metrics["test/mi_log_n"] = first["bound"], first["log_m"]
        for name, v in mi.items():
            metrics[f"test/mi_bound_{name}"] = v["bound"]
    return write_metrics(run_dir, spec, metrics, results)
