"""Point-cloud models and training: permutation invariance, EdgeConv's k-NN, the T-Net
regulariser, the up-axis rotation, OA / mAcc by hand, and that training never reads the test
split (garbage test labels change the final score only)."""

import json
import math

import numpy as np
import pytest
import torch

from dagzoo.points import transforms as T
from dagzoo.points.base import accuracy_counts
from dagzoo.points.losses import orthogonality_loss
from dagzoo.points.models.dgcnn import DGCNNNet, knn
from dagzoo.points.models.pointnet import PointNetNet

# tiny tensors: one thread is faster, and immune to a busy machine's oversubscription
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pointnet(tnets=True):
    return PointNetNet(5, [16, 16], [16, 32, 64], [32], [16, 32], [32], 0.3, tnets, 0.001)


@pytest.mark.parametrize(
    "make", [_pointnet, lambda: _pointnet(False), lambda: DGCNNNet(5, 6, [16, 16, 32], 64, [32], 0.5)]
)
def test_outputs_are_invariant_to_permuting_the_points(make):
    torch.manual_seed(0)
    net = make()
    # a few training steps first, so batch norm statistics and T-Nets are not at their init
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(3):
        loss = net(torch.randn(8, 40, 3))[0].logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    x = torch.randn(4, 40, 3)
    perm = torch.randperm(40)
    with torch.no_grad():
        a, b = net(x)[0], net(x[:, perm])[0]
    assert (a - b).abs().max() < 1e-5


def test_edgeconv_knn_equals_a_brute_force_neighbour_list():
    torch.manual_seed(0)
    x = torch.randn(2, 7, 30)  # (B, C, N): a feature space, not just xyz
    idx = knn(x, 5)
    for b in range(2):
        pts = x[b].T.numpy().astype(np.float64)
        for i in range(30):
            d = [((pts[i] - pts[j]) ** 2).sum() for j in range(30)]
            brute = sorted(range(30), key=lambda j: d[j])[:5]
            assert idx[b, i].tolist() == brute  # nearest first, the point itself included
    assert (idx[:, :, 0] == torch.arange(30)).all()


def test_knn_and_the_tnet_regulariser_are_float32_under_bf16_autocast():
    # training runs under bf16 autocast on a GPU (the CPU's autocast stands in): bf16 inner
    # products changed a few % of the neighbours, and I - A A^T near orthogonality was rounding
    torch.manual_seed(0)
    x, a = torch.randn(2, 64, 256), torch.linalg.qr(torch.randn(4, 16, 16)).Q + 0.01 * torch.randn(4, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        idx, reg = knn(x, 20), orthogonality_loss(a)
    assert torch.equal(idx, knn(x, 20))
    assert reg.dtype == torch.float32 and reg.item() == pytest.approx(orthogonality_loss(a).item(), rel=1e-5)


def test_feature_tnet_regulariser_is_the_squared_frobenius_norm_by_hand():
    torch.manual_seed(0)
    net = _pointnet()
    net.eval()
    x = torch.randn(3, 20, 3)
    with torch.no_grad():
        assert net(x)[1].item() == 0.0  # the T-Nets start at the identity: A A^T = I exactly
        net.feature_tnet.out.bias.add_(0.1 * torch.randn(256))
        _, reg = net(x)
        h = x.transpose(1, 2)
        h = net.mlp1(torch.bmm(net.input_tnet(h), h))
        a = net.feature_tnet(h).double().numpy()
    by_hand = []
    for m in a:  # ||I - A A^T||_F^2, element by element
        aat = [[sum(m[i, k] * m[j, k] for k in range(16)) for j in range(16)] for i in range(16)]
        by_hand.append(sum(((i == j) - aat[i][j]) ** 2 for i in range(16) for j in range(16)))
    # convention: weight 0.001 x batch mean of the squared Frobenius norm
    assert reg.item() == pytest.approx(0.001 * np.mean(by_hand), rel=1e-4)
    # the default is the protocol's: 0.001 x tf.nn.l2_loss (half the sum of squares) per cloud
    from dagzoo.points.models.pointnet import PointNet

    l2_loss = [0.5 * v for v in by_hand]
    assert PointNet.Params().tnet_reg_weight * np.mean(by_hand) == pytest.approx(0.001 * np.mean(l2_loss))


def test_rotation_about_the_up_axis_is_exactly_a_rotation():
    x = torch.randn(4, 50, 3, dtype=torch.float64)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    y = T.random_rotate_z(x, g1)
    theta = torch.rand(4, generator=g2, dtype=torch.float64) * 2 * math.pi
    for b in range(4):
        c, s = math.cos(theta[b]), math.sin(theta[b])
        r = torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=torch.float64)
        assert torch.allclose(y[b], x[b] @ r.T, atol=1e-12, rtol=0)
    assert torch.equal(y[..., 2], x[..., 2])  # the up coordinate is untouched
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-12)
    rots = T.random_so3(100, torch.Generator().manual_seed(0))
    assert torch.allclose(rots @ rots.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(100, 3, 3), atol=1e-12)
    assert torch.allclose(torch.linalg.det(rots), torch.ones(100, dtype=torch.float64))


def test_augmentations_are_seeded_per_step_and_batched():
    from dagzoo.augment import step_generator
    from dagzoo.points.base import PointTrainParams, augment

    p = PointTrainParams()
    x = torch.randn(8, 64, 3)
    a = augment(x, p, step_generator(0, 5, 1))
    assert torch.equal(a, augment(x, p, step_generator(0, 5, 1)))
    assert not torch.equal(a, augment(x, p, step_generator(0, 6, 1)))
    assert T.shuffle_points(x, torch.Generator().manual_seed(0)).sort(dim=1).values.equal(x.sort(dim=1).values)


def test_oa_and_macc_equal_a_hand_count():
    # true:  0 0 0 0 | 1 1 | 2 2 2 2 2 2
    # pred:  0 0 0 1 | 1 0 | 2 2 2 2 2 0
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2])
    pred = np.array([0, 0, 0, 1, 1, 0, 2, 2, 2, 2, 2, 0])
    r = accuracy_counts(pred, labels, 4)  # class 3 absent: not in mAcc
    assert r["confusion"][:3, :3].tolist() == [[3, 1, 0], [1, 1, 0], [1, 0, 5]]
    assert r["oa"] == 9 / 12
    assert r["macc"] == pytest.approx((3 / 4 + 1 / 2 + 5 / 6) / 3)
    assert r["oa_se"] == pytest.approx(math.sqrt(0.75 * 0.25 / 12))
    assert r["macc_se"] == pytest.approx(math.sqrt(3 / 4 * 1 / 4 / 4 + 1 / 4 / 2 + 5 / 6 * 1 / 6 / 6) / 3)


def _train(data_dir, run_dir, monkeypatch=None):
    from dagzoo.lifecycle import RunContext
    from dagzoo.points.data import PointData
    from dagzoo.points.models.pointnet import PointNet
    from dagzoo.registry import validate_params

    params = validate_params(
        PointNet.Params,
        {
            "steps": 12,
            "batch_size": 8,
            "mlp1": [8, 8],
            "mlp2": [8, 16],
            "head": [16],
            "tnet_mlp": [8],
            "tnet_fc": [8],
            "eval_every": 6,
            "checkpoint_every": 6,
            "log_every": 3,
        },
        "p",
    )
    run_dir.mkdir(parents=True)
    model = PointNet(params, PointData(data_dir), torch.device("cpu"))
    ctx = RunContext(
        run_dir=run_dir,
        spec={"seed": 0, "config_hash": "h"},
        device=torch.device("cpu"),
        unit="clouds",
        on_progress=lambda *a, **k: None,
    )
    model.fit(ctx)
    return model


def test_training_and_selection_never_read_the_test_split(tmp_path, monkeypatch):
    from dagzoo.data.integrity import file_record
    from dagzoo.points.data import PointData, prepare_points

    data = tmp_path / "data"
    prepare_points(
        {"source": "shapes", "points": 24, "val_fraction": 0.2, "shapes": {"train_per_class": 4, "test_per_class": 2}},
        data,
        cache=tmp_path / "cache",
    )
    # training with the test split's readers poisoned: it must not call them
    real_clouds, real_labels = PointData.clouds, PointData.labels

    def guarded(real):
        def read(self, split):
            assert split != "test", "training read the test split"
            return real(self, split)

        return read

    monkeypatch.setattr(PointData, "clouds", guarded(real_clouds))
    monkeypatch.setattr(PointData, "labels", guarded(real_labels))
    a = _train(data, tmp_path / "a")
    monkeypatch.undo()
    # garbage test labels: the same weights and validation curve; only the final score moves
    path = data / "test_labels.npy"
    np.save(path, (np.load(path) + 1) % 10)
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["arrays"]["test_labels.npy"] = file_record(path)
    (data / "manifest.json").write_text(json.dumps(manifest))
    b = _train(data, tmp_path / "b")
    for (k, va), vb in zip(a.net.state_dict().items(), b.net.state_dict().values()):
        assert torch.equal(va, vb), k
    curve = lambda d: [
        (r["step"], r["val/oa"])
        for r in map(json.loads, (d / "history.jsonl").read_text().splitlines())
        if "val/oa" in r
    ]  # noqa: E731
    assert curve(tmp_path / "a") == curve(tmp_path / "b") and len(curve(tmp_path / "a")) == 3


def test_voxnet_occupancy_grid_marks_exactly_the_voxels_holding_points():
    from dagzoo.points.models.voxnet import occupancy

    x = torch.tensor([[[-0.99, -0.99, -0.99], [0.99, 0.99, 0.99], [0.99, 0.99, 0.98], [0.1, -0.1, 0.6]]])
    occ = occupancy(x, 4)  # voxels of side 0.5 over [-1, 1]^3
    assert occ.shape == (1, 1, 4, 4, 4) and occ.sum() == 3
    assert occ[0, 0, 0, 0, 0] == 1 and occ[0, 0, 3, 3, 3] == 1 and occ[0, 0, 2, 1, 3] == 1


def test_voxnet_is_the_papers_network():
    # conv 5^3 stride 2 and conv 3^3 unpadded, pool 2: 32^3 -> 14^3 -> 12^3 -> 6^3, fc 128; by hand:
    # 32 x (125 + 1) + 32 x (32 x 27 + 1) + (32 x 6^3 x 128 + 128) + (128 x 40 + 40) for ModelNet40
    from dagzoo.points.models.voxnet import VoxNetNet

    net = VoxNetNet(40, 32, [32, 32], 128, [0.2, 0.3, 0.4], batch_norm=False)
    assert sum(p.numel() for p in net.parameters()) == 4_032 + 27_680 + 884_864 + 5_160
    x = torch.rand(2, 500, 3) * 2 - 1
    assert net.features(torch.zeros(2, 1, 32, 32, 32)).shape == (2, 32, 6, 6, 6)
    assert net(x)[0].shape == (2, 40)
    assert [m.p for m in net.modules() if isinstance(m, torch.nn.Dropout)] == [0.2, 0.3, 0.4]
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in net.modules())


def test_label_smoothing_is_dgcnns_cal_loss_by_hand():
    from dagzoo.points.losses import smoothed_cross_entropy

    logits, y, eps = torch.randn(5, 4, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 3, 1, 1, 2]), 0.2
    log_p = torch.log_softmax(logits.double(), 1)
    by_hand = (
        -sum((1 - eps) * log_p[i, y[i]] + sum(eps / 3 * log_p[i, c] for c in range(4) if c != y[i]) for i in range(5))
        / 5
    )  # DGCNN's cal_loss: 1 - eps true, eps / (K - 1) each other class
    assert smoothed_cross_entropy(logits, y, eps).item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert smoothed_cross_entropy(logits, y, 0.0).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, y).item()
    )


def test_label_smoothing_that_would_favour_a_wrong_class_is_refused_once_the_classes_are_known():
    from types import SimpleNamespace

    from dagzoo.errors import ConfigError
    from dagzoo.points.base import PointModel, PointTrainParams
    from dagzoo.points.losses import smoothed_cross_entropy

    model = PointModel.__new__(PointModel)
    model.params, model.num_classes = PointTrainParams(label_smoothing=0.6), 2
    with pytest.raises(ConfigError, match=r"label_smoothing: 0.6 .* 2 classes; allowed: below 0.5"):
        model.prepare(SimpleNamespace())
    logits = torch.randn(4, 1)
    assert smoothed_cross_entropy(logits, torch.zeros(4, dtype=torch.long), 0.2).item() == 0.0  # one class


def test_voxnets_grid_holds_every_point_augmentation_can_reach():
    from dagzoo.points.base import augment, augmented_extent
    from dagzoo.points.models.voxnet import VoxNet

    p = VoxNet.Params(scale_low=0.8, scale_high=1.5, translate=0.2, jitter_sigma=0.05, jitter_clip=0.05)
    x = torch.nn.functional.normalize(torch.randn(64, 256, 3, generator=torch.Generator().manual_seed(0)), dim=2)
    reach = max(augment(x, p, torch.Generator().manual_seed(s)).abs().max().item() for s in range(20))
    assert 1.6 < reach <= augmented_extent(p) == pytest.approx(1.75)
    assert augmented_extent(VoxNet.Params()) == pytest.approx(1.05)  # the default: rotation and jitter
    net = VoxNet.__new__(VoxNet)
    net.params, net.num_classes = p, 10
    assert net.build().extent == augmented_extent(p)


def test_the_default_augmentation_keeps_a_clouds_proportions():
    # stretching one axis would turn the generated cube into a box (and a sphere into an
    # ellipsoid): the default augments by rotation about z and jitter only
    from dagzoo.points.base import PointTrainParams, augment

    cube = torch.rand(8, 300, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1
    out = augment(cube, PointTrainParams(jitter_sigma=0.0), torch.Generator().manual_seed(2))
    z = out[..., 2]
    assert torch.allclose(z.sort(1).values, cube[..., 2].sort(1).values)  # the up axis untouched
    radius = out[..., :2].norm(dim=2)
    assert torch.allclose(radius.sort(1).values, cube[..., :2].norm(dim=2).sort(1).values, atol=1e-5)


def test_the_points_table_keeps_its_cells_when_a_column_is_missing(tmp_path):
    import pandas as pd

    from dagzoo.points.report import points_section

    df = pd.DataFrame(
        [
            {
                "family": "points",
                "experiment": e,
                "model": e,
                "seed": 0,
                "run_dir": str(tmp_path),
                "test/oa": 0.8,
                "test/oa_se": 0.01,
                "test/macc": 0.7,
                "train/params": 1234.0,
            }
            for e in ("a", "b")
        ]
    )
    md, _ = points_section(df, {}, tmp_path, tmp_path)
    rows = [line for line in md if line.startswith("| a |") or line.startswith("| b |")]
    assert len(rows) == 2 and all(r.count("|") == 11 and r.endswith("| — | 1,234 | — |") for r in rows), rows
    df["train/clouds_per_s"] = [2407.4, float("nan")]
    df["train/epochs"] = [16.43, float("nan")]
    md, _ = points_section(df, {}, tmp_path, tmp_path)
    assert any(line.endswith("| 16.4 | 1,234 | 2,407 |") for line in md)
    assert any(line.endswith("| — | 1,234 | — |") for line in md)


def test_the_se_of_repeated_views_is_over_clouds():
    from dagzoo.points.base import repeated_views_se

    # 4 clouds x 3 rotations: per-cloud fractions 1, 2/3, 0, 1/3 -> mean 0.5, population std
    # sqrt(((0.5)^2 + (1/6)^2 + (0.5)^2 + (1/6)^2) / 4), over sqrt(4) clouds
    correct = np.array([[1, 1, 0, 0], [1, 0, 0, 1], [1, 1, 0, 0]], bool)
    by_hand = math.sqrt((0.25 + 1 / 36 + 0.25 + 1 / 36) / 4) / 2
    assert repeated_views_se(correct) == pytest.approx(by_hand)
    # the 12 views taken as independent trials would claim sqrt(0.25 / 12): smaller
    assert repeated_views_se(correct) > math.sqrt(0.25 / 12)
    one = np.array([[1, 0, 1, 1, 0]], bool)  # one view: the binomial SE
    assert repeated_views_se(one) == pytest.approx(math.sqrt(0.6 * 0.4 / 5))


def test_training_iterates_over_epochs_each_cloud_once_per_epoch(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from dagzoo.errors import ConfigError
    from dagzoo.points import base
    from dagzoo.points.models.pointnet import PointNet
    from dagzoo.registry import validate_params

    from conftest import generated_shapes

    data = generated_shapes(tmp_path, points=16, train_per_class=3, test_per_class=1)
    n = len(data.labels("train"))
    params = validate_params(PointNet.Params, {"epochs": 3, "batch_size": 4, "shuffle": False}, "p")
    model = PointNet(params, data, torch.device("cpu"))
    model.prepare(SimpleNamespace(spec={"experiment": "e"}))
    per_epoch = n // 4
    assert model.params.steps == 3 * per_epoch and model.train_size() == n
    monkeypatch.setattr(base, "augment", lambda x, p, g: x)  # the clouds as stored, to tell them apart
    seen = []

    def net(x):
        seen.append([int(torch.nonzero((model._x == c).flatten(1).all(1))[0]) for c in x])
        return torch.zeros(len(x), data.num_classes, requires_grad=True), torch.zeros(())

    for step in range(model.params.steps):
        model.step_loss(net, step, seed=5)
    epochs = [sum(seen[e * per_epoch : (e + 1) * per_epoch], []) for e in range(3)]
    for drawn in epochs:
        assert len(drawn) == len(set(drawn)) == per_epoch * 4  # each cloud at most once; n % 4 left out
    assert epochs[0] != epochs[1]  # a fresh permutation per epoch
    with pytest.raises(ConfigError, match=r"points.experiments.e.epochs: give epochs \(3\) or steps \(9\), not both"):
        PointNet.check_written({"epochs": 3, "steps": 9}, "points.experiments.e")
    big = PointNet(validate_params(PointNet.Params, {"batch_size": n + 1}, "p"), data, torch.device("cpu"))
    with pytest.raises(ConfigError, match=rf"points.experiments.e.batch_size: {n + 1} is more than the {n} training"):
        big.prepare(SimpleNamespace(spec={"experiment": "e"}))
