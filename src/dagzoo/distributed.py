"""Data-parallel training (torch DDP) for every family's training loop.

A training job started by ``torchrun --nproc_per_node N dagzoo train ...`` (the rules do this
when the config's `processes` > 1, e.g. one process per GPU of a SLURM job) runs N ranks. Every
rank draws the same global batch from (seed, step) and keeps its own contiguous shard, so the
averaged gradients equal those of one process on the global batch (BatchNorm aside: PointNet and DGCNN,
and VoxNet with `batch_norm`, normalise each rank's shard by its own statistics). Rank 0 alone evaluates,
writes checkpoints, history and outputs, and talks to MLflow.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from dagzoo.errors import ConfigError

if TYPE_CHECKING:  # one process never needs torch.distributed; a model without torch never needs torch
    import torch


@dataclass
class DistState:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    sharding: bool = False  # True inside a training step: batches and noise are split over ranks

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


_STATE = DistState()


def init_from_env() -> DistState:
    """Join the process group torchrun describes in the environment (no-op for one process)."""
    global _STATE
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _STATE
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if _on_cuda() else "gloo"
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend)
        _STATE = DistState(dist.get_rank(), dist.get_world_size(), local_rank)
    return _STATE


def state() -> DistState:
    return _STATE


def device() -> torch.device | None:
    """The device of this rank (cuda:LOCAL_RANK under NCCL), or None to use the default."""
    if not _STATE.active:
        return None
    import torch

    return torch.device("cuda", _STATE.local_rank) if _on_cuda() else None


def _on_cuda() -> bool:
    """Ranks use the GPUs when there are some, unless DAGZOO_DEVICE (as for one process) names
    another device."""
    import torch

    wanted = os.environ.get("DAGZOO_DEVICE")
    return torch.cuda.is_available() and (not wanted or wanted.startswith("cuda"))


@contextlib.contextmanager
def sharded():
    """Within this block (one training step), `shard` and `shard_rand` split work over the ranks."""
    _STATE.sharding = True
    try:
        yield
    finally:
        _STATE.sharding = False


def _splitting() -> bool:
    return _STATE.active and _STATE.sharding


def shard(batch: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous share of a global batch (rows); the whole batch outside training."""
    if not _splitting():
        return batch
    if batch.shape[0] % _STATE.world:
        raise ConfigError(f"batch_size {batch.shape[0]} is not divisible by the {_STATE.world} training processes")
    return batch.chunk(_STATE.world)[_STATE.rank]


def shard_rand(local_shape, generator: torch.Generator, **kw) -> torch.Tensor:
    """Uniform noise for this rank's rows, cut from the global batch's draw, so a sharded step uses
    exactly the noise a single process would."""
    import torch

    if not _splitting():
        return torch.rand(local_shape, generator=generator, **kw)
    full = torch.rand((local_shape[0] * _STATE.world, *local_shape[1:]), generator=generator, **kw)
    return full.chunk(_STATE.world)[_STATE.rank]


def _reduce(value: float, op: str) -> float:
    import torch
    import torch.distributed as dist

    t = torch.tensor(
        [value], dtype=torch.float64 if op == "sum" else torch.float32, device=device() or torch.device("cpu")
    )
    dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return float(t.item())


def mean_over_ranks(value: float) -> float:
    return _reduce(value, "sum") / _STATE.world if _STATE.active else value


def any_rank(flag: bool) -> bool:
    return _reduce(1.0 if flag else 0.0, "max") > 0 if _STATE.active else flag


def barrier() -> None:
    if _STATE.active:
        import torch.distributed as dist

        dist.barrier()


def shutdown() -> None:
    if not _STATE.active:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def draw_sharded(draw: Callable[[int], torch.Tensor], rows: int) -> torch.Tensor:
    """This rank's `rows` rows of `draw(n)`, random numbers for the whole global batch of a
    data-parallel training step, cut like `distributed.shard` cuts the batch itself.

    Every rank makes the same global draw from the same RNG state, so N ranks use exactly the
    noise one process would on the whole batch (instead of N copies of the first shard's noise).
    Outside a sharded training step it is just `draw(rows)`."""
    st = state()
    world = st.world if st.active and st.sharding else 1
    return shard(draw(rows * world))
