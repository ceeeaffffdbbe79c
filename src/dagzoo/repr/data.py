"""The representations family's data: the image family's prepared uint8 arrays (same sources,
same code path), with labels, plus a validation split carved from train.

The validation split is stratified and seeded (`val_fraction` of every class, at least one image
of a class with two or more) and recorded in the manifest (rule, fraction, seed, size, sha256 of
the indices). Every choice an evaluation makes (the probe's L2 strength) is made on it; the test
split is scored once, at the end.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from dagzoo.data.images import ImageData, prepare_images
from dagzoo.data.integrity import file_record
from dagzoo.errors import DataError
from dagzoo.io import atomic_save_npy, atomic_write_json


def stratified_validation(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a seeded, stratified `fraction` of `labels` (per class: round(fraction
    n_c), at least 1 when n_c >= 2, never the whole class)."""
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = min(len(idx) - 1, max(1 if len(idx) >= 2 else 0, int(round(fraction * len(idx)))))
        picked.append(rng.permutation(idx)[:k])
    return np.sort(np.concatenate(picked)).astype(np.int64)


def prepare_repr_data(
    source: str,
    out: Path,
    resize: int | None,
    channels: int | None,
    val_fraction: float,
    seed: int,
    cache: Path | None = None,
) -> dict:
    """prepare_images, then the validation split; the manifest is rewritten last."""
    out = Path(out)
    manifest = prepare_images(source, out, resize=resize, channels=channels, cache=cache)
    (out / "manifest.json").unlink()  # not finished until the split is recorded
    labels = np.load(out / "train_y.npy")
    for split in ("train", "test"):
        if manifest["splits"][split]["classes"] == 0 or (np.load(out / f"{split}_y.npy") < 0).any():
            raise DataError(
                f"repr.data.source: {source} has unlabelled images in its {split} split; the probes "
                "need class labels (a folder source: put the images in class folders, "
                f"{split}/<class>/*.png)"
            )
    val = stratified_validation(labels, val_fraction, seed)
    atomic_save_npy(out / "val_index.npy", val)
    manifest["files"]["val_index.npy"] = file_record(out / "val_index.npy")
    manifest["validation"] = {
        "rule": "stratified by class, seeded, carved from train",
        "fraction": val_fraction,
        "seed": seed,
        "n": int(len(val)),
        "sha256": hashlib.sha256(val.tobytes()).hexdigest(),
    }
    atomic_write_json(out / "manifest.json", manifest)
    return manifest


class ReprData(ImageData):
    """Prepared images with three labelled splits: train (without the validation images), val
    and test."""

    SPLITS = ("train", "val", "test")

    def __init__(self, directory: Path):
        super().__init__(directory)
        self.redo = f"delete {self.dir} and rerun `dagzoo prepare-repr` (the repr_prepare rule)"
        if "validation" not in self.manifest:
            raise DataError(f"{self.dir / 'manifest.json'} has no validation split; {self.redo}")
        self._val = None

    def _val_index(self) -> np.ndarray:
        if self._val is None:
            self._val = self._load("val_index.npy", (np.int64,))
        return self._val

    def _rows(self, split: str) -> np.ndarray | slice:
        if split not in self.SPLITS:
            raise DataError(f"{self.dir}: no {split!r} split; available: {', '.join(self.SPLITS)}")
        if split == "test":
            return slice(None)
        keep = np.zeros(self.manifest["splits"]["train"]["n"], bool)
        keep[self._val_index()] = True
        return np.flatnonzero(keep if split == "val" else ~keep)

    def images(self, split: str) -> np.ndarray:
        return super().images("test" if split == "test" else "train")[self._rows(split)]

    def labels(self, split: str) -> np.ndarray:
        y = super().labels("test" if split == "test" else "train")[self._rows(split)]
        if (y < 0).any():
            raise DataError(f"{self.dir}: the {split} split has unlabelled images; the probes need class labels")
        return y

    @property
    def classes(self) -> int:
        return int(self.manifest["splits"]["train"]["classes"])
