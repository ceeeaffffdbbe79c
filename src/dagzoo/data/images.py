"""Image data sets, prepared once into uint8 arrays (N, C, H, W) with a manifest.

Sources:
- ``digits``: scikit-learn's 1,797 8x8 handwritten digits (embedded in the package; 17 grey
  levels 0..16, mapped to 0..255). sklearn ships no train/test split, so the first 80% (1,437)
  is train and the last 20% (360) test, positionally.
- ``fashion_mnist``: the 60k/10k split as published, from the Debian package
  ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``) when present, else downloaded;
  md5 checked either way before anything is decoded.
- ``cifar10`` / ``cifar100``: the python pickles as published; the archive's md5 is checked
  before it is extracted (safely) or anything is unpickled.
- ``folder:<path>``: PNG files under ``<path>/train`` and ``<path>/test`` (recursively), one size.

`prepare_images` writes ``{train,test}_{x,y}.npy`` and ``manifest.json`` (source, shapes, the
resize and channel handling applied, sha256 of every array), the manifest last and atomically.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dagzoo.data.download import RemoteFile, fetch, safe_extract, verify
from dagzoo.errors import DataError
from dagzoo.io import atomic_save_npy, atomic_write_json, read_json

FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST = {
    "train_x": RemoteFile(FASHION_MNIST_URL + "train-images-idx3-ubyte.gz", md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    "train_y": RemoteFile(FASHION_MNIST_URL + "train-labels-idx1-ubyte.gz", md5="25c81989df183df01b3e8a0aad5dffbe"),
    "test_x": RemoteFile(FASHION_MNIST_URL + "t10k-images-idx3-ubyte.gz", md5="bef4ecab320f06d8554ea6380940ec79"),
    "test_y": RemoteFile(FASHION_MNIST_URL + "t10k-labels-idx1-ubyte.gz", md5="bb300cfdad3c16e7a12a480ee83cd310"),
}
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
CIFAR10 = RemoteFile("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                     md5="c58f30108f718f92721af3b95e74349a", size=170498071)
CIFAR100 = RemoteFile("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                      md5="eb9058c3a382ffc7106e4002c42a8d85", size=169001437)
SOURCES = ("digits", "fashion_mnist", "cifar10", "cifar100")
SPLITS = ("train", "test")


@dataclass
class Split:
    x: np.ndarray  # uint8 (N, C, H, W)
    y: np.ndarray  # int64 (N,); -1 where there are no labels


def check_source_name(name: str) -> None:
    if name in SOURCES or (name.startswith("folder:") and len(name) > 7):
        return
    raise DataError(f"unknown image source {name!r}; allowed: {', '.join(SOURCES)}, folder:<path>")


def source_slug(name: str) -> str:
    if name.startswith("folder:"):
        return "folder-" + hashlib.sha256(name.encode()).hexdigest()[:10]
    return name


def dataset_slug(source: str, resize: int | None, channels: int | None) -> str:
    return source_slug(source) + (f"-{resize}px" if resize else "") + (f"-c{channels}" if channels else "")


# ---------------------------------------------------------------------------------- sources
def _digits() -> dict[str, Split]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # 0..16 -> 0..255
    y = d.target.astype(np.int64)
    n_train = int(round(0.8 * len(x)))
    return {"train": Split(x[:n_train], y[:n_train]), "test": Split(x[n_train:], y[n_train:])}


def _read_idx(path: Path, remote: RemoteFile) -> np.ndarray:
    verify(path, remote, cached=True)
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[:4], "big")
    if magic >> 8 != 0x08:  # 0x08: unsigned byte
        raise DataError(f"{path}: not an IDX file of unsigned bytes (magic {magic:#x})")
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path}: IDX header promises shape {shape} but holds {body.size} values")
    return body.reshape(shape)


def _fashion_mnist(cache: Path) -> dict[str, Split]:
    files = {}
    for key, remote in FASHION_MNIST.items():
        local = DEBIAN_FASHION_MNIST / remote.filename
        files[key] = local if local.exists() else fetch(remote, cache)
    out = {}
    for split in SPLITS:
        x = _read_idx(files[f"{split}_x"], FASHION_MNIST[f"{split}_x"])[:, None]
        y = _read_idx(files[f"{split}_y"], FASHION_MNIST[f"{split}_y"]).astype(np.int64)
        out[split] = Split(np.ascontiguousarray(x), y)
    return out


def _cifar(cache: Path, remote: RemoteFile, label_key: bytes) -> dict[str, Split]:
    archive = fetch(remote, cache)  # md5 checked before anything below touches the file
    root = cache / archive.name.replace(".tar.gz", "")
    if not (root / "done").exists():
        safe_extract(archive, root)
        (root / "done").touch()
    pickles = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "done")

    def load(names):
        xs, ys = [], []
        for name in names:
            matches = [p for p in pickles if p.name == name]
            if not matches:
                raise DataError(f"{archive}: member {name!r} is missing from the extracted archive")
            with open(matches[0], "rb") as f:
                batch = pickle.load(f, encoding="bytes")  # safe: the archive's md5 matched
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[label_key], dtype=np.int64))
        return Split(np.concatenate(xs), np.concatenate(ys))

    if label_key == b"labels":
        return {"train": load([f"data_batch_{i}" for i in range(1, 6)]), "test": load(["test_batch"])}
    return {"train": load(["train"]), "test": load(["test"])}


def _folder(path: Path) -> dict[str, Split]:
    from PIL import Image

    out = {}
    for split in SPLITS:
        files = sorted((path / split).rglob("*.png"))
        if not files:
            raise DataError(f"folder source {path}: no PNG files under {path / split} (expected train/ and test/)")
        images = []
        for f in files:
            try:
                with Image.open(f) as im:
                    arr = np.asarray(im.convert("L" if im.mode in ("1", "L", "I;16", "I") else "RGB"))
            except OSError as e:
                raise DataError(f"{f}: not a readable PNG ({e})") from None
            arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
            if images and arr.shape != images[0].shape:
                raise DataError(f"{f}: shape {arr.shape} differs from {files[0]} ({images[0].shape}); "
                                "every image of a folder source must have one size and channel count")
            images.append(arr)
        out[split] = Split(np.stack(images).astype(np.uint8), np.full(len(images), -1, dtype=np.int64))
    return out


def load_source(name: str, cache: Path) -> dict[str, Split]:
    check_source_name(name)
    if name == "digits":
        return _digits()
    if name == "fashion_mnist":
        return _fashion_mnist(cache)
    if name == "cifar10":
        return _cifar(cache, CIFAR10, b"labels")
    if name == "cifar100":
        return _cifar(cache, CIFAR100, b"fine_labels")
    return _folder(Path(name[len("folder:"):]))


# ---------------------------------------------------------------------------------- transforms
def resize_uint8(x: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize (antialiased when shrinking) of uint8 (N, C, H, W) to size x size."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    t = torch.from_numpy(x).float()
    t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False,
                                        antialias=size < x.shape[-1])
    return t.round_().clamp_(0, 255).to(torch.uint8).numpy()


def set_channels(x: np.ndarray, channels: int) -> np.ndarray:
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1 and channels == 3:
        return np.repeat(x, 3, axis=1)
    if c == 3 and channels == 1:  # ITU-R 601 luma, as PIL's convert("L")
        w = np.array([0.299, 0.587, 0.114], dtype=np.float64)[None, :, None, None]
        return np.rint((x * w).sum(axis=1, keepdims=True)).clip(0, 255).astype(np.uint8)
    raise DataError(f"cannot convert {c}-channel images to {channels} channels")


def _sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def prepare_images(source: str, out: Path, resize: int | None = None, channels: int | None = None,
                   cache: Path | None = None) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    splits = load_source(source, Path(cache) if cache else out.parent / "downloads")
    manifest = {"source": source, "resize": resize, "channels": channels, "splits": {},
                "split_rule": ("positional 80/20 (sklearn ships no split)" if source == "digits"
                               else "as published" if source in SOURCES else "train/ and test/ folders"),
                "pixel_range": "uint8 0..255; models see x / 127.5 - 1 in [-1, 1]"}
    for name, split in splits.items():
        x = split.x
        original = list(x.shape[1:])
        if resize:
            x = resize_uint8(x, resize)
        if channels:
            x = set_channels(x, channels)
        atomic_save_npy(out / f"{name}_x.npy", x)
        atomic_save_npy(out / f"{name}_y.npy", split.y)
        manifest["splits"][name] = {"n": int(len(x)), "shape": list(x.shape[1:]), "original_shape": original,
                                    "sha256_x": _sha256(x), "sha256_y": _sha256(split.y),
                                    "classes": int(split.y.max()) + 1 if (split.y >= 0).any() else 0}
    manifest["seconds"] = time.time() - t0
    atomic_write_json(out / "manifest.json", manifest)
    return manifest


class ImageData:
    """A prepared image data set (see `prepare_images`)."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        try:
            self.manifest = read_json(self.dir / "manifest.json")
        except FileNotFoundError:
            raise DataError(f"{self.dir} holds no prepared image data (no manifest.json); "
                            "run `dagzoo prepare-images` (the image_prepare rule) first") from None

    def images(self, split: str) -> np.ndarray:
        if split not in self.manifest["splits"]:
            raise DataError(f"{self.dir}: no {split!r} split; available: {', '.join(self.manifest['splits'])}")
        x = np.load(self.dir / f"{split}_x.npy")
        if list(x.shape[1:]) != self.manifest["splits"][split]["shape"]:
            raise DataError(f"{self.dir / f'{split}_x.npy'} has shape {x.shape}, not the manifest's; prepare again")
        return x

    def labels(self, split: str) -> np.ndarray:
        return np.load(self.dir / f"{split}_y.npy")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.manifest["splits"]["train"]["shape"])


def to_model_range(x_uint8: torch.Tensor) -> torch.Tensor:
    return x_uint8.float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8, rounding as when images are saved (what FID sees)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
