"""Point-cloud family benchmarks (not tests):

1. Farthest point sampling: points/s of dagzoo's batched torch FPS against a straightforward
   per-cloud NumPy loop (the textbook algorithm) on the same clouds, and the ratio.
2. k-NN graph (DGCNN's EdgeConv): dagzoo's batched matmul + topk against a per-point
   sort of the distance row, and the ratio.
3. Depth-view projection (SimpleView's six views): clouds/s of dagzoo's one batched scatter at
   the default config's 32 x 32 and SimpleView's 128 x 128, against a per-point Python loop on the
   same clouds, and the ratio.
4. Training clouds/s of every model at the default section's sizes (forward + backward + Adam),
   side by side; and of the part segmenters (the `parts` family) at its default section's sizes.

    python bench/bench_points.py [--quick] [--threads N] [--device cuda]   # cuda: on a GPU
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dagzoo.docgen.bench import note, save
from dagzoo.parts.models.dgcnn_seg import DGCNNSeg, DGCNNSegNet
from dagzoo.parts.models.pointnet_seg import PointNetSeg, PointNetSegNet
from dagzoo.points.data import farthest_point_sampling
from dagzoo.points.models.dgcnn import DGCNNNet, knn
from dagzoo.points.models.pointnet import PointNetNet
from dagzoo.points.models.simpleview import MultiViewNet, MultiViewParams
from dagzoo.points.models.voxnet import VoxNetNet
from dagzoo.points.transforms import circular_views, depth_views, orthogonal_views


def fps_reference(x: np.ndarray, k: int) -> list[int]:
    chosen, dist = [0], np.full(len(x), np.inf)
    for _ in range(k - 1):
        d = x - x[chosen[-1]]
        dist = np.minimum(dist, (d * d).sum(1))
        chosen.append(int(np.argmax(dist)))
    return chosen


def knn_reference(x: np.ndarray, k: int) -> np.ndarray:
    """x (N, C): for each point, argsort of its distance row (O(N^2 log N) in a Python loop)."""
    return np.stack([np.argsort(((x - x[i]) ** 2).sum(1), kind="stable")[:k] for i in range(len(x))])


def timed(fn, repeat=3):
    fn()
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat


def bench_fps(quick: bool, device) -> None:
    b, m, k = (8, 2048, 256) if quick else (32, 4096, 1024)
    x = torch.randn(b, m, 3, dtype=torch.float64)
    ours = timed(lambda: farthest_point_sampling(x.to(device), k), 1)
    ref = timed(lambda: [fps_reference(c, k) for c in x.numpy()], 1)
    assert farthest_point_sampling(x, k)[0].tolist() == fps_reference(x[0].numpy(), k)
    note(
        f"FPS {b} clouds x {m} -> {k}: dagzoo {b * k / ours:,.0f} points/s, reference {b * k / ref:,.0f} "
        f"points/s, ratio {ref / ours:.1f}x"
    )


def bench_knn(quick: bool, device) -> None:
    b, n, c, k = (4, 512, 64, 20) if quick else (8, 1024, 64, 20)
    x = torch.randn(b, c, n)
    ours = timed(lambda: knn(x.to(device), k))
    ref = timed(lambda: [knn_reference(x[i].T.numpy(), k) for i in range(b)], 1)
    note(
        f"k-NN graph {b} x {n} points, {c} features, k={k}: dagzoo {ours * 1000:.1f} ms, reference "
        f"{ref * 1000:.1f} ms, ratio {ref / ours:.1f}x"
    )


def projection_reference(x: np.ndarray, cameras: np.ndarray, resolution: int, extent: float) -> np.ndarray:
    """One cloud's depth images, point by point (each pixel keeps its nearest point)."""
    out = np.zeros((len(cameras), resolution, resolution))
    for v, cam in enumerate(cameras):
        for p in x:
            u, w, z = cam @ p
            row = min(max(int(np.floor((u + extent) / (2 * extent) * resolution)), 0), resolution - 1)
            col = min(max(int(np.floor((w + extent) / (2 * extent) * resolution)), 0), resolution - 1)
            out[v, row, col] = max(out[v, row, col], 1 - min(max(extent - z, 0.0), 2 * extent) / (4 * extent))
    return out


def bench_projection(quick: bool, device, points: int = 1024) -> None:
    cameras = orthogonal_views()
    x = torch.rand(8 if quick else 64, points, 3, device=device) * 2 - 1
    loop_clouds = 2 if quick else 4
    ref_s = timed(
        lambda: [projection_reference(c, cameras.numpy(), 32, 1.0) for c in x[:loop_clouds].double().cpu().numpy()], 1
    )
    for resolution in (32, 128):

        def project():
            depth_views(x, cameras.to(device), resolution, 1.0)
            if device.type == "cuda":
                torch.cuda.synchronize()

        s = timed(project, 2 if quick else 5)
        rate = len(x) / s
        line = f"project {points} points to 6 views of {resolution}x{resolution}: {rate:,.0f} clouds/s"
        if resolution == 32:
            line += f" (per-point loop: {loop_clouds / ref_s:,.1f} clouds/s, x{rate / (loop_clouds / ref_s):,.0f})"
        note(line)


#: the default config's multi-view networks: 32 x 32 views, a 3-stage ResNet of width 8
_multiview = MultiViewParams(resolution=32, width=8, blocks=[1, 1, 1])


def bench_training(quick: bool, device, points: int = 128, batch: int = 32) -> None:
    nets = {
        "pointnet": PointNetNet(10, [64, 64], [64, 128, 256], [128, 64], [32, 64, 128], [64], 0.3, True, 1e-3),
        "pointnet_notnet": PointNetNet(10, [64, 64], [64, 128, 256], [128, 64], [32, 64, 128], [64], 0.3, False, 1e-3),
        "dgcnn": DGCNNNet(10, 10, [16, 16, 32, 64], 128, [64, 32], 0.5),
        "voxnet": VoxNetNet(10, 24, [16, 32], 64, [0.2, 0.3, 0.4], batch_norm=False),
        "simpleview": MultiViewNet(10, orthogonal_views(), _multiview, "concat", 1.05),
        "mvcnn": MultiViewNet(10, circular_views(6, np.radians(30)), _multiview, "max", 1.09),
    }
    x, y = torch.randn(batch, points, 3, device=device), torch.randint(0, 10, (batch,), device=device)
    for name, net in nets.items():
        rate = training_rate(net, (x,), lambda logits: torch.nn.functional.cross_entropy(logits, y), quick, device)
        note(f"train {name:16s} {points} points, batch {batch}: {rate:,.0f} clouds/s")


def training_rate(net, inputs: tuple, loss_of, quick: bool, device) -> float:
    """Clouds per second of forward + backward + an Adam step of `net` on `inputs`."""
    net = net.to(device)
    opt = torch.optim.Adam(net.parameters(), 1e-3)

    def step():
        out, reg = net(*inputs)
        loss = loss_of(out) + reg
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return len(inputs[0]) / timed(step, 2 if quick else 5)


def bench_segmentation(quick: bool, device, points: int = 256, batch: int = 16) -> None:
    """The default config's part segmenters: 5 categories, 13 parts, 256 points, batch 16."""
    from dagzoo.registry import validate_params

    pointnet = {"mlp1": [32, 64, 64], "mlp2": [128, 256], "seg_head": [128, 64], "tnet_mlp": [32, 64, 128]}
    dgcnn = {"k": 10, "widths": [32, 32, 32], "emb_dims": 128, "category_dims": 16, "seg_head": [128, 64]}
    nets = {
        "pointnet_seg": PointNetSegNet(13, 5, validate_params(PointNetSeg.Params, {**pointnet, "tnet_fc": [64]}, "p")),
        "dgcnn_seg": DGCNNSegNet(13, 5, validate_params(DGCNNSeg.Params, {**dgcnn, "dropout": 0.2}, "p")),
    }
    x = torch.randn(batch, points, 3, device=device)
    cats = torch.randint(0, 5, (batch,), device=device)
    y = torch.randint(0, 13, (batch, points), device=device)
    for name, net in nets.items():
        rate = training_rate(
            net,
            (x, cats),
            lambda logits: torch.nn.functional.cross_entropy(logits.reshape(-1, 13), y.reshape(-1)),
            quick,
            device,
        )
        note(f"train {name:16s} {points} points, batch {batch}: {rate:,.0f} clouds/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    note(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device}")
    bench_fps(a.quick, device)
    bench_knn(a.quick, device)
    bench_projection(a.quick, device)
    bench_training(a.quick, device)
    bench_segmentation(a.quick, device)
    save(__file__)


if __name__ == "__main__":
    main()
