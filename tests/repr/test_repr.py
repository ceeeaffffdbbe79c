"""The representations family against independent values: losses by hand or by a double loop,
the InfoNCE bound on Gaussians with known mutual information, CPC's masking, receptive fields
by hand and by back-propagation, the probes on problems with known answers, and the protocol
(test labels read last)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from dagzoo.augment import color_jitter, random_grayscale, random_resized_crop, step_generator
from dagzoo.errors import ConfigError, DataError
from dagzoo.repr.encoders import ConvNet, ResNet18, effective_receptive_field, receptive_field_table
from dagzoo.repr.losses import margin_contrastive_loss, nt_xent, soft_macro_f1
from dagzoo.repr.models.cpc import ContextNet, patch_grid
from dagzoo.repr.probes import FrozenFeatures, imbalanced_subset, infonce_bound, knn_predict, linear_probe, macro_f1


# ---------------------------------------------------------------------------------- losses
def _nt_xent_double_loop(z1, z2, t):
    u = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1).double()
    n2 = len(u)
    total = 0.0
    for i in range(n2):
        p = (i + n2 // 2) % n2
        num = math.exp(float(u[i] @ u[p]) / t)
        den = sum(math.exp(float(u[i] @ u[k]) / t) for k in range(n2) if k != i)
        total += -math.log(num / den)
    return total / n2


def test_nt_xent_equals_the_double_loop_and_ignores_the_batch_order():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randn(6, 5, generator=g, dtype=torch.float64)
    loss = nt_xent(z1, z2, 0.3)
    assert float(loss) == pytest.approx(_nt_xent_double_loop(z1, z2, 0.3), abs=1e-6)
    perm = torch.randperm(6, generator=g)
    assert float(nt_xent(z1[perm], z2[perm], 0.3)) == pytest.approx(float(loss), abs=1e-10)
    assert float(nt_xent(z1, z2[perm], 0.3)) != pytest.approx(float(loss), abs=1e-3)  # pairs matter


def test_margin_loss_by_hand():
    # pairs: matching at d = 3 (y=1: d^2 = 9), non-matching at d = 0.5 (margin 2: 1.5^2 = 2.25),
    # non-matching at d = 5 beyond the margin (0): mean = (9 + 2.25 + 0) / 3
    a = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    b = torch.tensor([[3.0, 0.0], [1.0, 1.5], [3.0, 4.0]])
    y = torch.tensor([1, 0, 0])
    assert float(margin_contrastive_loss(a, b, y, 2.0)) == pytest.approx(
        (9 + 2.25 + 0) / (2 * 3)
    )  # 1/(2P) over P = 3 pairs
    assert float(margin_contrastive_loss(a, a.clone(), torch.ones(3), 2.0)) == 0.0
    far = a + torch.tensor([2.0, 0.0])  # every pair at d = margin exactly
    assert float(margin_contrastive_loss(a, far, torch.zeros(3), 2.0)) == 0.0


def _gaussian_critic(x, y, rho):
    """log p(y | x) - log p(y) for unit-variance Gaussians with correlation rho per dimension."""
    s = 1 - rho**2
    cond = -((y[None, :, :] - rho * x[:, None, :]) ** 2).sum(-1) / (2 * s) - x.shape[1] / 2 * math.log(s)
    return cond + (y[None, :, :] ** 2).sum(-1) / 2


def _correlated(n, d, rho, g):
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    return x, rho * x + math.sqrt(1 - rho**2) * torch.randn(n, d, generator=g, dtype=torch.float64)


def test_infonce_bound_with_the_optimal_critic_recovers_gaussian_mi_and_never_exceeds_log_n():
    g = torch.Generator().manual_seed(0)
    d, rho, n = 2, 0.5, 512
    true_mi = -d / 2 * math.log(1 - rho**2)  # 0.288 nats << log 512 = 6.24
    bounds = []
    for _ in range(30):
        x, y = _correlated(n, d, rho, g)
        bound, log_n, _ = infonce_bound(_gaussian_critic(x, y, rho))
        assert bound <= log_n
        bounds.append(bound)
    mean, se = np.mean(bounds), np.std(bounds, ddof=1) / math.sqrt(len(bounds))
    assert abs(mean - true_mi) < 4 * se + 0.01, (mean, se, true_mi)
    # far more information than log N: the bound saturates at log N and never passes it
    x, y = _correlated(64, 10, 0.999, g)
    bound, log_n, _ = infonce_bound(_gaussian_critic(x, y, 0.999))
    assert log_n - 0.05 < bound <= log_n and -5 * math.log(1 - 0.999**2) > log_n


# ---------------------------------------------------------------------------------- CPC
def test_cpc_context_at_row_i_sees_rows_up_to_i_only():
    torch.manual_seed(0)
    net = ContextNet(4, layers=3, kernel=3)
    z = torch.randn(2, 4, 6, 5)
    c = net(z)
    for i in range(6):
        changed = z.clone()
        changed[:, :, i + 1 :] = torch.randn_like(changed[:, :, i + 1 :])
        assert torch.equal(net(changed)[:, :, : i + 1], c[:, :, : i + 1])
        if i < 5:
            assert not torch.allclose(net(changed)[:, :, i + 1 :], c[:, :, i + 1 :])


@pytest.mark.probe
def test_patch_grid_tiles_or_refuses():
    assert patch_grid(16, 8, 4) == 3 and patch_grid(32, 8, 4) == 7
    assert patch_grid(16, 8, 3) == 0 and patch_grid(6, 8, 4) == 0


# ---------------------------------------------------------------------------------- receptive fields
def test_theoretical_receptive_field_by_hand_and_by_backprop():
    layers = [("a", 3, 1, 1), ("b", 3, 2, 1), ("c", 5, 1, 2), ("d", 3, 2, 1)]
    # r: 1 -> 3 (j 1) -> 5 (j 2) -> 5 + 4*2*2 = 21 (j 2) -> 21 + 2*2 = 25 (j 4)
    assert [(r["receptive_field"], r["jump"]) for r in receptive_field_table(layers)] == [
        (3, 1),
        (5, 2),
        (21, 2),
        (25, 4),
    ]
    torch.manual_seed(0)
    for net in (ConvNet(1, [4, 4, 4], [1, 2, 2]), ResNet18(1, width=2)):
        table = receptive_field_table(net.rf_layers())
        assert table[-1]["receptive_field"] == _measured_field(net, 160)
    assert receptive_field_table(ResNet18(3).rf_layers())[-1]["receptive_field"] == 109  # by hand: 3 + 8 + ...


def _measured_field(net, size):
    """The side of the input region the centre output unit depends on, by back-propagation through
    a linear copy of the network (ReLUs removed so no path is switched off; norms frozen)."""
    import copy

    probe = copy.deepcopy(net).double().eval()
    for _name, m in list(probe.named_modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, torch.nn.ReLU):
                setattr(m, child_name, torch.nn.Identity())
    x = torch.randn(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    y = probe.feature_map(x)
    y[0, :, y.shape[-2] // 2, y.shape[-1] // 2].sum().backward()
    hit = x.grad[0, 0] != 0
    rows, cols = torch.nonzero(hit.any(1)).flatten(), torch.nonzero(hit.any(0)).flatten()
    assert rows[0] > 0 and rows[-1] < size - 1  # not clipped by the border
    return int(max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1))


def test_effective_receptive_field_of_one_3x3_conv_is_its_support():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 3, 3, padding=1)
    erf = effective_receptive_field(conv, torch.randn(4, 2, 9, 9))
    support = torch.zeros(9, 9, dtype=torch.bool)
    support[3:6, 3:6] = True
    assert torch.equal(erf > 0, support)
    assert float(erf.sum()) == pytest.approx(1.0)


@pytest.mark.parametrize("rows, side", [((9, 24), 15), ((8, 16), 8), ((12, 15), 3)])
def test_the_erf_square_is_centred_on_the_measured_unit(rows, side):
    """A uniform field over rows/columns [a, b) of a 28-px image: the smallest square holding 90%
    is the field's own side (15: (14/15)^2 < 0.9), wherever the field lies; an 8-px field (a CPC
    patch) centred between pixels fits an 8-px square."""
    from dagzoo.repr.stages import _erf_summary

    erf = np.zeros((28, 28))
    erf[rows[0] : rows[1], rows[0] : rows[1]] = 1.0
    erf /= erf.sum()
    assert _erf_summary(erf)["side_90"] == side
    assert _erf_summary(np.zeros((28, 28)))["side_90"] is None  # a dead unit has no field, not a 1-px one


def test_epoch_batches_hold_every_image_once_per_epoch_and_depend_on_seed_and_step_alone():
    from dagzoo.augment import _epoch_permutation, epoch_batch

    n, batch = 50, 16  # 3 batches per epoch, 2 images left out of each
    epoch = [epoch_batch(n, batch, 7, step, 0x5E1) for step in range(3)]
    drawn = torch.cat(epoch)
    assert len(set(drawn.tolist())) == 48  # no image twice within an epoch, let alone a batch
    assert not torch.equal(epoch_batch(n, batch, 7, 3, 0x5E1), epoch[0])  # the next epoch: a new order
    _epoch_permutation.cache_clear()  # a resumed process
    assert torch.equal(epoch_batch(n, batch, 7, 1, 0x5E1), epoch[1])
    with pytest.raises(ValueError):
        epoch_batch(10, 16, 7, 0, 0x5E1)


# ---------------------------------------------------------------------------------- probes
def _features(train, val, test):
    return FrozenFeatures(
        {
            f"{s}_{k}": v
            for s, (x, y) in zip(("train", "val", "test"), (train, val, test))
            for k, v in (("x", x), ("y", y))
        }
    )


def _blobs(n, rng, shift=0.0):
    y = rng.integers(0, 3, n)
    centres = np.array([[6.0, 0, 0], [0, 6.0, 0], [0, 0, 6.0]])
    return (centres[y] + rng.normal(0, 0.5, (n, 3)) + shift).astype(np.float32), y


def test_linear_probe_separates_separable_features_and_needs_its_bias_for_an_offset():
    rng = np.random.default_rng(0)
    ff = _features(_blobs(300, rng), _blobs(100, rng), _blobs(200, rng))
    out = linear_probe(ff, [0.1, 1.0])
    assert np.mean(out["test_pred"] == ff.y("test")) == 1.0

    def offset(n):  # positive features, the class boundary at x = 5: no line through 0 separates them
        x = rng.uniform(0, 10, (n, 1)).astype(np.float32)
        return x, (x[:, 0] > 5).astype(np.int64)

    ff = _features(offset(400), offset(100), offset(400))
    with_bias = linear_probe(ff, [100.0], bias=True, standardise=False)
    without = linear_probe(ff, [100.0], bias=False, standardise=False)
    assert np.mean(with_bias["test_pred"] == ff.y("test")) > 0.97
    assert np.mean(without["test_pred"] == ff.y("test")) < 0.65


def test_the_probe_stage_reads_test_labels_once_after_every_choice(tmp_path, monkeypatch):
    from dagzoo.repr import stages

    rng = np.random.default_rng(1)
    arrays = _features(_blobs(200, rng), _blobs(60, rng), _blobs(100, rng)).arrays
    np.savez(tmp_path / "f.npz", **arrays)
    seen = []
    original = FrozenFeatures.load

    def spy(path):
        ff = original(path)
        seen.append(ff)
        return ff

    monkeypatch.setattr(FrozenFeatures, "load", staticmethod(spy))
    first = stages.probe(tmp_path / "f.npz", [0.01, 1.0], tmp_path / "p.json")
    assert seen[0].reads[-1] == "test" and seen[0].reads.count("test") == 1
    # garbage test labels change the score and nothing that was chosen
    arrays["test_y"] = rng.integers(0, 3, len(arrays["test_y"]))
    np.savez(tmp_path / "f.npz", **arrays)
    second = stages.probe(tmp_path / "f.npz", [0.01, 1.0], tmp_path / "p.json")
    assert first["probe/C"] == second["probe/C"] and first["detail"] == second["detail"]
    assert first["probe/C_at_edge"] == 1.0  # a grid of two values: either is an end
    assert first["test/linear_acc"] == 1.0 > second["test/linear_acc"]
    assert first["probe/unconverged"] == 0.0 and first["detail"]["bias"]["converged"]


def test_probe_fits_stopped_at_the_iteration_cap_are_counted_and_reported(tmp_path, monkeypatch):
    from dagzoo.repr import probes, stages
    from dagzoo.repr.report import repr_section

    rng = np.random.default_rng(3)
    np.savez(tmp_path / "f.npz", **_features(_blobs(200, rng), _blobs(60, rng), _blobs(100, rng)).arrays)
    monkeypatch.setattr(probes, "MAX_ITER", 2)  # L-BFGS needs more than two steps for these blobs
    out = stages.probe(tmp_path / "f.npz", [1.0], tmp_path / "p.json")
    assert out["probe/unconverged"] == 3.0  # the main, raw and no-bias probes (no projector)
    assert out["detail"]["bias"]["iterations"] == 2 and not out["detail"]["bias"]["converged"]
    rows = pd.DataFrame(
        [
            {
                "family": "repr",
                "experiment": e,
                "model": "simclr",
                "seed": 0,
                "run_dir": str(tmp_path),
                "train/time_s": 1.0,
                "test/linear_acc": 0.9,
                "test/linear_acc_se": 0.01,
                "probe/C_at_edge": 0.0,
                "probe/unconverged": n,
            }
            for e, n in (("capped", 3.0), ("fine", 0.0))
        ]
    )
    md = "\n".join(repr_section(rows, {}, tmp_path)[0])
    assert "stopped before its tolerance was met" in md and "capped (3)" in md and "fine (" not in md


def _independent_logistic_optimum(x, y, classes, c):
    """The minimum of C * sum CE + ||W||^2 / 2 by scipy's L-BFGS-B on the analytic gradient in
    float64, run to a gradient tolerance far below scikit-learn's."""
    from scipy.optimize import minimize
    from scipy.special import softmax

    n, d = x.shape
    onehot = np.eye(classes)[y]

    def value_and_grad(theta):
        w, b = theta[: classes * d].reshape(classes, d), theta[classes * d :]
        logits = x @ w.T + b
        p = softmax(logits, axis=1)
        value = c * -np.sum(np.log(p[np.arange(n), y])) + 0.5 * np.sum(w**2)
        residual = c * (p - onehot)
        return value, np.concatenate([(residual.T @ x + w).ravel(), residual.sum(0)])

    opt = minimize(
        value_and_grad,
        np.zeros(classes * (d + 1)),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 20000, "gtol": 1e-10, "ftol": 1e-16},
    )
    return opt.fun


def test_the_probe_refit_reaches_the_optimum_of_its_objective_on_raw_pixels():
    """Raw digit pixels (0..16, uncentred) make a poorly conditioned fit: the probe's objective
    must be the optimum an independent optimiser finds, to 1e-6, and its flag must say converged."""
    from sklearn.datasets import load_digits

    from dagzoo.repr.probes import logistic_objective

    x, y = load_digits(return_X_y=True)
    x, y = x[:600].astype(np.float32), y[:600]
    ff = _features((x[:400], y[:400]), (x[400:500], y[400:500]), (x[500:], y[500:]))
    out = linear_probe(ff, [0.1], standardise=False)
    x_all = np.concatenate([x[:400], x[400:500]]).astype(np.float64)
    optimum = _independent_logistic_optimum(x_all, y[:500], 10, 0.1)
    assert out["converged"]
    assert abs(out["objective"] - optimum) <= 1e-6 * optimum, (out["objective"], optimum)
    # the objective is scikit-learn's own: its value at zero weights is C * n * log K
    assert logistic_objective(np.zeros((10, 64)), np.zeros(10), x_all, y[:500], 0.1) == pytest.approx(
        0.1 * 500 * math.log(10)
    )


@pytest.mark.probe
def test_unlabelled_split_is_refused_by_name():
    rng = np.random.default_rng(2)
    x, y = _blobs(20, rng)
    ff = _features((x, y), (x, y), (x, np.full(20, -1)))
    with pytest.raises(DataError, match="test split has no labels"):
        ff.y("test")


@pytest.mark.parametrize("temperature", [0.1, 0.005])  # exp(1 / 0.005) is no float (nor float64)
def test_knn_equals_brute_force_weighted_votes(temperature):
    rng = np.random.default_rng(3)
    bank, labels, queries = rng.normal(size=(50, 4)), rng.integers(0, 3, 50), rng.normal(size=(20, 4))
    got = knn_predict(
        torch.from_numpy(bank),
        torch.from_numpy(labels),
        torch.from_numpy(queries),
        3,
        k=7,
        temperature=temperature,
        chunk=6,
    ).numpy()
    nb = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    for i, q in enumerate(queries):
        sims = nb @ (q / np.linalg.norm(q))
        log_votes = np.full(3, -np.inf)  # log of the sum of exp(s / T) per class, exactly
        for j in np.argsort(-sims)[:7]:
            log_votes[labels[j]] = np.logaddexp(log_votes[labels[j]], sims[j] / temperature)
        assert got[i] == np.argmax(log_votes)


def test_soft_f1_equals_hard_f1_on_one_hot_predictions():
    rng = np.random.default_rng(4)
    y, pred = rng.integers(0, 4, 40), rng.integers(0, 4, 40)
    onehot = torch.nn.functional.one_hot(torch.from_numpy(pred), 4).double()
    assert float(soft_macro_f1(onehot, torch.from_numpy(y), 4)) == pytest.approx(macro_f1(pred, y, 4), abs=1e-12)
    from sklearn.metrics import f1_score

    assert macro_f1(pred, y, 4) == pytest.approx(f1_score(y, pred, average="macro"))


def test_soft_accuracy_is_the_mean_probability_of_the_true_class():
    from dagzoo.repr.probes import soft_accuracy

    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.5, 0.5, 0.0]])
    assert soft_accuracy(probs, np.array([0, 1, 1])) == pytest.approx((0.7 + 0.1 + 0.5) / 3)
    assert soft_accuracy(np.eye(3), np.array([0, 1, 2])) == 1.0  # one-hot: the accuracy


def test_the_probe_chooses_c_on_val_then_refits_on_train_and_val(monkeypatch):
    from dagzoo.repr import probes

    fits = []
    real = probes._logistic

    def spy(c, bias, seed, tol=probes.TOL):
        model = real(c, bias, seed, tol)
        fit = model.fit

        def recording_fit(x, y):
            fits.append((c, x.shape[0], float(np.abs(x.mean(0)).max()), tol, getattr(model, "coef_", None)))
            return fit(x, y)

        model.fit = recording_fit
        return model

    monkeypatch.setattr(probes, "_logistic", spy)
    rng = np.random.default_rng(6)
    (xtr, ytr), (xva, yva) = _blobs(90, rng), _blobs(30, rng, shift=1.0)
    out = linear_probe(_features((xtr, ytr), (xva, yva), _blobs(40, rng)), [0.1, 1.0])
    assert [f[1] for f in fits] == [90, 90, 120]  # one probe per C on train, then the refit
    assert fits[-1][0] == out["C"]
    assert fits[-1][2] < 1e-5  # standardised with train + val's statistics (val is shifted)
    # C chosen at the loose tolerance; the refit to the tight one, from the chosen fit's weights
    assert [f[3] for f in fits] == [probes.GRID_TOL, probes.GRID_TOL, probes.TOL]
    assert fits[0][4] is None and fits[-1][4] is not None


def test_soft_f1_is_the_seeds_formula_on_probabilities():
    # per class 2 sum(p y) / sum(p + y), averaged: written out with explicit loops
    rng = np.random.default_rng(5)
    probs, y = torch.from_numpy(rng.dirichlet(np.ones(3), 30)), torch.from_numpy(rng.integers(0, 3, 30))
    per_class = []
    for c in range(3):
        p_c, y_c = probs[:, c].tolist(), [float(v == c) for v in y.tolist()]
        per_class.append(2 * sum(a * b for a, b in zip(p_c, y_c)) / sum(a + b for a, b in zip(p_c, y_c)))
    assert float(soft_macro_f1(probs, y, 3)) == pytest.approx(sum(per_class) / 3, abs=1e-12)


def test_imbalanced_subset_follows_the_ratio():
    y = np.repeat(np.arange(5), 100)
    keep = imbalanced_subset(y, 10.0, seed=0)
    counts = np.bincount(y[keep], minlength=5)
    assert counts[0] == 100 and counts[-1] == 10 and list(counts) == sorted(counts, reverse=True)


# ---------------------------------------------------------------------------------- augmentations
def test_augmentations_are_deterministic_given_seed_and_step_and_exact_where_they_must_be():
    from dagzoo.repr.base import AUGMENT_STREAM, AugmentParams, augment

    x = torch.rand(6, 3, 12, 12)
    p = AugmentParams(
        crop_scale=[0.3, 1.0],
        rotate=15,
        translate=0.1,
        hflip=True,
        jitter=[0.4, 0.4, 0.4, 0.1],
        grayscale_p=0.3,
        noise_std=0.05,
    )
    a = augment(x, p, step_generator(3, 7, AUGMENT_STREAM))
    assert torch.equal(a, augment(x, p, step_generator(3, 7, AUGMENT_STREAM)))
    assert not torch.equal(a, augment(x, p, step_generator(3, 8, AUGMENT_STREAM)))
    # a full-size crop with ratio 1 is the identity; grayscale is the luma in every channel
    same = random_resized_crop(x, torch.Generator().manual_seed(0), (1.0, 1.0), (1.0, 1.0))
    assert torch.allclose(same, x, atol=1e-6)
    grey = random_grayscale(x, torch.Generator().manual_seed(0), p=1.0)
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    assert torch.allclose(grey, luma[:, None].expand_as(x))
    # brightness alone scales each image by its own drawn factor
    out = color_jitter(x * 0.5, torch.Generator().manual_seed(5), brightness=0.3)
    factor = (out / (x * 0.5)).flatten(1)
    assert torch.allclose(factor, factor[:, :1].expand_as(factor), atol=1e-5)
    assert ((factor[:, 0] >= 0.7) & (factor[:, 0] <= 1.3)).all() and factor[:, 0].std() > 0


def test_colour_jitter_clips_after_every_operation_and_never_inverts_brightness():
    # brightness then contrast, by hand with the factors the generator draws (p = 1 uses one draw
    # for `apply` first), each clipped to [0, 1] as torchvision does
    x = torch.rand(8, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    torch.rand(8, generator=g)
    b = (0.2 + 1.6 * torch.rand(8, generator=g, dtype=torch.float64)).float().view(8, 1, 1, 1)
    c = (0.2 + 1.6 * torch.rand(8, generator=g, dtype=torch.float64)).float().view(8, 1, 1, 1)
    bright = (x * b).clamp(0, 1)
    grey = bright.mean(dim=(1, 2, 3), keepdim=True)
    expected = ((bright - grey) * c + grey).clamp(0, 1)
    got = color_jitter(x, torch.Generator().manual_seed(2), brightness=0.8, contrast=0.8)
    assert torch.allclose(got, expected, atol=1e-6)
    # a strength above 1 draws factors from [0, 1 + s], never negative (a negative one is a black image)
    dark = color_jitter(torch.full((400, 1, 2, 2), 0.5), torch.Generator().manual_seed(3), brightness=1.5)
    assert (dark.flatten(1).amax(1) > 0).float().mean() > 0.99


@pytest.mark.probe
@pytest.mark.parametrize(
    "exp,message",
    [
        ({"model": "simclr", "jitter": [0.4, 0.4, 0.4, 0.1]}, "repr.experiments.e.jitter: saturation and hue"),
        ({"model": "simclr", "grayscale_p": 0.2}, "repr.experiments.e.grayscale_p: grayscale does not apply"),
        ({"model": "cpc", "patch": 6, "patch_stride": 4}, "repr.experiments.e.patch: patches of 6 px every 4 px"),
        ({"model": "cpc", "patch": 8, "patch_stride": 4, "predict": [3]}, "repr.experiments.e.predict: k = 3"),
        (
            {"model": "cpc", "patch": 8, "patch_stride": 4, "predict": [1, 2]},
            "repr.experiments.e.predict: k = 1 rows ahead, but 8-px patches every 4 px overlap the context's last row; "
            "allowed: 2 <= k <= 2",
        ),
        (
            {"model": "cpc", "patch": 12, "patch_stride": 4, "predict": [1]},
            "repr.experiments.e.patch: 12-px patches every 4 px make 2 rows, too few to predict a row that shares "
            "no pixel",
        ),
        ({"model": "simclr", "crop_scale": [0.5, 2.0]}, "repr.experiments.e.crop_scale"),
    ],
)
def test_bad_experiments_are_one_line_errors_before_any_job(exp, message):
    from dagzoo.config import validate_config

    with pytest.raises(ConfigError, match=message.replace(".", r"\.")) as e:
        validate_config({"repr": {"data": {"source": "digits", "resize": 16}, "experiments": {"e": exp}}})
    assert "\n" not in str(e.value)


@pytest.mark.probe
def test_a_folder_without_class_folders_is_refused_before_any_job(tmp_path):
    from PIL import Image

    from dagzoo.config import validate_config

    for split in ("train", "test"):
        (tmp_path / split).mkdir()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / split / "a.png")
    with pytest.raises(ConfigError, match=r"repr\.data\.source: .*train has no class folders"):
        validate_config({"repr": {"data": {"source": f"folder:{tmp_path}"}, "experiments": {"r": {"model": "raw"}}}})


def test_grad_clip_bounds_the_encoder_and_head_not_the_online_probe(tmp_path):
    # the probe trains on detached features: however large its gradients, the encoder's clipped
    # update is the same as with a quiet probe
    from dagzoo.repr.base import ReprNet
    from dagzoo.train import Trainer, TrainParams

    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))

    def trained_encoder(probe_scale: float, run: str) -> torch.Tensor:
        torch.manual_seed(0)
        net = ReprNet(torch.nn.Linear(4, 3), torch.nn.Linear(3, 3), torch.nn.Linear(3, 2), objective=None)

        def loss(m, step):
            feats = m.encoder(x)
            return m.head(feats).pow(2).mean() + probe_scale * m.probe(feats.detach()).pow(2).mean()

        params = TrainParams(
            steps=3,
            lr=0.1,
            warmup_steps=0,
            min_lr_ratio=1.0,
            grad_clip=0.01,
            checkpoint_every=100,
            eval_every=100,
            log_every=1,
        )
        (tmp_path / run).mkdir()
        Trainer(
            net,
            params,
            tmp_path / run,
            seed=0,
            config_hash="h",
            loss_fn=loss,
            units_per_step=16,
            device=torch.device("cpu"),
        ).fit()
        return net.encoder.weight.detach().clone()

    assert torch.equal(trained_encoder(1.0, "quiet"), trained_encoder(1e6, "loud"))


def test_cpc_scores_every_patch_of_the_batch_with_the_positive_on_the_diagonal():
    from types import SimpleNamespace

    from dagzoo.repr.models.cpc import CPC

    n, d, rows, cols, k = 2, 3, 4, 3, 2
    z = torch.randn(n, d, rows, cols, generator=torch.Generator().manual_seed(0))
    identity = torch.nn.Identity()
    net = SimpleNamespace(head={"context": identity, "predict": [identity]})
    ((name, scores),) = CPC._scores(SimpleNamespace(params=SimpleNamespace(predict=[k])), net, z)
    assert name == "k2" and scores.shape == ((rows - k) * n * cols, n * rows * cols)  # every patch a candidate
    row = 0
    for b in range(n):
        for i in range(rows - k):
            for j in range(cols):
                context = z[b, :, i, j]  # identity context and prediction: the prediction is c_ij
                assert torch.allclose(scores[row, row], context @ z[b, :, i + k, j])  # z_{i+k,j}, own image
                every = sorted(
                    (context @ z[bb, :, ii, jj]).item() for bb in range(n) for ii in range(rows) for jj in range(cols)
                )
                assert np.allclose(sorted(scores[row].tolist()), every, atol=1e-5)
                row += 1


@pytest.mark.parametrize("per", ["patch", "image"])
def test_cpc_draws_the_augmentations_after_the_crop_per_patch_or_per_image(per):
    from types import SimpleNamespace

    from dagzoo.registry import get_model, validate_params

    cls = get_model("repr", "cpc")
    params = validate_params(
        cls.Params,
        {
            "patch": 4,
            "patch_stride": 4,
            "predict": [1],
            "widths": [4],
            "strides": [1],
            "jitter": [0.5, 0.0, 0.0, 0.0],
            "jitter_p": 1.0,
            "augment_per": per,
        },
        "x",
    )
    model = cls(params, SimpleNamespace(shape=(1, 12, 12), classes=2), torch.device("cpu"))
    net = model.build()
    embedded = []

    class Spy(torch.nn.Module):  # records what the patch network embeds
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, tiles):
            embedded.append(tiles)
            return self.inner(tiles)

    net.encoder.net = Spy(net.encoder.net)
    x = torch.full((2, 1, 12, 12), 0.5)  # grey images: a patch's brightness is its drawn factor / 2
    model.batch_loss(net, x, None, torch.Generator().manual_seed(0))
    brightness = embedded[0].reshape(2, 9, -1)  # (image, patch of its 3 x 3 grid, pixels)
    assert torch.all(brightness == brightness[..., :1])  # one factor per patch
    per_image = brightness[..., 0]
    if per == "patch":  # nine factors per image, each U(0.5, 1.5) x 0.5, drawn in the tiles' order
        g = torch.Generator().manual_seed(0)
        torch.rand(18, generator=g)  # the jitter's coins, drawn first
        factors = 0.5 + torch.rand(18, generator=g, dtype=torch.float64)
        assert torch.allclose(per_image.flatten().double(), 0.5 * factors, atol=1e-6)
    else:  # one factor per image, shared by its nine patches
        assert torch.all(per_image == per_image[:, :1]) and per_image[0, 0] != per_image[1, 0]


def test_gaussian_blur_of_a_point_is_the_drawn_gaussian():
    from dagzoo.augment import gaussian_blur

    x = torch.zeros(3, 1, 21, 21, dtype=torch.float64)
    x[:, :, 10, 10] = 1.0
    out = gaussian_blur(x, torch.Generator().manual_seed(0), p=1.0, sigma=(0.5, 2.0))
    g = torch.Generator().manual_seed(0)
    torch.rand(3, generator=g)  # the per-example coin, drawn first
    sigmas = (0.5 + 1.5 * torch.rand(3, generator=g, dtype=torch.float64)).tolist()
    for img, sigma in zip(out[:, 0], sigmas):
        taps = [math.exp(-0.5 * (t / sigma) ** 2) for t in range(-6, 7)]  # radius 3 x 2.0
        norm = sum(taps)
        by_hand = torch.zeros(21, 21, dtype=torch.float64)
        for i in range(13):
            for j in range(13):
                by_hand[4 + i, 4 + j] = taps[i] * taps[j] / norm**2
        assert torch.allclose(img, by_hand, rtol=0, atol=1e-12)
    assert torch.equal(gaussian_blur(x, torch.Generator().manual_seed(0), p=0.0, sigma=(0.5, 2.0)), x)
    # a side shorter than the kernel: the kernel shrinks on that axis only; a side of 1 is not blurred
    thin = torch.rand(2, 3, 1, 9, generator=torch.Generator().manual_seed(1))
    out = gaussian_blur(thin, torch.Generator().manual_seed(2), p=1.0, sigma=(1.0, 2.0))
    assert out.shape == thin.shape and torch.allclose(out.sum(-1), thin.sum(-1), rtol=0.2)
