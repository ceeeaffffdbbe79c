"""Image data sets, prepared once into uint8 arrays (N, C, H, W) with a manifest.

Sources:
- ``digits``: scikit-learn's 1,797 8x8 handwritten digits (embedded in the package; 17 grey
  levels 0..16, mapped to 0..255). sklearn ships no train/test split, so the first 80% (1,438)
  is train and the last 20% (359) test, positionally.
- ``fashion_mnist``: the 60k/10k split as published, from the Debian package
  ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``) when present, else downloaded.
  Debian recompressed the .gz files, so what is pinned is the decompressed IDX data (size and
  sha256), which both sources must match; a download's .gz must also have the published md5.
- ``cifar10`` / ``cifar100``: the python pickles as published; the archive's md5 is checked
  before it is extracted (safely), the extracted files' sha256 on every later use, and the
  batches are decoded by an unpickler that can build only dicts, lists, bytes and numpy arrays.
- ``folder:<path>``: PNG files (.png in any case; another image type there is refused, not
  skipped) under ``<path>/train`` and ``<path>/test`` (recursively), one size
  and channel count for both splits, at most PIL's ``Image.MAX_IMAGE_PIXELS`` pixels each;
  labelled by class folders (``train/<class>/*.png``, classes in sorted order) or unlabelled
  (label -1) when the PNGs lie directly in ``train/`` and ``test/``.

`prepare_images` writes ``{train,test}_{x,y}.npy`` and ``manifest.json`` (source, shapes, the
resize and channel handling applied, sha256 of every array, size and sha256 of every file), the
manifest last and atomically; `ImageData` refuses a file that no longer matches the manifest.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import time
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dagzoo.data.download import RemoteFile, fetch, fetch_extracted
from dagzoo.data.integrity import FILE_RECORDS, check_prepared_file, file_record, load_npy, read_manifest
from dagzoo.errors import DataError
from dagzoo.io import atomic_save_npy, atomic_write_json

FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST = {
    "train_x": RemoteFile(FASHION_MNIST_URL + "train-images-idx3-ubyte.gz", md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    "train_y": RemoteFile(FASHION_MNIST_URL + "train-labels-idx1-ubyte.gz", md5="25c81989df183df01b3e8a0aad5dffbe"),
    "test_x": RemoteFile(FASHION_MNIST_URL + "t10k-images-idx3-ubyte.gz", md5="bef4ecab320f06d8554ea6380940ec79"),
    "test_y": RemoteFile(FASHION_MNIST_URL + "t10k-labels-idx1-ubyte.gz", md5="bb300cfdad3c16e7a12a480ee83cd310"),
}
# The decompressed IDX files, as (bytes, sha256): the same whichever way the .gz was compressed.
FASHION_MNIST_IDX = {
    "train_x": (47_040_016, "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train_y": (60_008, "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "test_x": (7_840_016, "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "test_y": (10_008, "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_FASHION_MNIST_ADVICE = (
    "the file belongs to the Debian package dataset-fashion-mnist: reinstall it "
    "(apt-get install --reinstall dataset-fashion-mnist)"
)
CIFAR10 = RemoteFile(
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a", size=170498071
)
CIFAR100 = RemoteFile(
    "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", md5="eb9058c3a382ffc7106e4002c42a8d85", size=169001437
)
# CIFAR-10's archive holds 8 files (CIFAR-100's 3) in one folder, 178 MiB unpacked
CIFAR_LIMITS = {"max_members": 100, "max_total_bytes": 1 << 30}
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


def check_source_config(source: str, key: str, check_files: bool, labelled: bool = False) -> None:
    """A config's image source, before any job runs: a known name, and (when files are checked)
    an existing folder, with class folders in train/ and test/ when `labelled`."""
    from dagzoo.errors import ConfigError

    try:
        check_source_name(source)
    except DataError as e:
        raise ConfigError(f"{key}: {e}") from None
    if not check_files or not source.startswith("folder:"):
        return
    root = Path(source[len("folder:") :])
    if not root.is_dir():
        raise ConfigError(f"{key}: folder not found: {root}")
    for split in SPLITS if labelled else ():
        if not (root / split).is_dir() or not any(d.is_dir() for d in (root / split).iterdir()):
            raise ConfigError(
                f"{key}: {root / split} has no class folders; the probes need labels: put the "
                f"images in {split}/<class>/*.png"
            )


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


def _gunzip(path: Path, max_bytes: int, advice: str) -> bytes:
    """The decompressed content of `path`, at most `max_bytes` of it (a gzip bomb stops there)."""
    try:
        with gzip.open(path, "rb") as f:
            return f.read(max_bytes)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path} is not a readable gzip file ({e}); {advice}") from None


def _read_fashion_idx(path: Path, key: str, advice: str) -> np.ndarray:
    """Decode one Fashion-MNIST IDX file after checking its decompressed bytes against the pin."""
    size, sha256 = FASHION_MNIST_IDX[key]
    data = _gunzip(path, size + 1, advice)  # one byte more than expected shows a longer file
    actual = hashlib.sha256(data).hexdigest()
    if len(data) != size or actual != sha256:
        shown = f"{len(data):,}" if len(data) <= size else f"over {size:,}"
        raise DataError(
            f"checksum mismatch for {path}: it decompresses to {shown} bytes with sha256 {actual}, "
            f"but Fashion-MNIST's {key} is {size:,} bytes with sha256 {sha256}; {advice}"
        )
    return _parse_idx(path, data)


def _parse_idx(path: Path, data: bytes) -> np.ndarray:
    magic = int.from_bytes(data[:4], "big")
    if magic >> 8 != 0x08:  # 0x08: unsigned byte
        raise DataError(f"{path}: not an IDX file of unsigned bytes (magic {magic:#x})")
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path}: IDX header promises shape {shape} but holds {body.size} values")
    return body.reshape(shape)


def _fashion_mnist_file(key: str, cache: Path) -> tuple[Path, str]:
    """The .gz for `key` and what to do if it is wrong: the Debian package's copy when installed
    (recompressed, so its .gz md5 is not the published one), else the md5-verified download."""
    remote = FASHION_MNIST[key]
    debian = DEBIAN_FASHION_MNIST / remote.filename
    if debian.exists():
        return debian, DEBIAN_FASHION_MNIST_ADVICE
    path = fetch(remote, cache)
    return path, f"delete {path} and retry (it is downloaded again)"


def _fashion_mnist(cache: Path) -> dict[str, Split]:
    arrays = {}
    for key in FASHION_MNIST:
        path, advice = _fashion_mnist_file(key, cache)
        arrays[key] = _read_fashion_idx(path, key, advice)
    return {
        split: Split(np.ascontiguousarray(arrays[f"{split}_x"][:, None]), arrays[f"{split}_y"].astype(np.int64))
        for split in SPLITS
    }


def _ndarray_reconstructor():
    """numpy's array-unpickling function, whichever module (numpy.core / numpy._core) holds it."""
    return np.ndarray.__reduce__(np.zeros(0))[0]


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    # protocol-2 pickles written by Python 3 store bytes as _codecs.encode(text, "latin1")
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class _CifarUnpickler(pickle.Unpickler):
    """Decodes a CIFAR python batch (a dict of bytes keys to bytes, lists and uint8 arrays) and
    nothing else: the only callables a pickle may name are the ones rebuilding numpy arrays."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _ndarray_reconstructor(),
        ("numpy._core.multiarray", "_reconstruct"): _ndarray_reconstructor(),
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise DataError(
                f"{self.path} is not a CIFAR batch: its pickle names {module}.{name}, which is never "
                "loaded; allowed: dicts, lists, bytes and numpy arrays"
            )
        return self.ALLOWED[(module, name)]


def _load_cifar_batch(path: Path, label_key: bytes) -> Split:
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, path).load()
    except DataError:
        raise
    except Exception as e:  # any failure to decode untrusted bytes means the same: not a batch
        raise DataError(f"{path} is not a readable CIFAR batch ({type(e).__name__}: {e})") from None
    expected = f"expected a dict of b'data' (uint8 array of N x 3072) and {label_key!r} (N integers)"
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise DataError(f"{path} is not a CIFAR batch: {expected}")
    data, labels = batch[b"data"], batch[label_key]
    if not (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[1] == 3072
        and isinstance(labels, list)
        and len(labels) == len(data)
        and all(type(v) is int for v in labels)
    ):
        raise DataError(f"{path} is not a CIFAR batch: {expected}")
    return Split(data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64))


def _cifar(cache: Path, remote: RemoteFile, label_key: bytes) -> dict[str, Split]:
    # the archive's md5 and every extracted file's sha256 are checked before a batch is decoded
    members = fetch_extracted(remote, cache, **CIFAR_LIMITS)
    by_name = {Path(name).name: path for name, path in members.items()}

    def load(names: list[str]) -> Split:
        batches = []
        for name in names:
            if name not in by_name:
                raise DataError(f"{remote.filename}: member {name!r} is missing from the extracted archive")
            batches.append(_load_cifar_batch(by_name[name], label_key))
        return Split(np.concatenate([b.x for b in batches]), np.concatenate([b.y for b in batches]))

    if label_key == b"labels":
        return {"train": load([f"data_batch_{i}" for i in range(1, 6)]), "test": load(["test_batch"])}
    return {"train": load(["train"]), "test": load(["test"])}


def _describe(shape: tuple[int, ...]) -> str:
    c, h, w = shape
    return f"{w}x{h} pixels, {c} channel{'s' if c > 1 else ''}"


def _read_png(f: Path) -> np.ndarray:
    """One image as uint8 (C, H, W), refusing one over PIL's pixel limit before it is decoded
    (a few KB of PNG can declare 20,000 x 20,000 pixels)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # PIL only warns between its limit and twice it; the error below replaces the warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(f)
        with im:
            limit = Image.MAX_IMAGE_PIXELS
            if limit and im.width * im.height > limit:
                raise DataError(
                    f"{f}: {im.width}x{im.height} pixels is more than the {limit:,} pixels allowed "
                    "per image (PIL.Image.MAX_IMAGE_PIXELS); refusing to decode it"
                )
            arr = np.asarray(im.convert("L" if im.mode in ("1", "L", "I;16", "I") else "RGB"))
    except Image.DecompressionBombError as e:  # raised by Image.open itself, past twice the limit
        raise DataError(f"{f}: refusing to decode it: {e}") from None
    except (OSError, ValueError, SyntaxError) as e:  # PIL's ways of saying the file is broken
        raise DataError(f"{f}: not a readable PNG ({e})") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


#: image files a folder source refuses rather than skip (its images are PNGs: lossless, 8 bit)
_OTHER_IMAGES = (".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")


def _png_files(directory: Path) -> list[Path]:
    """The PNG files under `directory` (.png in any case), sorted; another kind of image there is
    refused, so none is silently left out of the data set."""
    files = sorted(f for f in directory.rglob("*") if f.suffix.lower() in (".png", *_OTHER_IMAGES) and f.is_file())
    other = [f for f in files if f.suffix.lower() != ".png"]
    if other:
        raise DataError(
            f"folder source: {other[0]} is not a PNG"
            + (f" (nor are {len(other) - 1} more)" if len(other) > 1 else "")
            + "; allowed: .png files (convert the others, or move them out)"
        )
    return files


def _folder(path: Path) -> dict[str, Split]:
    out = {}
    first: tuple[Path, tuple[int, ...]] | None = None  # every image, train and test, must match it
    for split in SPLITS:
        files = _png_files(path / split)
        if not files:
            raise DataError(f"folder source {path}: no PNG files under {path / split} (expected train/ and test/)")
        images = []
        for f in files:
            arr = _read_png(f)
            if first is None:
                first = (f, arr.shape)
            elif arr.shape != first[1]:
                raise DataError(
                    f"{f}: {_describe(arr.shape)} differs from {first[0]} ({_describe(first[1])}); "
                    "every image of a folder source, train and test, must have one size and "
                    "channel count"
                )
            images.append(arr)
        out[split] = Split(np.stack(images).astype(np.uint8), _folder_labels(path, split, files))
    return out


def _folder_labels(path: Path, split: str, files: list[Path]) -> np.ndarray:
    """Labels from class folders (``<split>/<class>/*.png``, classes numbered in sorted order of
    the train split's folder names), or -1 for every image when the PNGs lie directly in
    ``<split>/`` (an unlabelled source)."""
    classes = [
        f.relative_to(path / split).parts[0] if len(f.relative_to(path / split).parts) > 1 else None for f in files
    ]
    if all(c is None for c in classes):
        return np.full(len(files), -1, dtype=np.int64)
    if any(c is None for c in classes):
        loose = files[classes.index(None)]
        raise DataError(
            f"folder source {path}: {loose} lies directly in {path / split} while other images are in "
            "class folders; put every image in a class folder (labelled) or none (unlabelled)"
        )
    names = sorted(set(classes)) if split == "train" else _folder_classes(path)
    unknown = sorted(set(classes) - set(names))
    if unknown:
        raise DataError(
            f"folder source {path}: class folder {path / split / unknown[0]} has no counterpart in "
            f"{path / 'train'}; classes: {', '.join(names)}"
        )
    index = {c: i for i, c in enumerate(names)}
    return np.array([index[c] for c in classes], dtype=np.int64)


def _folder_classes(path: Path) -> list[str]:
    """The class names of a folder source: its train split's class folders, sorted."""
    return sorted(d.name for d in (path / "train").iterdir() if d.is_dir() and _png_files(d))


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
    return _folder(Path(name[len("folder:") :]))


# ---------------------------------------------------------------------------------- transforms
def resize_uint8(x: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize (antialiased when shrinking) of uint8 (N, C, H, W) to size x size."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    import torch  # here, not above: planning a DAG reads this module's source checks and slugs

    t = torch.from_numpy(x).float()
    t = torch.nn.functional.interpolate(
        t, size=(size, size), mode="bilinear", align_corners=False, antialias=size < x.shape[-1]
    )
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


def prepare_images(
    source: str, out: Path, resize: int | None = None, channels: int | None = None, cache: Path | None = None
) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # a manifest from an earlier preparation must not vouch for arrays half replaced by this one
    (out / "manifest.json").unlink(missing_ok=True)
    t0 = time.time()
    splits = load_source(source, Path(cache) if cache else out.parent / "downloads")
    manifest = {
        "source": source,
        "resize": resize,
        "channels": channels,
        "splits": {},
        "split_rule": (
            "positional 80/20 (sklearn ships no split)"
            if source == "digits"
            else "as published"
            if source in SOURCES
            else "train/ and test/ folders"
        ),
        "pixel_range": "uint8 0..255; models see x / 127.5 - 1 in [-1, 1]",
        "files": {},
    }
    for name, split in splits.items():
        x = split.x
        original = list(x.shape[1:])
        if resize:
            x = resize_uint8(x, resize)
        if channels:
            x = set_channels(x, channels)
        for filename, array in ((f"{name}_x.npy", x), (f"{name}_y.npy", split.y)):
            atomic_save_npy(out / filename, array)
            manifest["files"][filename] = file_record(out / filename)
        manifest["splits"][name] = {
            "n": int(len(x)),
            "shape": list(x.shape[1:]),
            "original_shape": original,
            "sha256_x": _sha256(x),
            "sha256_y": _sha256(split.y),
            "classes": int(split.y.max()) + 1 if (split.y >= 0).any() else 0,
        }
    manifest["seconds"] = time.time() - t0
    atomic_write_json(out / "manifest.json", manifest)
    return manifest


#: what ImageData reads of a prepared image directory's manifest
MANIFEST_SCHEMA = {
    "type": "object",
    "required": ["splits"],
    "properties": {
        "splits": {
            "type": "object",
            "required": ["train"],
            "additionalProperties": {
                "type": "object",
                "required": ["n", "shape"],
                "properties": {
                    "n": {"type": "integer", "minimum": 0},
                    "classes": {"type": "integer", "minimum": 0},
                    "shape": {
                        "type": "array",
                        "items": {"type": "integer", "minimum": 1},
                        "minItems": 3,
                        "maxItems": 3,
                    },
                },
            },
        },
        "files": FILE_RECORDS,
    },
}


class ImageData:
    """A prepared image data set (see `prepare_images`).

    Every array is checked against the manifest (file size and sha256, hashed once per process)
    before it is loaded: arrays edited after preparation are refused, not silently used.
    """

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.redo = f"delete {self.dir} and rerun `dagzoo prepare-images` (the image_prepare rule)"
        self.manifest = read_manifest(
            self.dir / "manifest.json", "run `dagzoo prepare-images` (the image_prepare rule) first", MANIFEST_SCHEMA
        )

    def _check_split(self, split: str) -> None:
        if split not in self.manifest["splits"]:
            raise DataError(f"{self.dir}: no {split!r} split; available: {', '.join(self.manifest['splits'])}")

    def _load(self, filename: str, dtypes: tuple[type, ...]) -> np.ndarray:
        path = self.dir / filename
        # manifests written before files were recorded have no "files": their arrays are unchecked
        check_prepared_file(path, self.manifest.get("files", {}).get(filename), self.redo)
        return load_npy(path, dtypes, self.redo)

    def images(self, split: str) -> np.ndarray:
        self._check_split(split)
        x = self._load(f"{split}_x.npy", (np.uint8,))
        if x.ndim != 4 or list(x.shape[1:]) != self.manifest["splits"][split]["shape"]:
            raise DataError(f"{self.dir / f'{split}_x.npy'} has shape {x.shape}, not the manifest's; {self.redo}")
        return x

    def labels(self, split: str) -> np.ndarray:
        self._check_split(split)
        return self._load(f"{split}_y.npy", (np.int64,))

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.manifest["splits"]["train"]["shape"])
