"""Batched point-cloud augmentations (B, N, 3), each drawing its random numbers from one
torch.Generator (dagzoo.augment.step_generator: a function of (seed, step) alone), so a step's
augmentation is reproducible across resumes; no per-cloud Python loop. z is the up axis.
"""

from __future__ import annotations

import math

import torch


def rotation_z(theta: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (B, 3, 3) about the up axis z by angles theta (B,)."""
    c, s = torch.cos(theta), torch.sin(theta)
    z, o = torch.zeros_like(theta), torch.ones_like(theta)
    return torch.stack([torch.stack([c, -s, z], -1), torch.stack([s, c, z], -1), torch.stack([z, z, o], -1)], -2)


def rotate(x: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Each cloud x[b] (N, 3) rotated by rot[b]: points are rows, so x R^T."""
    return x @ rot.transpose(1, 2).to(x.dtype)


def random_rotate_z(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    theta = torch.rand(x.shape[0], generator=g, dtype=torch.float64) * 2 * math.pi
    return rotate(x, rotation_z(theta).to(x.device))


def random_so3(n: int, g: torch.Generator) -> torch.Tensor:
    """n rotations uniform on SO(3) (Haar): unit quaternions from a normalised 4-d Gaussian."""
    q = torch.randn(n, 4, generator=g, dtype=torch.float64)
    q = q / q.norm(dim=1, keepdim=True)
    w, x, y, z = q.unbind(1)
    return torch.stack(
        [
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            torch.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            torch.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def random_scale(x: torch.Tensor, g: torch.Generator, low: float = 2 / 3, high: float = 3 / 2) -> torch.Tensor:
    """Anisotropic scaling: each axis of each cloud by a factor uniform in [low, high] (DGCNN)."""
    s = low + (high - low) * torch.rand(x.shape[0], 1, 3, generator=g)
    return x * s.to(x.device, x.dtype)


def random_translate(x: torch.Tensor, g: torch.Generator, amount: float = 0.2) -> torch.Tensor:
    t = (torch.rand(x.shape[0], 1, 3, generator=g) * 2 - 1) * amount
    return x + t.to(x.device, x.dtype)


def jitter(x: torch.Tensor, g: torch.Generator, sigma: float = 0.01, clip: float = 0.05) -> torch.Tensor:
    """Gaussian noise per point, clipped to +-clip (PointNet: sigma 0.01, clip 0.05)."""
    noise = (torch.randn(x.shape, generator=g) * sigma).clamp(-clip, clip)
    return x + noise.to(x.device, x.dtype)


def shuffle_points(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A random permutation of the points of each cloud (argsort of uniform keys, batched)."""
    perm = torch.rand(x.shape[0], x.shape[1], generator=g).argsort(dim=1).to(x.device)
    return torch.gather(x, 1, perm[..., None].expand(-1, -1, x.shape[2]))


# ---------------------------------------------------------------------------------- depth views
def camera_rotation(azimuth: float, elevation: float) -> torch.Tensor:
    """The rotation (3, 3) that turns the direction of a camera at (azimuth, elevation) in radians,
    d = (cos az cos el, sin az cos el, sin el), into +z, so that the camera looks down -z:
    R_y(el - pi/2) R_z(-az)."""
    tilt = elevation - math.pi / 2
    c, s = math.cos(tilt), math.sin(tilt)
    ry = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64)
    return ry @ rotation_z(torch.tensor([-azimuth], dtype=torch.float64))[0]


def orthogonal_views() -> torch.Tensor:
    """SimpleView's six cameras (6, 3, 3): from +x, -x, +y, -y, +z and -z."""
    return torch.stack(
        [camera_rotation(az, el) for az, el in ((0, 0), (math.pi, 0), (math.pi / 2, 0), (-math.pi / 2, 0))]
        + [camera_rotation(0, math.pi / 2), camera_rotation(0, -math.pi / 2)]
    )


def circular_views(n: int, elevation: float) -> torch.Tensor:
    """MVCNN's cameras (n, 3, 3): every 360/n degrees around the up axis, `elevation` radians up."""
    return torch.stack([camera_rotation(2 * math.pi * i / n, elevation) for i in range(n)])


def depth_views(x: torch.Tensor, cameras: torch.Tensor, resolution: int, extent: float) -> torch.Tensor:
    """Orthographic depth images (B, V, R, R) of clouds x (B, N, 3) from V cameras (V, 3, 3).

    Each camera sees [-extent, extent]^2 of its image plane on R x R pixels (a point beyond it
    lands on the border pixel); a point at depth d (0 at the camera's plane z' = extent, 2 extent
    at the far one) has value 1 - d / (4 extent), in [0.5, 1]; a pixel holds the value of the
    nearest of its points (the largest), an empty pixel 0. One scatter over all clouds, views and
    points (no Python loop)."""
    b, n, _ = x.shape
    v = cameras.shape[0]
    seen = torch.einsum("vij,bnj->bvni", cameras.to(x.dtype), x)  # (B, V, N, 3) camera coordinates
    pix = ((seen[..., :2] + extent) / (2 * extent) * resolution).floor().long().clamp(0, resolution - 1)
    depth = (extent - seen[..., 2]).clamp(0, 2 * extent)
    value = 1 - depth / (4 * extent)
    view = torch.arange(b * v, device=x.device).view(b, v, 1)
    flat = (view * resolution + pix[..., 0]) * resolution + pix[..., 1]  # (B, V, N)
    images = torch.zeros(b * v * resolution * resolution, device=x.device, dtype=x.dtype)
    images.scatter_reduce_(0, flat.reshape(-1), value.reshape(-1), reduce="amax", include_self=True)
    return images.view(b, v, resolution, resolution)
