"""Checks that a file on disk is still the one recorded (size + sha256), and safe .npy loading.

Prepared data and extracted download caches record the size and sha256 of every file they
write; a later stage compares the file against that record before it trusts the contents, so
an edit made after preparation (or a file swapped into a cache) is refused instead of used.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from dagzoo.errors import DataError

# (path, size, mtime, inode) -> sha256: a file is hashed once per process however often a
# stage opens it; any rewrite changes the key, so the memo never vouches for new contents.
_SHA256_MEMO: dict[tuple[str, int, int, int], str] = {}


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_record(path: Path) -> dict:
    """What a manifest records about a file it vouches for."""
    return {"bytes": Path(path).stat().st_size, "sha256": file_digest(path)}


def memoized_sha256(path: Path) -> str:
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _SHA256_MEMO:
        _SHA256_MEMO[key] = file_digest(path)
    return _SHA256_MEMO[key]


def record_mismatch(path: Path, record: dict) -> str | None:
    """Why `path` is not the file `record` ({"bytes", "sha256"}) describes, or None if it is.

    The size is compared first: it costs a stat and catches truncation and most edits.
    """
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return "it is missing"
    if "bytes" in record and size != record["bytes"]:
        return f"it has {size:,} bytes, not the {record['bytes']:,} recorded"
    actual = memoized_sha256(path)
    if actual != record["sha256"]:
        return f"its sha256 is {actual}, not the {record['sha256']} recorded"
    return None


def check_prepared_file(path: Path, record: dict | None, redo: str) -> None:
    """Refuse a prepared file that changed after its manifest recorded it; `redo` says how to
    prepare it again. A manifest written before files were recorded (record None) is trusted."""
    if record is None:
        return
    problem = record_mismatch(path, record)
    if problem:
        raise DataError(f"{path} changed after it was prepared ({problem}) and is not used; {redo}")


#: a manifest's records of the files it vouches for (file name -> size and sha256)
FILE_RECORDS = {
    "type": "object",
    "additionalProperties": {
        "type": "object",
        "required": ["sha256"],
        "properties": {"bytes": {"type": "integer", "minimum": 0}, "sha256": {"type": "string"}},
    },
}


def read_manifest(path: Path, missing: str, schema: dict | None = None) -> dict:
    """The manifest at `path`; `missing` says which stage writes it (for the error message).
    `schema` (JSON schema) holds what the reading stage needs of it: a manifest of another stage
    (e.g. the corpus directory's, where the tokenized one is wanted) is refused in one line
    instead of failing on the first key it lacks."""
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path.parent} has no manifest.json: {missing}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise DataError(f"{path} is not a readable manifest ({e}): {missing}") from None
    if not isinstance(manifest, dict):
        raise DataError(f"{path} is not a readable manifest (not a JSON object): {missing}")
    if schema is not None:
        import jsonschema

        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(manifest))
        if error is not None:
            where = ".".join(map(str, error.absolute_path)) or "<top level>"
            raise DataError(f"{path} is not the manifest this stage reads ({where}: {error.message}): {missing}")
    return manifest


def data_digest(directory: Path) -> str | None:
    """A fingerprint of a prepared data directory's contents: the sha256 of its manifest's file
    records (every data file's size and sha256), not of the manifest itself, which also holds
    the preparation's wall time and paths. None without a manifest or records (nothing to vouch
    for the data)."""
    try:
        manifest = json.loads((Path(directory) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    records = {key: manifest[key] for key in ("files", "arrays") if isinstance(manifest, dict) and key in manifest}
    if not records:
        return None
    return hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()


def load_npy(path: Path, dtypes: tuple[type, ...], redo: str) -> np.ndarray:
    """A numeric .npy array of one of `dtypes`, never unpickling anything.

    numpy refuses object arrays and pickles when allow_pickle is False, but with a ValueError;
    this turns every way the file can be unreadable into one line naming it.
    """
    allowed = ", ".join(np.dtype(d).name for d in dtypes)
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path} is missing; {redo}") from None
    except ValueError as e:
        if "Object arrays" in str(e):
            raise DataError(
                f"{path} holds an array of Python objects (dtype object), which is never loaded; "
                f"allowed: a .npy array of {allowed}; {redo}"
            ) from None
        if "allow_pickle" in str(e):  # no .npy header: numpy would have to unpickle the file
            raise DataError(
                f"{path} is not a .npy array (it could only be unpickled, which is never done); "
                f"allowed: a .npy array of {allowed}; {redo}"
            ) from None
        raise DataError(f"{path} is not a readable .npy array ({e}); {redo}") from None
    except (OSError, EOFError) as e:
        raise DataError(f"{path} is not a readable .npy array ({e}); {redo}") from None
    if not isinstance(array, np.ndarray):  # an .npz archive, not one array
        array.close()
        raise DataError(f"{path} is an .npz archive, not a .npy array of {allowed}; {redo}")
    if array.dtype not in [np.dtype(d) for d in dtypes]:
        raise DataError(f"{path} holds {array.dtype} values; allowed: {allowed}; {redo}")
    return array


def load_npz(path: Path, required: tuple[str, ...], redo: str) -> dict[str, np.ndarray]:
    """Every array of an .npz archive, never unpickling anything; a missing, truncated or
    damaged archive, or one without the `required` arrays, is one line naming the file."""
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(f"{path} is a .npy array, not an .npz archive; {redo}")
        with archive:
            arrays = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise DataError(f"{path} is missing; {redo}") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise DataError(f"{path} is not a readable .npz archive ({type(e).__name__}: {e}); {redo}") from None
    missing = [name for name in required if name not in arrays]
    if missing:
        raise DataError(f"{path} has no {', '.join(missing)} array; {redo}")
    return arrays
