"""Downloads with a checksum checked before use, and archive extraction that refuses unsafe paths.

An archive's checksum vouches only for the archive: `fetch_extracted` also records the sha256 of
every member it extracts and checks the extracted files against that record on later use.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Callable, Iterator

from tqdm.auto import tqdm

from dagzoo.data.integrity import file_digest, file_record, record_mismatch
from dagzoo.errors import DataError
from dagzoo.io import atomic_write_json, commit_staged_tree, file_mode, fsync_dir, make_staging_dir

# Generous enough for the largest archives a data set here could come in (ModelNet40's zip has
# about 12,300 files plus folders); callers that know their archive pass tighter limits.
DEFAULT_MAX_MEMBERS = 100_000
DEFAULT_MAX_TOTAL_BYTES = 20 << 30  # 20 GiB


@dataclass(frozen=True)
class RemoteFile:
    """A published file: where to get it and the checksum it must have."""

    url: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None

    @property
    def filename(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


class ChecksumMismatch(DataError):
    """A file whose digest is not the one expected of it."""


def verify(path: Path, remote: RemoteFile, cached: bool = False) -> None:
    """Raise ChecksumMismatch (a DataError) unless `path` has the published checksum."""
    for algorithm, expected in (("sha256", remote.sha256), ("md5", remote.md5)):
        if expected:
            actual = file_digest(path, algorithm)
            if actual != expected.lower():
                action = (
                    _cached_copy_advice(path)
                    if cached
                    else "The download was discarded and nothing was extracted or unpickled; the file is "
                    "corrupt or the source changed, so check the URL."
                )
                raise ChecksumMismatch(
                    f"checksum mismatch for {remote.filename} from {remote.url}: expected "
                    f"{algorithm} {expected}, got {actual}. {action}"
                )
            return
    raise DataError(f"no checksum is known for {remote.url}; refusing to use an unverified download")


def _cached_copy_advice(path: Path) -> str:
    # a file under /usr belongs to a system package: deleting it would break the package
    if Path(path).resolve().is_relative_to("/usr"):
        return f"The file {path} was not used; it belongs to a system package, so reinstall that package."
    return f"The cached copy {path} was not used; delete it and retry."


def fetch(remote: RemoteFile, cache_dir: Path, timeout: float = 60.0) -> Path:
    """Return the verified local copy of `remote`, downloading it into `cache_dir` if needed.

    The download goes to a temporary file that is renamed into place only after its checksum
    matches, so an interrupted or corrupt download never looks like a cached file.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    dest = cache_dir / remote.filename
    if dest.exists():
        verify(dest, remote, cached=True)
        return dest
    fd, tmp_name = tempfile.mkstemp(prefix=f".{remote.filename}.", suffix=".part", dir=cache_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), file_mode())  # mkstemp's 0600 would survive the rename
            try:
                response = urllib.request.urlopen(remote.url, timeout=timeout)
            except OSError as e:
                raise DataError(
                    f"cannot download {remote.url}: {e}. Check the network, or place the file "
                    f"at {dest} by hand (it will be checksum-verified)."
                ) from e
            with response:
                total = int(response.headers.get("Content-Length") or 0) or remote.size
                with tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    desc=f"download {remote.filename}",
                    leave=False,
                    disable=None,
                ) as bar:
                    for chunk in iter(lambda: response.read(1 << 20), b""):
                        out.write(chunk)
                        bar.update(len(chunk))
                out.flush()
                os.fsync(out.fileno())  # on disk before the rename: a power cut leaves no short file named dest
        verify(tmp, remote)
        tmp.replace(dest)
        fsync_dir(cache_dir)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------- extraction
@dataclass(frozen=True)
class _Member:
    name: str
    kind: str  # 'file', 'dir' or 'link' ('link' = anything else: links, devices, fifos)
    size: int  # uncompressed bytes as the archive's header declares them
    open: Callable[[], IO[bytes]]


def _zip_members(z: zipfile.ZipFile) -> Iterator[_Member]:
    for info in z.infolist():
        mode = info.external_attr >> 16
        kind = "dir" if info.is_dir() else "link" if mode and (mode & 0o170000) == 0o120000 else "file"
        yield _Member(info.filename, kind, info.file_size, partial(z.open, info))


def _tar_members(t: tarfile.TarFile) -> Iterator[_Member]:
    for m in t:  # header by header, so a listing can stop at the first member over a limit
        kind = "dir" if m.isdir() else "file" if m.isfile() else "link"
        yield _Member(m.name, kind, m.size if m.isfile() else 0, partial(t.extractfile, m))


def _open_members(archive: Path, stack: contextlib.ExitStack) -> Iterator[_Member]:
    if zipfile.is_zipfile(archive):
        return _zip_members(stack.enter_context(zipfile.ZipFile(archive)))
    if tarfile.is_tarfile(archive):
        return _tar_members(stack.enter_context(tarfile.open(archive)))
    raise DataError(f"{archive} is neither a zip nor a tar archive")


def _check_member(dest: Path, member: _Member) -> Path:
    target = (dest / member.name).resolve()
    if os.path.isabs(member.name) or not target.is_relative_to(dest.resolve()):
        raise DataError(
            f"unsafe archive member {member.name!r}: it would be written outside {dest}; refusing to extract"
        )
    if member.kind == "link":
        raise DataError(f"unsafe archive member {member.name!r}: links and devices are not extracted")
    return target


def _checked_members(
    archive: Path, dest: Path, stack: contextlib.ExitStack, max_members: int, max_total_bytes: int
) -> list[_Member]:
    """Every member, each checked, and the limits checked from the headers alone, before anything
    is written: a small archive can declare 200,000 files or gigabytes of zeros."""
    members, total = [], 0
    for member in _open_members(archive, stack):
        _check_member(dest, member)
        members.append(member)
        total += member.size
        if len(members) > max_members:
            raise DataError(
                f"{archive} has more than {max_members:,} members (the limit for this archive); refusing to extract"
            )
        if total > max_total_bytes:
            raise DataError(
                f"{archive} would unpack to more than {max_total_bytes:,} bytes (the limit for this "
                "archive); refusing to extract"
            )
    return members


def _write_members(members: list[_Member], dest: Path) -> list[Path]:
    """Write the checked members; on any failure remove the files written so far, so a partial
    extraction never passes for a complete one."""
    written: list[Path] = []
    try:
        for member in members:
            target = _check_member(dest, member)
            if member.kind == "dir":
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            written.append(target)
            # zip and tar readers stop at the size the header declared, which the limits counted
            with member.open() as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written


def safe_extract(
    archive: Path, dest: Path, *, max_members: int = DEFAULT_MAX_MEMBERS, max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
) -> list[Path]:
    """Extract a zip or tar archive into `dest`, refusing absolute paths, '..', links, devices and
    archives over `max_members` members or `max_total_bytes` uncompressed bytes.

    Every member and both limits are checked before anything is written, so a rejected archive
    leaves no files; a failure while writing removes what was written.
    """
    archive, dest = Path(archive), Path(dest)
    try:
        with contextlib.ExitStack() as stack:
            members = _checked_members(archive, dest, stack, max_members, max_total_bytes)
            dest.mkdir(parents=True, exist_ok=True)
            return _write_members(members, dest)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise DataError(f"{archive} is a corrupt archive ({e}); refusing to extract") from None
    except OSError as e:
        raise DataError(f"cannot extract {archive} into {dest}: {e}") from None


def fetch_extracted(
    remote: RemoteFile,
    cache_dir: Path,
    *,
    max_members: int = DEFAULT_MAX_MEMBERS,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    timeout: float = 60.0,
) -> dict[str, Path]:
    """The members of the verified archive `remote`, as {posix path in the archive: local file}.

    The archive is extracted once into ``<cache>/<name>.extracted/``, and the size and sha256 of
    every member go to ``<name>.extracted.json`` beside it, written last. Later calls use the
    extracted files only if they still match that record: the archive's checksum says nothing
    about files that were changed in the cache afterwards (a swapped pickle would run code).
    """
    archive = fetch(remote, cache_dir, timeout)  # creates cache_dir
    dest = Path(cache_dir) / f"{_archive_stem(remote.filename)}.extracted"
    record_path = dest.with_name(dest.name + ".json")
    source = {"archive": remote.filename, "checksum": remote.sha256 or remote.md5}
    record = _read_extraction_record(record_path)
    if record is None or record.get("source") != source:
        record = _extract_and_record(archive, dest, record_path, source, max_members, max_total_bytes)
    else:
        _check_extracted(dest, record, archive)
    return {name: dest / name for name in record["members"]}


def require_member(members: dict[str, Path], name: str, remote: RemoteFile) -> Path:
    if name not in members:
        raise DataError(
            f"{remote.filename} from {remote.url} has no member {name!r}; "
            f"it holds: {', '.join(sorted(members)) or 'nothing'}"
        )
    return members[name]


def _archive_stem(filename: str) -> str:
    for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
        if filename.endswith(suffix):
            return filename[: -len(suffix)]
    return filename


def _read_extraction_record(path: Path) -> dict | None:
    """The record of a finished extraction, or None (no extraction finished, or an unreadable
    record: either way the archive is extracted again)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("members"), dict):
        return None
    return record


def _extract_and_record(
    archive: Path, dest: Path, record_path: Path, source: dict, max_members: int, max_total_bytes: int
) -> dict:
    # Extract beside `dest` and rename it into place, then write the record: a failed extraction
    # leaves nothing (a killed one a hidden staging folder) and no record, so it is never taken
    # for a finished one.
    record_path.unlink(missing_ok=True)
    staging = make_staging_dir(dest.parent, dest.name).resolve()
    try:
        written = safe_extract(archive, staging, max_members=max_members, max_total_bytes=max_total_bytes)
        members = {path.relative_to(staging).as_posix(): file_record(path) for path in written}
        commit_staged_tree(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    record = {"source": source, "members": members}
    atomic_write_json(record_path, record)
    return record


def _check_extracted(dest: Path, record: dict, archive: Path) -> None:
    for name, member in record["members"].items():
        problem = record_mismatch(dest / name, member)
        if problem:
            raise DataError(
                f"{dest / name} no longer matches what was extracted from {archive} ({problem}), "
                f"so it is not used; delete {dest} to extract it again from the verified archive"
            )
