"""DGCNN training throughput on ModelNet40-shaped random data (1,024 points, batch 32, 40
classes, the paper's sizes: k=20, EdgeConv 64-64-128-256, 1024-d embedding), SGD momentum 0.9
as in the paper, on a GPU; prints clouds/s. --small: tiny sizes on the CPU (checks it runs).

    python bench/gpu_points.py [--small] [--steps 50] [--amp]
"""

from __future__ import annotations

import argparse
import time

import torch

from dagzoo.points.models.dgcnn import DGCNNNet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="CPU, 128 points, batch 8, narrow layers")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    a = ap.parse_args()
    if a.small:
        device, points, batch, net = torch.device("cpu"), 128, 8, DGCNNNet(40, 10, [16, 16, 32, 64], 128, [64, 32], 0.5)
        steps = min(a.steps, 5)
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device (use --small to check the script on the CPU)")
        device, points, batch, steps = torch.device("cuda"), 1024, 32, a.steps
        net = DGCNNNet(40, 20, [64, 64, 128, 256], 1024, [512, 256], 0.5)
        torch.backends.cudnn.benchmark = True
    net = net.to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(batch, points, 3, device=device, generator=g)
    y = torch.randint(0, 40, (batch,), device=device, generator=g)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.amp):
            logits, _ = net(x)
            loss = torch.nn.functional.cross_entropy(logits.float(), y, label_smoothing=0.2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up (cuDNN autotuning, allocator)
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    s = (time.perf_counter() - t) / steps
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    mem = f", peak memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB" if device.type == "cuda" else ""
    print(
        f"DGCNN {points} points, batch {batch}, {name}{' bf16' if a.amp else ''}: {batch / s:,.0f} clouds/s "
        f"({s * 1000:.1f} ms/step{mem}); one ModelNet40 epoch (9,843 clouds) {9843 / (batch / s):.0f} s"
    )


if __name__ == "__main__":
    main()
