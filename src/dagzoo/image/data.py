"""What the image family alone reads of its data: its models' [-1, 1] pixel range and its training
batches. Reading and preparing image data sets (digits, Fashion-MNIST, CIFAR, folders) is shared
with the representations family and lives in `dagzoo.data.images`."""

from __future__ import annotations

import torch

from dagzoo.augment import random_flip, random_rows, step_generator


def to_model_range(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> [-1, 1] floats, the range every image model sees."""
    return x_uint8.float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8, rounding as when images are saved (what FID sees)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def random_batch(train: torch.Tensor, batch: int, seed: int, step: int, hflip: bool) -> torch.Tensor:
    """Images of step `step` (a function of (seed, step) only), in [-1, 1], optionally flipped."""
    g = step_generator(seed, step, 0x1A6E)
    x = to_model_range(random_rows(train, batch, g))
    return random_flip(x, g) if hflip else x
