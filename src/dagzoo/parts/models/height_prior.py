"""`height_prior`: the majority-part baseline of the segmentation table. Counted on the training
shapes: for each category and each of `bins` equal slices of the up axis over [-1, 1] (the clouds
lie in the unit sphere, z up), the part most frequent among the training points in that slice; a
slice no training point of the category reached gets the category's most frequent part. Every
point is then given the part of its category and height slice. It knows the category and the
height and nothing else, so the gap to it is what a network adds beyond "where along the up
axis"."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dagzoo.data.integrity import load_npz
from dagzoo.io import append_jsonl, atomic_writer
from dagzoo.parts.base import PartModel
from dagzoo.registry import param, register

if TYPE_CHECKING:
    from dagzoo.lifecycle import RunContext


def height_bins(clouds: np.ndarray, bins: int) -> np.ndarray:
    """The slice (..., N) of every point's z in [-1, 1] cut into `bins` equal slices."""
    return np.clip(np.floor((clouds[..., 2] + 1.0) / 2.0 * bins), 0, bins - 1).astype(np.int64)


def majority_table(
    clouds: np.ndarray, parts: np.ndarray, cats: np.ndarray, parts_of: list[list[int]], bins: int
) -> np.ndarray:
    """(C, bins) part indices: the most frequent part of each category in each height slice
    (ties: the lower index); empty slices: the category's most frequent part."""
    num_parts = 1 + max(max(p) for p in parts_of)
    counts = np.zeros((len(parts_of), bins, num_parts), np.int64)
    np.add.at(counts, (np.repeat(cats, clouds.shape[1]), height_bins(clouds, bins).ravel(), parts.ravel()), 1)
    table = np.empty((len(parts_of), bins), np.int64)
    for c, own in enumerate(parts_of):
        sub = counts[c][:, own]  # only the category's own parts compete
        overall = own[int(sub.sum(axis=0).argmax())]
        table[c] = np.where(sub.sum(axis=1) > 0, np.asarray(own)[sub.argmax(axis=1)], overall)
    return table


@register("parts", "height_prior")
class HeightPrior(PartModel):
    """The majority part per category and height slice (counted; no gradient steps)."""

    # counted by rank 0 on one core (numpy; the family's base imports torch all the same)
    distributed_training = False
    threaded_training = False

    @dataclass
    class Params:
        bins: int = param(16, "equal slices of the up axis over [-1, 1]", min=1, max=4096)

    def __init__(self, params, data, device):
        super().__init__(params, data, device)
        self.table: np.ndarray | None = None

    @classmethod
    def check_written(cls, exp: dict, where: str) -> None:
        """No epochs or steps to check."""

    def fit(self, ctx: RunContext) -> dict:
        t0 = time.perf_counter()
        clouds, parts, cats = self.data.clouds("train"), self.data.labels("train"), self.data.category("train")
        self.table = majority_table(clouds, parts, cats, self.data.parts_of, self.params.bins)
        seconds = time.perf_counter() - t0
        with atomic_writer(ctx.run_dir / "model.npz") as f:
            np.savez(f, table=self.table)
        val = self.scores("val")
        rec = {"step": 1, "clouds": len(cats), "train_time_s": seconds, "timestamp_ms": int(time.time() * 1000)}
        if val is not None:
            rec.update({"val/instance_miou": val["instance_miou"], "val/point_acc": val["point_acc"]})
        append_jsonl(ctx.run_dir / "history.jsonl", rec)
        return {"steps": 1, "clouds": len(cats), "flops": None, "train_time_s": seconds, "params": self.table.size}

    @classmethod
    def load(cls, params, data, run_dir: Path | None, device, seed: int = 0):
        model = cls(params, data, device)
        arrays = load_npz(Path(run_dir) / "model.npz", ("table",), redo=f"rerun the training of {run_dir}")
        model.table = arrays["table"]
        expected = (data.num_categories, params.bins)
        if model.table.shape != expected:
            from dagzoo.errors import CheckpointError

            raise CheckpointError(
                f"{Path(run_dir) / 'model.npz'} holds a {model.table.shape} table, not {expected}; retrain this run"
            )
        return model

    def predict(self, clouds: np.ndarray, cats: np.ndarray, net=None) -> np.ndarray:
        return self.table[cats[:, None], height_bins(clouds, self.params.bins)]
