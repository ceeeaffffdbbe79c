"""Checks that need a CUDA device (skipped without one; bench/gpu_check.sh runs the whole DAG
on a GPU node). Each one is a device mismatch that the CPU-only suite cannot see."""

import pytest
import torch

from dagzoo.registry import get_model, validate_params

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("name", ["simclr", "contrastive", "cpc", "supervised"])
def test_repr_step_and_online_probe_run_on_cuda(name, tmp_path):
    # the online probe read CPU features with a CUDA probe: every trained repr model failed on a GPU
    from dagzoo.repr.data import ReprData, prepare_repr_data

    prepare_repr_data("digits", tmp_path / "d", 16, None, 0.1, 0)  # 16 px: a CPC patch grid
    cls = get_model("repr", name)
    params = validate_params(cls.Params, {"widths": [8, 16], "strides": [1, 2], "batch_size": 16}, name)
    data = ReprData(tmp_path / "d")
    model = cls(params, data, torch.device("cuda"))
    model._train = torch.from_numpy(data.images("train")).cuda()
    model._labels = torch.from_numpy(data.labels("train")).cuda()
    net = model.init_network(0)
    model.step_loss(net, 0, 0).backward()
    acc = model.eval_fn(None)(net)["val/online_acc"]
    assert 0.0 <= acc <= 1.0


def test_an_ema_resumed_from_a_cpu_checkpoint_updates_on_cuda():
    from dagzoo.train import EMA

    net = torch.nn.Linear(3, 2).cuda()
    ema = EMA(net, 0.9)
    ema.load_state_dict({"updates": 1, "shadow": {k: v.cpu() for k, v in net.state_dict().items()}})
    ema.update(net)
    assert {v.device.type for v in ema.shadow.values()} == {"cuda"}


def test_dgcnn_and_pointnet_keep_their_float32_parts_under_cuda_autocast():
    from dagzoo.points.losses import orthogonality_loss
    from dagzoo.points.models.dgcnn import knn

    torch.manual_seed(0)
    x = torch.randn(2, 64, 256, device="cuda")
    a = torch.linalg.qr(torch.randn(4, 16, 16)).Q.cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        idx, reg = knn(x, 20), orthogonality_loss(a)
    assert torch.equal(idx, knn(x, 20)) and reg.dtype == torch.float32
