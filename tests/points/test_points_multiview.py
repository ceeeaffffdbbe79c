"""The multi-view models: depth images by one scatter equal a plain loop over points (ties and
empty pixels included), the cameras are rotations that look at the cloud, and SimpleView and
MVCNN classify the generated shapes after a short training."""

import math

import numpy as np
import pytest
import torch

from dagzoo.points.transforms import circular_views, depth_views, orthogonal_views

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _loop(x, cameras, resolution, extent):
    """The same images, one point at a time: each pixel keeps its nearest point's value."""
    b, n, _ = x.shape
    out = np.zeros((b, len(cameras), resolution, resolution))
    for i in range(b):
        for v, cam in enumerate(cameras.double().numpy()):
            for p in x[i].double().numpy():
                u, w, z = cam @ p
                row = min(max(math.floor((u + extent) / (2 * extent) * resolution), 0), resolution - 1)
                col = min(max(math.floor((w + extent) / (2 * extent) * resolution), 0), resolution - 1)
                depth = min(max(extent - z, 0.0), 2 * extent)
                out[i, v, row, col] = max(out[i, v, row, col], 1 - depth / (4 * extent))
    return out


def test_depth_views_by_one_scatter_equal_a_loop_over_points():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 50, 3, generator=g, dtype=torch.float64) * 2.2 - 1.1  # some beyond the extent
    x[0, 1] = x[0, 0]  # a tie: two points at one place
    x[1, 5] = x[1, 4] + torch.tensor([0.0, 0.0, 0.3], dtype=torch.float64)  # one pixel, two depths
    for cameras in (orthogonal_views(), circular_views(5, math.radians(30))):
        batched = depth_views(x, cameras, 9, 1.0).numpy()
        assert np.allclose(batched, _loop(x, cameras, 9, 1.0), rtol=0, atol=1e-12)
        assert (batched == 0).any() and (batched > 0).any()  # empty pixels stay 0


def test_the_cameras_are_rotations_each_looking_at_the_origin_from_its_side():
    for cameras in (orthogonal_views(), circular_views(12, math.radians(30))):
        assert torch.allclose(cameras @ cameras.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand_as(cameras))
        assert torch.allclose(torch.linalg.det(cameras), torch.ones(len(cameras), dtype=torch.float64))
    # SimpleView's six: from +x, -x, +y, -y, +z, -z, each direction turned into the camera axis +z
    sides = torch.tensor([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=torch.float64)
    assert torch.allclose((orthogonal_views() @ sides[:, :, None])[..., 0], torch.tensor([0.0, 0, 1]).double())
    # a point nearer a camera is brighter in its image: the +z camera sees the top point
    x = torch.tensor([[[0.0, 0.0, 0.9], [0.0, 0.0, -0.9]]])
    top, bottom = depth_views(x, orthogonal_views(), 4, 1.0)[0, 4:6].amax(dim=(1, 2))
    assert top == bottom  # each of the two opposite cameras sees its nearer point
    assert (
        depth_views(x[:, :1], orthogonal_views(), 4, 1.0)[0, 4].max()
        > depth_views(x[:, :1], orthogonal_views(), 4, 1.0)[0, 5].max()
    )


@pytest.mark.parametrize("key", ["simpleview", "mvcnn"])
def test_multiview_models_learn_the_generated_shapes(tmp_path, key):
    from types import SimpleNamespace

    from dagzoo.points.base import accuracy_counts, predict
    from dagzoo.registry import get_model, validate_params

    from conftest import generated_shapes

    data = generated_shapes(tmp_path, points=64, train_per_class=12, test_per_class=4, val_fraction=0.1)
    cls = get_model("points", key)
    params = validate_params(
        cls.Params, {"resolution": 16, "width": 8, "blocks": [1, 1], "lr": 3e-3, "batch_size": 16, "epochs": 12}, "p"
    )
    model = cls(params, data, torch.device("cpu"))
    model.prepare(SimpleNamespace(spec={"experiment": key}))
    torch.manual_seed(0)
    net = model.build()
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    for step in range(model.params.steps):
        loss = model.step_loss(net, step, seed=0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    pred = predict(net, torch.from_numpy(data.clouds("test")), 64).numpy()
    oa = accuracy_counts(pred, data.labels("test"), data.num_classes)["oa"]
    assert oa > 2.5 / data.num_classes, oa  # chance: 1 / classes
