"""The image family's stages (training is the shared train stage of dagzoo.stages):

- `reference`: Inception features + statistics of a split (train: the FID reference, computed
  once per data set; test: the real-vs-real check);
- `sample`: one trained (or, as the baseline, untrained) network with one named sampler ->
  uint8 images, a PNG grid, NFE and wall time;
- `fid`: fid_<N> / kid_<N> of one sample set against the train reference;
- `evaluate`: per run, every sampler's numbers in one metrics.json (+ test bits/dim for the VAEs)
  and the FID-versus-NFE plot;
- `real_vs_real`: the test split against the train reference (what "close to the data" means).

Each stage writes its outputs atomically (the file Snakemake waits for last) and mirrors the run
into MLflow.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from dagzoo.data.images import ImageData
from dagzoo.data.integrity import load_npy, load_npz
from dagzoo.errors import ConfigError
from dagzoo.eval.fid import InceptionFeatures, feature_stats, fid_kid
from dagzoo.image.samplers import parse_sampler
from dagzoo.io import atomic_save_npy, atomic_write_json, atomic_writer, read_json, read_jsonl
from dagzoo.plotting import save_figure, write_run_curve
from dagzoo.stages import load_trained, write_metrics


# ---------------------------------------------------------------------------------- reference
def reference(data_dir: Path, split: str, out: Path, n: int | None = None, seed: int = 0, batch: int = 50) -> dict:
    """Features and (mu, sigma) of `split` (all of it, or a seeded random subset of n images)."""
    data = ImageData(data_dir)
    images = data.images(split)
    if n is not None and n < len(images):
        idx = np.sort(np.random.default_rng(seed).choice(len(images), n, replace=False))
        images = images[idx]
    t0 = time.perf_counter()
    feats = InceptionFeatures()(images, batch=batch, desc=f"inception {split}")
    mu, sigma = feature_stats(feats)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(out) as f:
        np.savez(f, features=feats, mu=mu, sigma=sigma, n=len(feats), split=split)
    info = {
        "split": split,
        "n": len(feats),
        "seconds": time.perf_counter() - t0,
        "seconds_per_image": (time.perf_counter() - t0) / max(len(feats), 1),
    }
    atomic_write_json(out.with_suffix(".json"), info)
    return info


def load_reference(path: Path) -> dict:
    z = load_npz(path, ("features", "mu", "sigma", "n"), "rerun `dagzoo image-reference` (the image_reference rule)")
    return {"features": z["features"], "mu": z["mu"], "sigma": z["sigma"], "n": int(z["n"])}


# ---------------------------------------------------------------------------------- sample
def sample(
    spec_path: str | Path,
    data_dir: Path,
    run_dir: Path,
    results: Path,
    sampler_name: str,
    sampler: dict,
    n: int,
    rule: str | None = None,
    untrained: bool = False,
    grid: int = 64,
) -> Path:
    """Writes <run>/samples/<sampler_name>/{images.npy, grid.png, samples.json}."""
    run_dir = Path(run_dir)
    spec, _, cls, _, model = load_trained(
        spec_path, data_dir, run_dir, f"sample-{sampler_name}", rule, "image", untrained=untrained
    )
    where = f"image.experiments.{spec['experiment']}.samplers.{sampler_name}"
    sp = parse_sampler(sampler, where)
    if sampler["kind"] not in cls.sampler_kinds:
        raise ConfigError(
            f"{where}.kind: {sampler['kind']!r} does not apply to {spec['model']}; allowed: "
            f"{', '.join(cls.sampler_kinds)}"
        )
    out = run_dir / "samples" / sampler_name
    out.mkdir(parents=True, exist_ok=True)
    # the samples depend on (seed, sampler) only; the untrained baseline on another stream
    generator = torch.Generator().manual_seed(spec["seed"] * 1_000_003 + (7 if untrained else 0))
    t0 = time.perf_counter()
    images, nfe = model.generate(n, sp, generator)
    seconds = time.perf_counter() - t0
    atomic_save_npy(out / "images.npy", images)
    save_grid(images[:grid], out / "grid.png")
    atomic_write_json(
        out / "samples.json",
        {
            "sampler": sampler_name,
            "spec": sampler,
            "untrained": untrained,
            "n": int(len(images)),
            "nfe": nfe,
            "seconds": seconds,
            "seconds_per_image": seconds / max(len(images), 1),
            "seconds_per_nfe": seconds / max(nfe, 1),
            "timestamp_ms": int(time.time() * 1000),
        },
    )
    return out / "samples.json"


def save_grid(images: np.ndarray, path: Path, nrow: int | None = None) -> None:
    """uint8 (N, C, H, W) -> one PNG grid with 1-pixel gaps (written atomically)."""
    from PIL import Image

    n, c, h, w = images.shape
    nrow = nrow or int(np.ceil(np.sqrt(max(n, 1))))
    ncol = int(np.ceil(n / nrow)) if n else 1
    canvas = np.full((ncol * (h + 1) + 1, nrow * (w + 1) + 1, c), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        r, q = divmod(i, nrow)
        canvas[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + q * (w + 1) : 1 + q * (w + 1) + w] = img.transpose(1, 2, 0)
    scale = max(1, 256 // max(canvas.shape[:2]))  # small images: enlarge so a person can see them
    pil = Image.fromarray(canvas[..., 0] if c == 1 else canvas).resize(
        (canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST
    )
    with atomic_writer(Path(path)) as f:
        pil.save(f, format="PNG")


# ---------------------------------------------------------------------------------- fid
def fid(
    samples_dir: Path,
    reference_path: Path,
    out: Path | None = None,
    subsets: int = 100,
    subset_size: int = 1000,
    batch: int = 50,
) -> dict:
    samples_dir = Path(samples_dir)
    ref = load_reference(reference_path)  # first: a bad reference must not cost the Inception pass
    images = load_npy(samples_dir / "images.npy", (np.uint8,), f"rerun the sampling that wrote {samples_dir}")
    t0 = time.perf_counter()
    feats = InceptionFeatures()(images, batch=batch, desc=f"inception {samples_dir.name}")
    result = fid_kid(feats, ref, subsets, subset_size)
    result["feature_seconds"] = time.perf_counter() - t0
    result["reference_n"] = ref["n"]
    atomic_write_json(Path(out) if out else samples_dir / "fid.json", result)
    return result


def real_vs_real(
    test_reference: Path, train_reference: Path, out: Path, subsets: int = 100, subset_size: int = 1000
) -> dict:
    test = load_reference(test_reference)
    result = fid_kid(test["features"], load_reference(train_reference), subsets, subset_size)
    atomic_write_json(out, result)
    return result


# ---------------------------------------------------------------------------------- evaluate
def evaluate(
    spec_path: str | Path,
    data_dir: Path,
    run_dir: Path,
    results: Path,
    samplers: list[str],
    main_sampler: str,
    rule: str | None = None,
) -> dict:
    run_dir = Path(run_dir)
    spec, _, cls, data, model = load_trained(
        spec_path, data_dir, run_dir, "evaluate", rule, "image", with_model=lambda cls: cls.has_likelihood
    )
    metrics = {}
    table = []
    for name in [*samplers, "untrained"]:
        d = run_dir / "samples" / name
        if not (d / "fid.json").exists():
            continue
        s, f = read_json(d / "samples.json"), read_json(d / "fid.json")
        n = f["n"]
        row = {
            "sampler": name,
            "kind": s["spec"]["kind"],
            "nfe": s["nfe"],
            "n": n,
            "fid": f[f"fid_{n}"],
            "kid": f[f"kid_{n}"],
            "kid_std": f[f"kid_{n}_std"],
            "seconds_per_image": s["seconds_per_image"],
            "untrained": s["untrained"],
        }
        table.append(row)
        prefix = "untrained" if name == "untrained" else f"samplers/{name}"
        metrics.update(
            {
                f"{prefix}/fid_{n}": row["fid"],
                f"{prefix}/kid_{n}": row["kid"],
                f"{prefix}/kid_{n}_std": row["kid_std"],
                f"{prefix}/nfe": row["nfe"],
                f"{prefix}/seconds_per_image": row["seconds_per_image"],
            }
        )
        if name == main_sampler:
            metrics.update(
                {f"fid_{n}": row["fid"], f"kid_{n}": row["kid"], f"kid_{n}_std": row["kid_std"], "nfe": row["nfe"]}
            )
    if cls.has_likelihood:
        torch.manual_seed(spec["seed"])  # latent samples of the bound estimate
        metrics.update(model.test_nll_bits_per_dim(data.images("test")))
    _plot_fid_nfe(table, run_dir / "fid_nfe.png", spec)
    _plot_loss(run_dir, spec)
    return write_metrics(run_dir, spec, metrics, results, samplers=table, main_sampler=main_sampler)


def _plot_loss(run_dir: Path, spec: dict) -> None:
    """curve.png: the training loss against images seen (an MLflow artifact)."""
    points = [
        (r.get("images", r.get("tokens")), r["train/loss"])  # "tokens": histories before the units
        for r in read_jsonl(run_dir / "history.jsonl")
        if "train/loss" in r
    ]
    ylabel = "loss (per dimension)" if spec["model"] in ("vae", "gumbel_vae") else "loss"
    write_run_curve(run_dir, spec, [(None, points, {})], "training images", ylabel, log_y=True)


def _plot_fid_nfe(table: list[dict], path: Path, spec: dict) -> None:
    rows = [r for r in table if not r["untrained"]]
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key in zip(axes, ("fid", "kid")):
        for r in rows:
            ax.errorbar(r["nfe"], r[key], yerr=r["kid_std"] if key == "kid" else None, fmt="o", capsize=3)
            ax.annotate(r["sampler"], (r["nfe"], r[key]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("NFE per image")
        ax.set_ylabel(f"{key.upper()} ({rows[0]['n']} samples)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{spec['experiment']} (seed {spec['seed']}): sample quality vs network evaluations")
    save_figure(fig, path, dpi=110)
