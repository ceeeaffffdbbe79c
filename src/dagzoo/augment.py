"""Batched data augmentation on the device, shared by every family: each op transforms a whole
batch (first axis) with random numbers from one generator, so a step's augmentation is a
function of (seed, step) alone, like the rest of the Trainer (no per-example Python loop).

Image ops (crops, affine, colour jitter, grayscale, noise; the image and representations
families) live here, written and tested once; the point-cloud ops (rotations about the up axis,
scaling, jitter, shuffling) are in dagzoo.points.transforms, the only family that reads clouds.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from dagzoo.train import step_seed


def per_example(c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-example coefficient (batch,) shaped to broadcast over x's other axes."""
    return c.reshape(-1, *([1] * (x.dim() - 1)))


def step_generator(seed: int, step: int, stream: int) -> torch.Generator:
    """The generator of one named random stream of step `step` (stream: a constant per use)."""
    return torch.Generator().manual_seed(step_seed(seed, step) ^ stream)


def random_rows(data: torch.Tensor, batch: int, generator: torch.Generator) -> torch.Tensor:
    """`batch` rows of `data` drawn uniformly with replacement."""
    idx = torch.randint(0, data.shape[0], (batch,), generator=generator)
    return data[idx.to(data.device)]


def epoch_batch(n: int, batch: int, seed: int, step: int, stream: int) -> torch.Tensor:
    """The row indices of step `step`'s batch when each epoch is a fresh permutation of the `n`
    rows, cut into n // batch batches (the remainder dropped): sampling without replacement, so
    no row appears twice in a batch (a contrastive loss would otherwise take another view of the
    anchor's own image for a negative). A function of (seed, step) alone: a resumed run draws
    the batches it would have drawn."""
    if not 0 < batch <= n:
        raise ValueError(f"a batch of {batch} rows from {n}")
    epoch, i = divmod(step, n // batch)
    return _epoch_permutation(n, seed, epoch, stream)[i * batch : (i + 1) * batch]


@functools.lru_cache(maxsize=2)
def _epoch_permutation(n: int, seed: int, epoch: int, stream: int) -> torch.Tensor:
    return torch.randperm(n, generator=step_generator(seed, epoch, stream))


def random_flip(x: torch.Tensor, generator: torch.Generator, p: float = 0.5, dim: int = -1) -> torch.Tensor:
    """Each example reversed along `dim` with probability p (images: dim -1 is a horizontal flip)."""
    flip = (torch.rand(x.shape[0], generator=generator) < p).to(x.device)
    return torch.where(per_example(flip, x), x.flip(dim), x)


# ---------------------------------------------------------------------------------- images (N, C, H, W)
# Geometric ops resample the whole batch at once through one affine grid (bilinear,
# torch.nn.functional.grid_sample); photometric ops act on values in [0, 1] (convert first).
def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def _resample(x: torch.Tensor, theta: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """x sampled at the affine grid theta (N, 2, 3) maps output coordinates in [-1, 1] to input
    coordinates; outside the image is 0 (the caller's background)."""
    n, c = x.shape[:2]
    h, w = size or x.shape[-2:]
    grid = F.affine_grid(theta.to(x.device, x.dtype), [n, c, h, w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_resized_crop(
    x: torch.Tensor,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Inception-style crop (Szegedy et al. 2015; SimCLR's main augmentation): per example an area
    fraction s ~ U(scale) and an aspect ratio r log-uniform in `ratio`, a crop of width sqrt(s r)
    and height sqrt(s / r) (fractions of the side, clipped to 1; torchvision instead redraws up
    to 10 times) at a uniform position inside the image, resized back to `size` (default: x's)."""
    n = x.shape[0]
    s = _uniform(n, *scale, generator)
    r = torch.exp(_uniform(n, *map(float, torch.log(torch.tensor(ratio, dtype=torch.float64))), generator))
    cw, ch = torch.sqrt(s * r).clamp(max=1.0), torch.sqrt(s / r).clamp(max=1.0)
    cx, cy = (
        (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1) * (1 - cw),
        (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1) * (1 - ch),
    )
    zero = torch.zeros_like(cw)
    theta = torch.stack([torch.stack([cw, zero, cx], 1), torch.stack([zero, ch, cy], 1)], 1)
    return _resample(x, theta, size)


def random_affine(
    x: torch.Tensor,
    generator: torch.Generator,
    degrees: float = 0.0,
    translate: float = 0.0,
    scale: tuple[float, float] = (1.0, 1.0),
) -> torch.Tensor:
    """Per example a rotation in [-degrees, degrees], a zoom in `scale` and a shift of up to
    `translate` x the side in each direction (digit-like data, where crops would cut strokes)."""
    n = x.shape[0]
    angle = torch.deg2rad(_uniform(n, -degrees, degrees, generator))
    zoom = _uniform(n, *scale, generator)
    tx, ty = (
        _uniform(n, -2 * translate, 2 * translate, generator),
        _uniform(n, -2 * translate, 2 * translate, generator),
    )
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    return _resample(x, theta)


def _luma(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma of RGB (N, 3, H, W) -> (N, 1, H, W), as torchvision's grayscale."""
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def color_jitter(
    x: torch.Tensor,
    generator: torch.Generator,
    brightness: float = 0.0,
    contrast: float = 0.0,
    saturation: float = 0.0,
    hue: float = 0.0,
    p: float = 1.0,
) -> torch.Tensor:
    """SimCLR's colour distortion on x in [0, 1], applied to each example with probability p:
    brightness x f, contrast (x - mean grey) f + mean grey, saturation grey + f (x - grey), with
    f ~ U(max(0, 1 - s), 1 + s), and a hue rotation by U(-hue, hue) turns in YIQ space, in that
    fixed order (torchvision draws the order per call), each clipped to [0, 1] as torchvision and
    SimCLR's code clip after every operation (a brightened pixel that saturated stays white under
    the contrast change that follows). Saturation and hue need three channels."""
    n = x.shape[0]
    apply = torch.rand(n, generator=generator) < p

    def factor(strength: float) -> torch.Tensor:
        return per_example(_uniform(n, max(0.0, 1 - strength), 1 + strength, generator).float().to(x.device), x)

    out = x
    if brightness:
        out = (out * factor(brightness)).clamp(0, 1)
    if contrast:
        grey = (_luma(out) if x.shape[1] == 3 else out).mean(dim=(1, 2, 3), keepdim=True)
        out = ((out - grey) * factor(contrast) + grey).clamp(0, 1)
    if saturation:
        grey = _luma(out)
        out = (grey + factor(saturation) * (out - grey)).clamp(0, 1)
    if hue:
        angle = 2 * torch.pi * _uniform(n, -hue, hue, generator).float().to(x.device)
        to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=x.device)
        yiq = torch.einsum("ij,njhw->nihw", to_yiq, out)
        cos, sin = per_example(torch.cos(angle), x)[:, 0], per_example(torch.sin(angle), x)[:, 0]
        i, q = yiq[:, 1] * cos - yiq[:, 2] * sin, yiq[:, 1] * sin + yiq[:, 2] * cos
        out = torch.einsum("ij,njhw->nihw", torch.linalg.inv(to_yiq), torch.stack([yiq[:, 0], i, q], 1)).clamp(0, 1)
    return torch.where(per_example(apply.to(x.device), x), out, x)


def random_grayscale(x: torch.Tensor, generator: torch.Generator, p: float) -> torch.Tensor:
    """RGB examples replaced by their luma (kept 3 channels) with probability p."""
    drawn = (torch.rand(x.shape[0], generator=generator) < p).to(x.device)
    return torch.where(per_example(drawn, x), _luma(x).expand_as(x), x)


def gaussian_blur(x: torch.Tensor, generator: torch.Generator, p: float, sigma: tuple[float, float]) -> torch.Tensor:
    """SimCLR's blur, applied to each example with probability p: a Gaussian of standard deviation
    sigma ~ U(sigma_low, sigma_high) pixels (solo-learn: 0.1-2.0, as a PIL radius), one per example,
    separable, truncated at 3 sigma_high and normalised, with reflected borders."""
    n, c, h, w = x.shape
    apply = torch.rand(n, generator=generator) < p
    s = _uniform(n, *sigma, generator).to(x.device)
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    out = x.reshape(1, n * c, h, w).to(dtype)

    def kernels(side: int) -> tuple[torch.Tensor, int]:
        radius = min(int(3 * sigma[1] + 0.5), side - 1)  # reflect padding needs radius < side
        taps = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float64)
        k = torch.exp(-0.5 * (taps[None] / s[:, None]) ** 2)
        # one kernel per (example, channel) of a grouped convolution
        return (k / k.sum(1, keepdim=True)).to(dtype).repeat_interleave(c, 0), radius

    with torch.autocast(x.device.type, enabled=False):  # a blur in bf16 would be off by ~2/255
        kw, rw = kernels(w)
        if rw:
            out = F.conv2d(F.pad(out, (rw, rw, 0, 0), mode="reflect"), kw[:, None, None, :], groups=n * c)
        kh, rh = kernels(h)
        if rh:
            out = F.conv2d(F.pad(out, (0, 0, rh, rh), mode="reflect"), kh[:, None, :, None], groups=n * c)
    return torch.where(per_example(apply.to(x.device), x), out.reshape(n, c, h, w).to(x.dtype), x)


def gaussian_noise(x: torch.Tensor, generator: torch.Generator, std: float) -> torch.Tensor:
    """x + N(0, std^2) per value."""
    return x + std * torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
