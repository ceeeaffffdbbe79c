"""Downloads with a checksum checked before use, and archive extraction that refuses unsafe paths."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from tqdm.auto import tqdm

from dagzoo.errors import DataError


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


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, remote: RemoteFile, cached: bool = False) -> None:
    """Raise DataError unless `path` has the published checksum."""
    for algorithm, expected in (("sha256", remote.sha256), ("md5", remote.md5)):
        if expected:
            actual = file_digest(path, algorithm)
            if actual != expected.lower():
                action = (f"The cached copy {path} was not used; delete it and retry." if cached else
                          "The download was discarded and nothing was extracted or unpickled; the file is "
                          "corrupt or the source changed, so check the URL.")
                raise DataError(f"checksum mismatch for {remote.filename} from {remote.url}: expected {algorithm} "
                                f"{expected}, got {actual}. {action}")
            return
    raise DataError(f"no checksum is known for {remote.url}; refusing to use an unverified download")


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
            try:
                response = urllib.request.urlopen(remote.url, timeout=timeout)
            except OSError as e:
                raise DataError(f"cannot download {remote.url}: {e}. Check the network, or place the file "
                                f"at {dest} by hand (it will be checksum-verified).") from e
            with response:
                total = int(response.headers.get("Content-Length") or 0) or remote.size
                with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {remote.filename}",
                          leave=False, disable=None) as bar:
                    for chunk in iter(lambda: response.read(1 << 20), b""):
                        out.write(chunk)
                        bar.update(len(chunk))
        verify(tmp, remote)
        tmp.replace(dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def _check_member(dest: Path, name: str) -> Path:
    target = (dest / name).resolve()
    if os.path.isabs(name) or not target.is_relative_to(dest.resolve()):
        raise DataError(f"unsafe archive member {name!r}: it would be written outside {dest}; refusing to extract")
    return target


def _members(archive: Path, stack: contextlib.ExitStack):
    """(name, kind, open) of every member, kind in {'file', 'dir', 'link'} ('link' = anything else)."""
    if zipfile.is_zipfile(archive):
        z = stack.enter_context(zipfile.ZipFile(archive))
        for info in z.infolist():
            mode = info.external_attr >> 16
            kind = "dir" if info.is_dir() else "link" if mode and (mode & 0o170000) == 0o120000 else "file"
            yield info.filename, kind, partial(z.open, info)
    elif tarfile.is_tarfile(archive):
        t = stack.enter_context(tarfile.open(archive))
        for m in t.getmembers():
            kind = "dir" if m.isdir() else "file" if m.isfile() else "link"
            yield m.name, kind, partial(t.extractfile, m)
    else:
        raise DataError(f"{archive} is neither a zip nor a tar archive")


def safe_extract(archive: Path, dest: Path) -> list[Path]:
    """Extract a zip or tar archive into `dest`, refusing absolute paths, '..', links and devices.

    Every member is checked before anything is written, so a rejected archive leaves no files.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    with contextlib.ExitStack() as stack:
        members = list(_members(archive, stack))
        for name, kind, _ in members:
            _check_member(dest, name)
            if kind == "link":
                raise DataError(f"unsafe archive member {name!r}: links and devices are not extracted")
        for name, kind, open_member in members:
            target = _check_member(dest, name)
            if kind == "dir":
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with open_member() as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            written.append(target)
    return written
