"""Data hardening: verified extraction caches, safe CIFAR decoding, archive limits, Fashion-MNIST
payload pins, image-folder limits, and prepared data checked against its manifest."""

import gzip
import io
import json
import os
import pickle
import shutil
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from dagzoo.data import images, integrity
from dagzoo.data.download import RemoteFile, file_digest, safe_extract
from dagzoo.data.images import ImageData, prepare_images
from dagzoo.errors import DataError
from dagzoo.io import read_json
from dagzoo.text.data import TokenData, prepare_corpus, prepare_tokens

from conftest import dagzoo, small_corpus

pytestmark = pytest.mark.probe


def refused(excinfo, *fragments) -> str:
    """The error's message, after checking it is one line holding every fragment."""
    message = str(excinfo.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert str(fragment) in message, (fragment, message)
    return message


# ---------------------------------------------------------------------------------- CIFAR
class _Hostile:
    """Unpickling this runs a shell command: what a swapped CIFAR batch could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _batch_bytes(n: int = 4, label: int = 0, key: bytes = b"labels") -> bytes:
    data = np.full((n, 3072), 7 * (label + 1), np.uint8)
    return pickle.dumps(
        {b"batch_label": b"test", key: [label] * n, b"data": data, b"filenames": [b"f%d.png" % i for i in range(n)]},
        protocol=2,
    )


def _cifar10_archive(path: Path, replace: dict[str, bytes] | None = None) -> Path:
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    with tarfile.open(path, "w:gz") as t:
        for i, name in enumerate(names):
            data = (replace or {}).get(name, _batch_bytes(label=i % 10))
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def fake_cifar10(tmp_path, monkeypatch):
    """Puts a CIFAR-10-shaped archive in the download cache and pins its md5, as if downloaded."""

    def make(replace=None) -> Path:
        cache = tmp_path / "downloads"
        cache.mkdir(exist_ok=True)
        archive = _cifar10_archive(cache / "cifar-10-python.tar.gz", replace)
        monkeypatch.setattr(
            images, "CIFAR10", RemoteFile("http://127.0.0.1:9/cifar-10-python.tar.gz", md5=file_digest(archive, "md5"))
        )
        return cache

    return make


def test_cifar_batch_format_decodes_with_both_numpy_module_names(tmp_path):
    data = _batch_bytes(n=3, label=2)
    assert b"numpy._core.multiarray" in data or b"numpy.core.multiarray" in data
    for module in (b"numpy._core.multiarray", b"numpy.core.multiarray"):  # numpy 2 / numpy 1 and Python 2
        path = tmp_path / module.decode()
        path.write_bytes(data.replace(b"numpy._core.multiarray", module).replace(b"numpy.core.multiarray", module))
        split = images._load_cifar_batch(path, b"labels")
        assert split.x.shape == (3, 3, 32, 32) and split.x.dtype == np.uint8 and (split.x == 21).all()
        assert split.y.tolist() == [2, 2, 2]


def test_hostile_pickle_in_a_verified_archive_is_refused(tmp_path, fake_cifar10):
    marker = tmp_path / "pwned"
    cache = fake_cifar10({"data_batch_1": pickle.dumps(_Hostile(marker), protocol=2)})
    with pytest.raises(DataError) as e:
        prepare_images("cifar10", tmp_path / "out", cache=cache)
    refused(e, "data_batch_1", "system", "never loaded", "allowed:")
    assert not marker.exists(), "the pickle's code ran"
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_swapped_extracted_batch_is_refused(tmp_path, fake_cifar10):
    cache = fake_cifar10()
    m = prepare_images("cifar10", tmp_path / "out", cache=cache)
    assert m["splits"]["train"]["n"] == 20 and m["splits"]["test"]["n"] == 4
    record = read_json(cache / "cifar-10-python.extracted.json")
    assert set(record["members"]) >= {"cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"}

    marker = tmp_path / "pwned"
    batch = cache / "cifar-10-python.extracted" / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(pickle.dumps(_Hostile(marker), protocol=2))
    with pytest.raises(DataError) as e:
        prepare_images("cifar10", tmp_path / "out2", cache=cache)
    refused(e, batch, "no longer matches", "delete")
    assert not marker.exists() and not (tmp_path / "out2" / "manifest.json").exists()


def test_unfinished_extraction_is_redone(tmp_path, fake_cifar10):
    cache = fake_cifar10()
    prepare_images("cifar10", tmp_path / "out", cache=cache)
    extracted = cache / "cifar-10-python.extracted"
    (cache / "cifar-10-python.extracted.json").unlink()  # as if the run died before the record
    (extracted / "cifar-10-batches-py" / "test_batch").write_bytes(b"half written")
    m = prepare_images("cifar10", tmp_path / "out2", cache=cache)
    assert m["splits"]["test"]["n"] == 4
    assert not [p for p in cache.iterdir() if p.name.endswith(".partial")], "staging folders are removed"


def test_malformed_cifar_batches_are_one_line_errors(tmp_path):
    cases = {
        "truncated": _batch_bytes()[:100],
        "not a dict": pickle.dumps([1, 2], protocol=2),
        "wrong dtype": pickle.dumps({b"data": np.zeros((2, 3072)), b"labels": [0, 1]}, protocol=2),
        "text": b"hello",
    }
    for name, data in cases.items():
        path = tmp_path / name.replace(" ", "_")
        path.write_bytes(data)
        with pytest.raises(DataError) as e:
            images._load_cifar_batch(path, b"labels")
        refused(e, path)


# ---------------------------------------------------------------------------------- archive limits
def _zip(path, members):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(name, data)
    return path


def test_member_count_limit_is_checked_before_writing(tmp_path):
    archive = _zip(tmp_path / "many.zip", [(f"f{i}.txt", "x") for i in range(5)])
    with pytest.raises(DataError) as e:
        safe_extract(archive, tmp_path / "out", max_members=3)
    refused(e, archive, "more than 3 members")
    assert not (tmp_path / "out").exists()
    assert len(safe_extract(archive, tmp_path / "ok", max_members=5)) == 5

    with tarfile.open(tmp_path / "many.tar.gz", "w:gz") as t:
        for i in range(5):
            t.addfile(tarfile.TarInfo(f"f{i}"), io.BytesIO(b""))
    with pytest.raises(DataError, match="more than 4 members"):
        safe_extract(tmp_path / "many.tar.gz", tmp_path / "out", max_members=4)
    assert not (tmp_path / "out").exists()


def test_total_size_limit_is_checked_before_writing(tmp_path):
    archive = _zip(tmp_path / "bomb.zip", [("small.txt", "x"), ("zeros.bin", b"\0" * 1_000_000)])
    assert archive.stat().st_size < 5_000
    with pytest.raises(DataError) as e:
        safe_extract(archive, tmp_path / "out", max_total_bytes=100_000)
    refused(e, archive, "more than 100,000 bytes")
    assert not (tmp_path / "out").exists()

    with tarfile.open(tmp_path / "bomb.tar.gz", "w:gz") as t:
        info = tarfile.TarInfo("zeros.bin")
        info.size = 1_000_000
        t.addfile(info, io.BytesIO(b"\0" * info.size))
    with pytest.raises(DataError, match="more than 999,999 bytes"):
        safe_extract(tmp_path / "bomb.tar.gz", tmp_path / "out", max_total_bytes=999_999)
    assert not (tmp_path / "out").exists()


def test_corrupt_archive_is_a_one_line_error_and_leaves_no_partial_member(tmp_path):
    payload = np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8).tobytes()
    with tarfile.open(tmp_path / "ok.tar.gz", "w:gz") as t:
        info = tarfile.TarInfo("random.bin")
        info.size = len(payload)
        t.addfile(info, io.BytesIO(payload))
    data = (tmp_path / "ok.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) // 2])  # an interrupted download
    with pytest.raises(DataError) as e:
        safe_extract(tmp_path / "cut.tar.gz", tmp_path / "out")
    refused(e, tmp_path / "cut.tar.gz", "corrupt archive")
    assert not (tmp_path / "out" / "random.bin").exists(), "a member that failed midway is removed"

    data = _zip(tmp_path / "ok.zip", [("a.txt", "A" * 1000)]).read_bytes()
    (tmp_path / "bad.zip").write_bytes(data[:36] + b"\xff" * 4 + data[40:])  # damaged compressed data
    with pytest.raises(DataError) as e:
        safe_extract(tmp_path / "bad.zip", tmp_path / "out2")
    refused(e, tmp_path / "bad.zip", "corrupt archive")
    assert not (tmp_path / "out2" / "a.txt").exists(), "a member that failed midway is removed"


# ---------------------------------------------------------------------------------- Fashion-MNIST
def _idx_gz(path: Path, array: np.ndarray) -> Path:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())
    return path


@pytest.mark.skipif(
    not images.DEBIAN_FASHION_MNIST.is_dir(), reason="the Debian package dataset-fashion-mnist is not installed"
)
def test_fashion_mnist_from_the_real_debian_files(tmp_path):
    m = prepare_images("fashion_mnist", tmp_path / "out", cache=tmp_path / "downloads")
    assert not (tmp_path / "downloads").exists(), "nothing was downloaded"
    assert m["splits"]["train"]["n"] == 60_000 and m["splits"]["test"]["n"] == 10_000
    assert m["splits"]["train"]["shape"] == [1, 28, 28] and m["splits"]["train"]["classes"] == 10
    data = ImageData(tmp_path / "out")
    assert np.bincount(data.labels("train")).tolist() == [6000] * 10


@pytest.mark.skipif(
    not images.DEBIAN_FASHION_MNIST.is_dir(), reason="the Debian package dataset-fashion-mnist is not installed"
)
def test_corrupted_copy_of_the_real_files_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "fashion-mnist"
    shutil.copytree(images.DEBIAN_FASHION_MNIST, copy)
    labels = copy / "t10k-labels-idx1-ubyte.gz"
    payload = bytearray(gzip.decompress(labels.read_bytes()))
    payload[100] = (payload[100] + 1) % 10  # one label changed: a valid IDX file, not Fashion-MNIST
    labels.write_bytes(gzip.compress(bytes(payload)))
    monkeypatch.setattr(images, "DEBIAN_FASHION_MNIST", copy)
    with pytest.raises(DataError) as e:
        prepare_images("fashion_mnist", tmp_path / "out", cache=tmp_path / "downloads")
    message = refused(e, labels, "checksum mismatch", "10,008 bytes", "reinstall")
    assert "delete" not in message, "a file a system package owns is never to be deleted"
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_wrong_debian_files_are_refused_without_advice_to_delete(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    debian.mkdir()
    for key, remote in images.FASHION_MNIST.items():
        _idx_gz(debian / remote.filename, np.zeros((2, 28, 28) if key.endswith("x") else (2,)))
    monkeypatch.setattr(images, "DEBIAN_FASHION_MNIST", debian)
    with pytest.raises(DataError) as e:
        prepare_images("fashion_mnist", tmp_path / "out")
    message = refused(e, debian / "train-images-idx3-ubyte.gz", "47,040,016 bytes", "apt-get install --reinstall")
    assert "delete" not in message


def test_cached_download_with_the_wrong_payload_is_refused(tmp_path, monkeypatch):
    cache = tmp_path / "downloads"
    cache.mkdir()
    pinned = {}
    for key, remote in images.FASHION_MNIST.items():
        path = _idx_gz(cache / remote.filename, np.zeros((2, 28, 28) if key.endswith("x") else (2,)))
        pinned[key] = RemoteFile(remote.url, md5=file_digest(path, "md5"))  # the .gz passes its md5
    monkeypatch.setattr(images, "FASHION_MNIST", pinned)
    monkeypatch.setattr(images, "DEBIAN_FASHION_MNIST", tmp_path / "absent")
    with pytest.raises(DataError) as e:
        prepare_images("fashion_mnist", tmp_path / "out", cache=cache)
    refused(e, cache / "train-images-idx3-ubyte.gz", "checksum mismatch", "delete")


def test_malformed_idx_payload_is_reported(tmp_path):
    data = bytes([0, 0, 8, 3]) + (5).to_bytes(4, "big") * 3 + b"\x00" * 10  # promises 125 values
    with pytest.raises(DataError, match="promises shape"):
        images._parse_idx(tmp_path / "x", data)
    (tmp_path / "not.gz").write_bytes(b"plain text")
    with pytest.raises(DataError) as e:
        images._read_fashion_idx(tmp_path / "not.gz", "test_y", "reinstall it")
    refused(e, tmp_path / "not.gz", "not a readable gzip file")


# ---------------------------------------------------------------------------------- image folders
def _png_folder(root: Path, train_size=(8, 8), test_size=(8, 8)) -> Path:
    from PIL import Image

    for split, (w, h) in (("train", train_size), ("test", test_size)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(2):
            Image.fromarray(np.full((h, w, 3), 40 * i, np.uint8)).save(root / split / f"{i}.png")
    return root


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _huge_1bit_png(path: Path, side: int = 20_000) -> Path:
    """A valid black 1-bit PNG of side x side pixels, a few dozen KB on disk."""
    compressor, row = zlib.compressobj(9), b"\0" * (1 + (side + 7) // 8)  # filter byte + packed bits
    idat = b"".join(compressor.compress(row * 1000) for _ in range(side // 1000)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


def test_train_and_test_images_of_different_sizes_are_refused(tmp_path):
    root = _png_folder(tmp_path / "imgs", train_size=(8, 8), test_size=(8, 9))
    with pytest.raises(DataError) as e:
        prepare_images(f"folder:{root}", tmp_path / "out")
    refused(e, root / "test" / "0.png", "8x9 pixels", root / "train" / "0.png", "8x8 pixels")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_jpeg_in_an_image_folder_is_refused_and_an_upper_case_png_is_read(tmp_path):
    from PIL import Image

    root = _png_folder(tmp_path / "imgs")
    (root / "train" / "0.png").rename(root / "train" / "0.PNG")
    prepared = prepare_images(f"folder:{root}", tmp_path / "out")
    assert prepared["splits"]["train"]["n"] == 2
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "test" / "2.jpg")
    with pytest.raises(DataError) as e:
        prepare_images(f"folder:{root}", tmp_path / "out2")
    refused(e, root / "test" / "2.jpg", "is not a PNG", "allowed: .png files")


def test_decompression_bomb_png_is_refused(tmp_path):
    root = _png_folder(tmp_path / "imgs")
    bomb = _huge_1bit_png(root / "train" / "bomb.png")
    assert bomb.stat().st_size < 100_000
    with pytest.raises(DataError) as e:
        prepare_images(f"folder:{root}", tmp_path / "out")
    refused(e, bomb, "400000000 pixels")


def test_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    from PIL import Image

    root = _png_folder(tmp_path / "imgs", train_size=(20, 20), test_size=(20, 20))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)  # 400 pixels: over the limit, under twice it
    with pytest.raises(DataError) as e:
        prepare_images(f"folder:{root}", tmp_path / "out")
    refused(e, root / "train" / "0.png", "20x20 pixels", "300 pixels")


def test_cli_reports_a_data_error_in_one_line(tmp_path):
    root = _png_folder(tmp_path / "imgs", train_size=(8, 8), test_size=(9, 9))
    r = dagzoo("prepare-images", "--source", f"folder:{root}", "--out", tmp_path / "out", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "9x9 pixels" in r.stderr, r.stderr


def test_failed_preparation_leaves_no_manifest_over_old_arrays(tmp_path):
    root = _png_folder(tmp_path / "imgs")
    prepare_images(f"folder:{root}", tmp_path / "out")
    _png_folder(root, test_size=(9, 9))
    with pytest.raises(DataError):
        prepare_images(f"folder:{root}", tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()


# ---------------------------------------------------------------------------------- prepared data
@pytest.fixture
def digits(tmp_path) -> Path:
    prepare_images("digits", tmp_path / "d", resize=16, channels=3)
    return tmp_path / "d"


def test_prepared_images_record_and_pass_their_files(digits):
    m = read_json(digits / "manifest.json")
    assert set(m["files"]) == {"train_x.npy", "train_y.npy", "test_x.npy", "test_y.npy"}
    assert m["files"]["test_y.npy"]["sha256"] == file_digest(digits / "test_y.npy")
    data = ImageData(digits)
    assert data.images("train").shape[1:] == (3, 16, 16) and data.labels("test").max() == 9


def test_object_dtype_npy_is_a_one_line_error(digits):
    labels = digits / "train_y.npy"
    np.save(labels, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    m = read_json(digits / "manifest.json")
    del m["files"]  # a manifest from before files were recorded: only the loader stands guard
    (digits / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataError) as e:
        ImageData(digits).labels("train")
    refused(e, labels, "dtype object", "allowed: a .npy array of int64", "prepare-images")


def test_npy_loader_refuses_what_is_not_a_numeric_array(tmp_path):
    np.save(tmp_path / "f.npy", np.zeros(3, np.float32))
    np.savez(tmp_path / "z.npy", a=np.zeros(3))  # savez appends .npz
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    for name, fragment in (
        ("f.npy", "float32 values; allowed: uint8"),
        ("z.npy.npz", ".npz archive"),
        ("junk.npy", "is not a .npy array"),
        ("absent.npy", "is missing"),
    ):
        with pytest.raises(DataError) as e:
            integrity.load_npy(tmp_path / name, (np.uint8,), "prepare again")
        refused(e, tmp_path / name, fragment, "prepare again")


def test_image_array_edited_after_preparation_is_refused(digits):
    x = np.load(digits / "test_x.npy")
    x[0, 0, 0, 0] ^= 1  # same size, one pixel changed
    np.save(digits / "test_x.npy", x)
    with pytest.raises(DataError) as e:
        ImageData(digits).images("test")
    refused(e, digits / "test_x.npy", "changed after it was prepared", "sha256", f"delete {digits}", "prepare-images")


def test_prepared_files_are_hashed_once_per_process(digits, monkeypatch):
    calls = []
    real = integrity.file_digest
    monkeypatch.setattr(integrity, "file_digest", lambda path, *a: calls.append(Path(path).name) or real(path, *a))
    for _ in range(3):
        ImageData(digits).images("train")
    assert calls == ["train_x.npy"]


def test_corpus_split_edited_after_prepare_text_is_refused(tmp_path):
    prepare_corpus(f"file:{small_corpus(tmp_path / 'c.txt')}", tmp_path / "d")
    train = tmp_path / "d" / "train.txt"
    train.write_text(train.read_text().replace("Lord", "Lard", 1))  # same size
    with pytest.raises(DataError) as e:
        prepare_tokens(tmp_path / "d", tmp_path / "d" / "char", {"kind": "char"})
    refused(e, train, "changed after it was prepared", "prepare-text", f"delete {tmp_path / 'd'}")
    assert not (tmp_path / "d" / "char" / "manifest.json").exists()

    train.write_text(train.read_text() + "more\n")
    with pytest.raises(DataError) as e:
        prepare_tokens(tmp_path / "d", tmp_path / "d" / "char", {"kind": "char"})
    refused(e, train, "bytes, not the")


def test_token_stream_edited_after_tokenize_is_refused(tmp_path):
    prepare_corpus(f"file:{small_corpus(tmp_path / 'c.txt')}", tmp_path / "d")
    prepare_tokens(tmp_path / "d", tmp_path / "d" / "char", {"kind": "char"})
    tokens = tmp_path / "d" / "char" / "val.npy"
    ids = np.load(tokens)
    np.save(tokens, ids[::-1].copy())
    data = TokenData(tmp_path / "d" / "char")
    assert data.tokens("train").dtype == np.int32
    with pytest.raises(DataError) as e:
        data.tokens("val")
    refused(e, tokens, "changed after it was prepared", "tokenize")

    tokenizer = tmp_path / "d" / "char" / "tokenizer.json"
    tokenizer.write_text(tokenizer.read_text().replace('"kind": "char"', '"kind":  "char"'))
    with pytest.raises(DataError) as e:
        data.tokenizer()
    refused(e, tokenizer, "changed after it was prepared")


def test_unreadable_manifest_is_a_one_line_error(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "manifest.json").write_text("{ torn")
    with pytest.raises(DataError) as e:
        TokenData(tmp_path / "d")
    refused(e, tmp_path / "d" / "manifest.json", "not a readable manifest")
    with pytest.raises(DataError) as e:
        ImageData(tmp_path / "d")
    refused(e, "prepare-images")


def _npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _flip_last_data_byte(data: bytes) -> bytes:
    cut = data.index(b"PK\x01\x02") - 1  # the last byte of the last stored array, before the central directory
    return data[:cut] + bytes([data[cut] ^ 0xFF]) + data[cut + 1 :]


@pytest.mark.parametrize(
    "content, needle",
    [
        (lambda: _npz_bytes(a=np.arange(100))[:60], "is not a readable .npz archive"),
        (lambda: _flip_last_data_byte(_npz_bytes(a=np.arange(100))), "is not a readable .npz archive"),
        (lambda: b"", "is not a readable .npz archive"),
        (lambda: _npy_bytes(np.arange(3)), "is a .npy array, not an .npz archive"),
        (lambda: _npz_bytes(b=np.arange(3)), "has no a array"),
        (lambda: _npz_bytes(a=np.array([{"x": 1}], dtype=object)), "is not a readable .npz archive"),
    ],
)
def test_a_damaged_npz_archive_is_one_line_naming_it(tmp_path, content, needle):
    path = tmp_path / "x.npz"
    path.write_bytes(content())
    with pytest.raises(DataError) as e:
        integrity.load_npz(path, ("a",), "redo it")
    assert str(path) in str(e.value) and needle in str(e.value) and str(e.value).endswith("redo it")
    assert len(str(e.value).splitlines()) == 1


def _npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_image_fid_checks_its_reference_before_the_inception_pass(tmp_path):
    reference = tmp_path / "ref.npz"
    reference.write_bytes(_npz_bytes(features=np.zeros((2, 3))))
    r = dagzoo("image-fid", "--samples", tmp_path / "no-samples-here", "--reference", reference, check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"{reference} has no mu, sigma, n array" in r.stderr


@pytest.mark.parametrize(
    "reader, manifest, needle",
    [
        ("text", {"source": "corpus"}, "'vocab_size' is a required property"),
        ("text", {"vocab_size": "65", "bos_id": 65, "splits": {}}, "vocab_size: '65' is not of type 'integer'"),
        (
            "text",
            {"vocab_size": 65, "bos_id": 65, "splits": {}, "files": {"train.npy": {"bytes": "x"}}},
            "files.train.npy",
        ),
        ("image", {"splits": {"test": {"n": 1, "shape": [1, 8, 8]}}}, "'train' is a required property"),
        ("image", {"splits": {"train": {"n": 1, "shape": [8, 8]}}}, "splits.train.shape"),
        ("points", {"classes": [], "points": 64}, "classes"),
    ],
)
def test_a_manifest_of_another_stage_is_one_line(tmp_path, reader, manifest, needle):
    from dagzoo.points.data import PointData

    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError) as e:
        {"text": TokenData, "image": ImageData, "points": PointData}[reader](tmp_path)
    message = str(e.value)
    assert f"{tmp_path / 'manifest.json'} is not the manifest this stage reads" in message and needle in message
    assert len(message.splitlines()) == 1


def test_the_data_digest_is_of_the_data_not_of_the_manifest_bytes(tmp_path):
    """Preparing the same data again (a deleted directory, --forcerun) writes another wall time:
    the digest, which decides whether a checkpoint is resumed, stays; another file's bytes change it."""

    def manifest(seconds, sha):
        (tmp_path / "manifest.json").write_text(
            json.dumps(
                {"seconds": seconds, "root": str(tmp_path), "files": {"train_x.npy": {"bytes": 3, "sha256": sha}}}
            )
        )
        return integrity.data_digest(tmp_path)

    assert manifest(1.5, "aa") == manifest(9.0, "aa") != manifest(1.5, "bb")
    (tmp_path / "manifest.json").write_text("{}")
    assert integrity.data_digest(tmp_path) is None  # nothing vouches for the data: trusted, as before


def test_a_staging_folder_left_by_a_killed_build_is_removed_the_next_time(tmp_path):
    from dagzoo.io import make_staging_dir

    stale, fresh, other = (
        tmp_path / ".cache.k1ll3d.partial",
        tmp_path / ".cache.w0rk1ng.partial",
        tmp_path / ".other.k1ll3d.partial",
    )
    for folder in (stale, fresh, other):
        (folder / "sub").mkdir(parents=True)
    day_ago = os.stat(stale).st_mtime - 2 * 86_400
    os.utime(stale, (day_ago, day_ago))
    os.utime(other, (day_ago, day_ago))
    staging = make_staging_dir(tmp_path, "cache")
    assert staging.is_dir() and not stale.exists()
    assert fresh.exists() and other.exists(), "another process's work, and another name's, stay"
