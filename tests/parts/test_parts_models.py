"""The part segmenters: shapes, permutation equivariance, predictions kept within the shape's
category, the height prior against a brute-force count, epochs over the training shapes."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dagzoo.parts.base import category_mask, predict_parts
from dagzoo.parts.models.dgcnn_seg import DGCNNSeg
from dagzoo.parts.models.height_prior import height_bins, majority_table
from dagzoo.parts.models.pointnet_seg import PointNetSeg
from dagzoo.registry import validate_params

SMALL = {
    "pointnet_seg": {"mlp1": [8, 16], "mlp2": [16, 32], "seg_head": [16], "tnet_mlp": [8, 16], "tnet_fc": [8]},
    "dgcnn_seg": {"k": 4, "widths": [8, 8], "emb_dims": 16, "category_dims": 4, "seg_head": [16]},
}


def _fake_data(parts_of=((0, 1), (2, 3, 4)), points=24):
    return SimpleNamespace(
        num_parts=sum(len(p) for p in parts_of),
        num_categories=len(parts_of),
        points=points,
        parts_of=[list(p) for p in parts_of],
    )


@pytest.mark.parametrize("cls, key", [(PointNetSeg, "pointnet_seg"), (DGCNNSeg, "dgcnn_seg")])
def test_logits_per_point_follow_a_permutation_of_the_points(cls, key):
    torch.manual_seed(0)
    data = _fake_data()
    params = validate_params(cls.Params, SMALL[key], "p")
    net = cls(params, data, torch.device("cpu")).build().eval()
    x = torch.randn(3, 24, 3, dtype=torch.float64)
    cats = torch.tensor([0, 1, 1])
    net = net.double()
    logits, reg = net(x, cats)
    assert logits.shape == (3, 24, 5) and reg.shape == ()
    perm = torch.randperm(24)
    permuted, _ = net(x[:, perm], cats)
    assert torch.allclose(permuted, logits[:, perm], atol=1e-9)
    # the category is an input: the same cloud under another category gets other logits
    assert not torch.allclose(net(x, torch.tensor([1, 1, 1]))[0][0], logits[0])


def test_predictions_stay_within_the_shapes_category():
    class FavoursPart4(torch.nn.Module):
        def forward(self, x, cats):
            logits = torch.zeros(len(x), x.shape[1], 5)
            logits[..., 4] = 10.0  # a Table part, even for mugs
            logits[..., 1] = x[..., 0]  # a Mug part, above 0 where x > 0
            return logits, torch.zeros(())

    mask = category_mask([[0, 1], [2, 3, 4]], 5)
    x = torch.tensor([[[1.0, 0, 0], [-1.0, 0, 0]], [[1.0, 0, 0], [-1.0, 0, 0]]])
    pred = predict_parts(FavoursPart4(), x, torch.tensor([0, 1]), mask, batch=1)
    assert pred.tolist() == [[1, 0], [4, 4]]


def test_the_height_prior_equals_a_brute_force_count():
    rng = np.random.default_rng(0)
    parts_of = [[0, 1], [2, 3, 4]]
    clouds = rng.uniform(-1, 1, size=(12, 30, 3))
    cats = rng.integers(0, 2, 12)
    parts = np.stack([rng.choice(parts_of[c], 30) for c in cats])
    bins = 5
    table = majority_table(clouds, parts, cats, parts_of, bins)
    for c, own in enumerate(parts_of):
        for b in range(bins):
            votes = {p: 0 for p in own}
            for s in np.flatnonzero(cats == c):
                for z, p in zip(clouds[s, :, 2], parts[s]):
                    if min(int((z + 1) / 2 * bins), bins - 1) == b:
                        votes[p] += 1
            if sum(votes.values()) == 0:
                total = {p: int((parts[cats == c] == p).sum()) for p in own}
                assert table[c, b] == max(own, key=lambda p: (total[p], -p))
            else:
                assert table[c, b] == max(own, key=lambda p: (votes[p], -p)), (c, b, votes)
    assert height_bins(np.array([[[0, 0, -1.0], [0, 0, 1.0], [0, 0, 0.0]]]), 4).tolist() == [[0, 3, 2]]


def test_training_iterates_over_epochs_each_shape_once_per_epoch(tmp_path, monkeypatch):
    from dagzoo.parts import base
    from dagzoo.parts.data import PartData, prepare_parts

    shapes = {"train_per_category": 3, "val_per_category": 0, "test_per_category": 1, "points_per_shape": 64}
    prepare_parts({"source": "shapes", "points": 16, "shapes": shapes}, tmp_path / "d", cache=tmp_path / "c")
    data = PartData(tmp_path / "d")
    n = len(data.category("train"))
    params = validate_params(PointNetSeg.Params, {"epochs": 3, "batch_size": 4, **SMALL["pointnet_seg"]}, "p")
    model = PointNetSeg(params, data, torch.device("cpu"))
    model.prepare(SimpleNamespace(spec={"experiment": "e"}))
    per_epoch = n // 4
    assert model.params.steps == 3 * per_epoch and model.train_size() == n
    monkeypatch.setattr(base, "augment", lambda x, p, g: x)  # the clouds as stored, to tell them apart
    seen = []

    def net(x, cats):
        rows = [int(torch.nonzero((model._x == c).flatten(1).all(1))[0]) for c in x]
        assert cats.tolist() == model._c[rows].tolist()  # each cloud with its own category
        seen.append(rows)
        return torch.zeros(len(x), x.shape[1], data.num_parts, requires_grad=True), torch.zeros(())

    for step in range(model.params.steps):
        model.step_loss(net, step, seed=5)
    epochs = [sum(seen[e * per_epoch : (e + 1) * per_epoch], []) for e in range(3)]
    for drawn in epochs:
        assert len(drawn) == len(set(drawn)) == per_epoch * 4
    assert epochs[0] != epochs[1]
