"""FID / KID against independent computations; the Inception features and the TF1 resize."""

import numpy as np
import pytest
import torch
from scipy import linalg

from dagzoo.eval.fid import (
    InceptionFeatures,
    feature_stats,
    frechet_distance,
    inception_input,
    kernel_inception_distance,
    tf1_resize,
)


def _random_stats(d, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d))
    return rng.normal(size=d), a @ a.T / d + 0.1 * np.eye(d)


def test_fid_of_a_set_against_itself_is_zero():
    feats = np.random.default_rng(0).normal(size=(400, 64))
    mu, sigma = feature_stats(feats)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6
    few = feats[:20]  # fewer samples than dimensions: singular covariance; square roots of the ~0
    mu, sigma = feature_stats(few)  # eigenvalues cost a few 1e-6 against a trace of ~60
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-5


def test_frechet_distance_equals_an_independent_scipy_computation():
    mu1, s1 = _random_stats(50, 1)
    mu2, s2 = _random_stats(50, 2)
    # independent: the symmetric form tr((S1^1/2 S2 S1^1/2)^1/2) with scipy's sqrtm of S1
    r1 = linalg.sqrtm(s1).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(linalg.sqrtm(r1 @ s2 @ r1).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_of_1d_gaussians_by_hand():
    # (mu1 - mu2)^2 + (s1 - s2)^2 for N(mu, s^2) in one dimension
    assert frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(9.0 + 1.0)


def test_singular_covariances_against_the_exact_nuclear_norm():
    # fewer samples than dimensions: S = A A^T with A = centred data / sqrt(n - 1), and
    # tr((S1 S2)^1/2) = the nuclear norm of A1^T A2, an exact route that needs no matrix square root
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(30, 80)), rng.normal(size=(30, 80)) + 0.5
    mx, sx = feature_stats(x)
    my, sy = feature_stats(y)
    ax, ay = (x - mx) / np.sqrt(29), (y - my) / np.sqrt(29)
    nuclear = np.linalg.svd(ax @ ay.T, compute_uv=False).sum()
    expected = np.sum((mx - my) ** 2) + np.trace(sx) + np.trace(sy) - 2 * nuclear
    assert frechet_distance(mx, sx, my, sy) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(mx, sx, my, sy, samples1=x) == pytest.approx(expected, rel=1e-6)  # low-rank path
    assert abs(frechet_distance(mx, sx, mx, sx, samples1=x)) < 1e-6


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 5)), rng.normal(size=(12, 5)) + 0.3
    d, m = 5, 12
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    kid, std = kernel_inception_distance(x, y, subsets=3, subset_size=m)
    assert kid == pytest.approx(xx + yy - 2 * xy) and std == pytest.approx(0.0, abs=1e-12)  # every subset = all
    same = kernel_inception_distance(rng.normal(size=(300, 5)), rng.normal(size=(300, 5)), subsets=20, subset_size=100)
    assert abs(same[0]) < 3 * same[1] + 1e-3  # unbiased: ~0 for two samples of one distribution


def _tf1_resize_loop(img: np.ndarray, size: int) -> np.ndarray:
    """TF1 resize_bilinear (align_corners=False, half_pixel_centers=False), pixel by pixel."""
    c, h, w = img.shape
    out = np.zeros((c, size, size))
    for i in range(size):
        y = i * h / size
        y0 = min(int(np.floor(y)), h - 1)
        y1, fy = min(y0 + 1, h - 1), y - y0
        for j in range(size):
            x = j * w / size
            x0 = min(int(np.floor(x)), w - 1)
            x1, fx = min(x0 + 1, w - 1), x - x0
            top = img[:, y0, x0] * (1 - fx) + img[:, y0, x1] * fx
            bottom = img[:, y1, x0] * (1 - fx) + img[:, y1, x1] * fx
            out[:, i, j] = top * (1 - fy) + bottom * fy
    return out


def test_tf1_resize_matches_a_pixel_loop():
    img = np.random.default_rng(0).integers(0, 256, size=(1, 3, 7, 5)).astype(np.uint8)
    ours = tf1_resize(torch.from_numpy(img), 13).numpy()[0]
    assert np.allclose(ours, _tf1_resize_loop(img[0].astype(np.float64), 13), atol=1e-4)


def test_inception_features_are_deterministic_and_match_a_second_resize_path():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 1, 16, 16)).astype(np.uint8)
    features = InceptionFeatures(torch.device("cpu"))
    a, b = features(images), features(images)
    assert a.shape == (2, 2048) and np.array_equal(a, b)
    # second path: the pixel-loop resize, grey repeated to RGB by hand, (x - 128) / 128, the raw network
    loop = np.stack([_tf1_resize_loop(np.repeat(im, 3, 0).astype(np.float64), 299) for im in images])
    x = torch.from_numpy((loop - 128.0) / 128.0).float()
    assert torch.allclose(inception_input(torch.from_numpy(images)), x, atol=1e-4)
    with torch.no_grad():
        direct = features.net(x.contiguous(memory_format=torch.channels_last)).double().numpy()
    assert np.allclose(a, direct, atol=1e-4, rtol=1e-4)
    # grey and the same image as RGB give one set of features
    assert np.allclose(features(np.repeat(images, 3, axis=1)), a, atol=1e-5)
