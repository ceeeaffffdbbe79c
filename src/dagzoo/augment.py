"""Batched data augmentation on the device, shared by every family: each op transforms a whole
batch (first axis) with random numbers from one generator, so a step's augmentation is a
function of (seed, step) alone, like the rest of the Trainer (no per-example Python loop).

Families add their ops here (the representations family: crops, colour jitter; point clouds:
rotations, scaling, jitter) so that they are written once and tested once.
"""

from __future__ import annotations

import torch

from dagzoo.diffusion import per_example
from dagzoo.train import step_seed


def step_generator(seed: int, step: int, stream: int) -> torch.Generator:
    """The generator of one named random stream of step `step` (stream: a constant per use)."""
    return torch.Generator().manual_seed(step_seed(seed, step) ^ stream)


def random_rows(data: torch.Tensor, batch: int, generator: torch.Generator) -> torch.Tensor:
    """`batch` rows of `data` drawn uniformly with replacement."""
    idx = torch.randint(0, data.shape[0], (batch,), generator=generator)
    return data[idx.to(data.device)]


def random_flip(x: torch.Tensor, generator: torch.Generator, p: float = 0.5, dim: int = -1) -> torch.Tensor:
    """Each example reversed along `dim` with probability p (images: dim -1 is a horizontal flip)."""
    flip = (torch.rand(x.shape[0], generator=generator) < p).to(x.device)
    return torch.where(per_example(flip, x), x.flip(dim), x)
