"""Representations family benchmarks (not tests):

1. Augmentation throughput: SimCLR's CIFAR pipeline (random resized crop 0.08-1, flip, colour
   jitter 0.4/0.4/0.2/0.1 with p 0.8, grayscale p 0.2) as dagzoo applies it, one batched call of
   tensor ops, against the same ops applied image by image (as a per-image transforms pipeline
   does), in the same run: images/s and the ratio.
2. Training images/s per objective at the default config's encoder on digits-shaped data.
3. --gpu: ResNet-18 (CIFAR stem) SimCLR training steps on CIFAR-10-shaped data, images/s and the
   implied seconds per 50,000-image epoch (run on a GPU node; `--gpu --device cpu --quick` checks
   the script anywhere).

    python bench/bench_repr.py [--quick] [--threads N] [--gpu] [--device cuda]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch

from dagzoo.augment import step_generator
from dagzoo.docgen.bench import save, table
from dagzoo.registry import get_model, validate_params
from dagzoo.repr.base import AugmentParams, augment

SIMCLR_CIFAR = AugmentParams(
    crop_scale=[0.08, 1.0], hflip=True, jitter=[0.4, 0.4, 0.2, 0.1], jitter_p=0.8, grayscale_p=0.2
)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _rate(fn, n_images: int, device, repeats: int) -> float:
    fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return n_images * repeats / (time.perf_counter() - t0)


def bench_augment(device, quick: bool) -> None:
    n = 64 if quick else 256
    x = torch.rand(n, 3, 32, 32, device=device)
    g = step_generator(0, 0, 1)
    batched = _rate(lambda: augment(x, SIMCLR_CIFAR, g), n, device, 3 if quick else 10)
    per_image = _rate(lambda: [augment(x[i : i + 1], SIMCLR_CIFAR, g) for i in range(n)], n, device, 1 if quick else 3)
    table(
        f"Augmentation throughput ({n} CIFAR-shaped images, SimCLR's ops)",
        ["pipeline", "images/s", "vs per image"],
        [
            ["batched tensor ops (dagzoo)", f"{batched:,.0f}", f"{batched / per_image:.1f}x"],
            ["the same ops image by image", f"{per_image:,.0f}", "1.0x"],
        ],
    )


class _Digits:
    """Random digits-shaped data (16x16, 10 classes) with the interface the models read."""

    shape, classes = (1, 16, 16), 10

    def __init__(self, n=1024):
        rng = np.random.default_rng(0)
        self._x, self._y = rng.integers(0, 256, (n, 1, 16, 16), dtype=np.uint8), rng.integers(0, 10, n)

    def images(self, split):
        return self._x

    def labels(self, split):
        return self._y


def bench_training(device, quick: bool) -> None:
    data = _Digits()
    rows = []
    common = {"widths": [32, 64, 128], "strides": [1, 2, 2], "batch_size": 256}
    for name, extra in (
        ("simclr", {"crop_scale": [0.6, 1.0]}),
        ("contrastive", {"crop_scale": [0.6, 1.0]}),
        ("cpc", {"batch_size": 64}),
        ("supervised", {"crop_scale": [0.6, 1.0]}),
    ):
        cls = get_model("repr", name)
        params = validate_params(cls.Params, {**common, **extra}, name)
        model = cls(params, data, device)
        model._train = torch.from_numpy(data.images("train")).to(device)
        model._labels = torch.from_numpy(data.labels("train")).to(device)
        net = model.init_network(0)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

        steps = itertools.count()

        def step():
            loss = model.step_loss(net, next(steps), 0)
            opt.zero_grad()
            loss.backward()
            opt.step()

        rate = _rate(step, params.batch_size, device, 2 if quick else 8)
        rows.append([name, params.batch_size, f"{model.num_params():,}", f"{rate:,.0f}"])
    table("Training throughput (digits 16px, convnet 32-64-128)", ["objective", "batch", "params", "images/s"], rows)


def bench_gpu(device, quick: bool) -> None:
    batch = 32 if quick else 256
    cls = get_model("repr", "simclr")
    params = validate_params(
        cls.Params,
        {
            "encoder": "resnet18",
            "widths": [16 if quick else 64],
            "proj_hidden": 2048,
            "proj_dim": 256,
            "temperature": 0.2,
            "batch_size": batch,
            "crop_scale": [0.08, 1.0],
            "hflip": True,
            "jitter": [0.4, 0.4, 0.2, 0.1],
            "grayscale_p": 0.2,
        },
        "gpu",
    )

    class Cifar(_Digits):
        shape = (3, 32, 32)

        def __init__(self):
            rng = np.random.default_rng(0)
            self._x = rng.integers(0, 256, (2048, 3, 32, 32), dtype=np.uint8)
            self._y = rng.integers(0, 10, 2048)

    data = Cifar()
    model = cls(params, data, device)
    model._train, model._labels = torch.from_numpy(data._x).to(device), torch.from_numpy(data._y).to(device)
    net = model.init_network(0)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )

    steps = itertools.count()

    def step():
        with autocast:
            loss = model.step_loss(net, next(steps), 0)
        opt.zero_grad()
        loss.backward()
        opt.step()

    rate = _rate(step, batch, device, 2 if quick else 20)
    table(
        "SimCLR, ResNet-18 CIFAR stem, projector 2048-256 (two views per image)",
        ["device", "batch", "params", "images/s", "s per 50k-image epoch"],
        [[str(device), batch, f"{model.num_params():,}", f"{rate:,.0f}", f"{50_000 / rate:,.1f}"]],
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--gpu", action="store_true", help="only the ResNet-18 CIFAR-shaped training benchmark")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    if a.gpu:
        bench_gpu(device, a.quick)
    else:
        bench_augment(device, a.quick)
        bench_training(device, a.quick)
    save(__file__)


if __name__ == "__main__":
    main()
