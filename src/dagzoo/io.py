"""Small file helpers: atomic writes (no half-written outputs), hashing, JSON lines."""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

import numpy as np

from dagzoo.errors import DagzooError, DataError

#: what every run directory's spec.json holds (the stages, the report and MLflow read these)
RUN_SPEC_KEYS = ("family", "experiment", "model", "seed", "config_hash", "params")
RUN_SPEC_TYPES = {"family": str, "experiment": str, "model": str, "seed": int, "config_hash": str, "params": dict}

#: set by a stage that runs as a DAG job: the pid of the job shell that started it
_JOB_SHELL_PID: int | None = None


class OrphanedJobError(DagzooError):
    """The job shell that started this stage is gone (see `watch_job_shell`)."""


def watch_job_shell() -> None:
    """Called once by a stage started by the DAG. If its job shell is later killed, Snakemake has
    already recorded the job as failed, and an output written after that would make the next run
    skip a job it never saw finish: from then on every file write of this process (outputs,
    checkpoints, history lines) stops the stage instead. The rerun redoes the stage (a training
    run resumes from its last checkpoint). A stage run by hand (under nohup, say) is not watched."""
    global _JOB_SHELL_PID
    _JOB_SHELL_PID = os.getppid()


@contextlib.contextmanager
def terminating() -> Iterator[None]:
    """Around the last write of a stage that caught SIGTERM (the Trainer's checkpoint of the
    current step), which then fails, so it never writes a file Snakemake waits for: SLURM's
    scancel, time limit or pre-emption signals the job shell too, which dies at once and leaves
    this process an orphan, and the checkpoint must still be written. Only there: any other
    write of an orphan is refused as before."""
    global _TERMINATING
    _TERMINATING = True
    try:
        yield
    finally:
        _TERMINATING = False


_TERMINATING = False


def refuse_if_orphaned(path: Path) -> None:
    if _JOB_SHELL_PID is not None and not _TERMINATING and os.getppid() != _JOB_SHELL_PID:
        raise OrphanedJobError(
            f"the job that started this process (pid {_JOB_SHELL_PID}) is gone: {path} is "
            "not written, so the DAG reruns this stage (a training run resumes from its last "
            "checkpoint)"
        )


@functools.cache
def _umask() -> int:
    """The process umask. It can only be read by setting it, so set it to 0 and restore it at
    once, a single time per process: another thread creating a file between the two calls would
    get mode 0666, so the window is kept to one pair of syscalls for the process's lifetime."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plain open() gives a new file (0666 & ~umask): what atomic writes must match."""
    return 0o666 & ~_umask()


#: a staging folder untouched this long is a killed build's leftover, not another process's work
STALE_STAGING_S = 86_400.0


def make_staging_dir(parent: Path, name: str) -> Path:
    """A hidden folder beside `parent / name` to build it in and rename it into place, with the
    mode a plain mkdir gives (mkdtemp makes it 0700, and the rename would keep that). Staging
    folders of `name` that a killed build left over a day ago (an extracted ModelNet40 is 2 GB)
    are removed first."""
    import glob
    import shutil
    import time

    for old in Path(parent).glob(f".{glob.escape(name)}.*.partial"):
        try:
            if time.time() - old.stat().st_mtime > STALE_STAGING_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=parent))
    os.chmod(staging, 0o777 & ~_umask())
    return staging


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """A binary file that replaces `path` only once it is complete and on disk (fsync, rename);
    on any error the temporary file is removed and `path` is untouched.

    mkstemp creates its file 0600 (safe for /tmp, wrong for results shared with a group): the file
    gets the mode a plain open() would give it, so outputs follow the user's umask like every
    other file the pipeline writes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), file_mode())
            yield f
            f.flush()
            os.fsync(f.fileno())
        refuse_if_orphaned(path)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Puts a rename in `directory` on disk: until the directory itself is synced, a power cut
    can leave the old file (or none) even though the new file's data were synced. A file system
    that cannot sync a directory (some network ones) is left to its own guarantees."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES):
            raise  # an I/O error is not a file system's choice: the caller reports it
    finally:
        os.close(fd)


def sync_file(path: Path) -> None:
    """Puts a file written with plain writes on disk (before it is renamed into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit_staged_tree(staging: Path, dest: Path) -> None:
    """Replaces `dest` by the folder `staging` (built beside it, make_staging_dir) so that after a
    power cut either the old tree or the whole new one is there: the new tree's files are put on
    disk before the rename, the rename after it. One os.sync() rather than a fsync per file: an
    extracted ModelNet40 is 12,000 files, and per-file syncs would each wait for the journal."""
    import shutil

    os.sync()
    if dest.exists():
        shutil.rmtree(dest)
    staging.rename(dest)
    fsync_dir(dest.parent)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_writer(path) as f:
        f.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    _atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(o: Any):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default, allow_nan=True) + "\n"


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, to_json(obj))


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_writer(path) as f:
        np.save(f, array)


def read_json(path: Path) -> Any:
    """A JSON file; a missing, unreadable or malformed one is a DataError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist: run the stage that writes it") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON (line {e.lineno}: {e.msg}); rerun the stage that writes it") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None


def read_json_object(path: Path, required: Iterable[str] | dict[str, type | tuple[type, ...]] = ()) -> dict:
    """A JSON file holding an object with the `required` keys (a dict: key -> the type(s) its value
    must have; bool never counts as a number), else a DataError naming them."""
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(obj).__name__}; rerun the stage that writes it")
    missing = [k for k in required if k not in obj]
    if missing:
        raise DataError(f"{path}: missing {', '.join(missing)}; rerun the stage that writes it")
    problem = wrong_type(obj, required) if isinstance(required, dict) else None
    if problem:
        raise DataError(f"{path}: {problem}; rerun the stage that writes it")
    return obj


_JSON_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number"}


def wrong_type(obj: dict, types: dict[str, type | tuple[type, ...]]) -> str | None:
    """'<key> is <value>, not <type>' for the first of `types`' keys present in `obj` with a value
    of another type (bool is no number unless named), else None."""
    for key, allowed in types.items():
        allowed = allowed if isinstance(allowed, tuple) else (allowed,)
        if key in obj and (not isinstance(obj[key], allowed) or (isinstance(obj[key], bool) and bool not in allowed)):
            return f"{key} is {obj[key]!r}, not {' or '.join(_JSON_NAMES.get(t, t.__name__) for t in allowed)}"
    return None


def append_jsonl(path: Path, record: dict) -> None:
    refuse_if_orphaned(path)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True, default=_json_default) + "\n")


def read_jsonl(path: Path, numeric: bool = False) -> Iterable[dict]:
    """The records (JSON objects) of a JSON-lines file. A torn last line (a crash mid-write) is
    skipped silently; any other line that is not a JSON object (`numeric`: of numbers and nulls,
    as a run's history is) is skipped with a warning naming the file and line, so one bad line
    costs that point, not the run's history."""
    import sys

    path = Path(path)
    if not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.readlines()
    for i, line in enumerate(lines):
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            record = None
            if i == len(lines) - 1 and not line.endswith("\n"):
                break
        if isinstance(record, dict) and (not numeric or all(map(_is_number_or_null, record.values()))):
            out.append(record)
        elif line.strip():
            what = "a JSON object of numbers" if numeric else "a JSON object"
            print(f"[dagzoo] warning: {path}:{i + 1}: not {what}, line skipped", file=sys.stderr)
    return out


def _is_number_or_null(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stable_hash(obj: Any) -> str:
    """A short hash of a JSON-serializable object, independent of key order."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=_json_default).encode()).hexdigest()[:16]
