"""Tokenizers (a DAG stage of their own): `char` and byte-level `bpe` trained on the train split.

Token ids 0..V-1 are the predicted vocabulary; the BOS id is V, an input-only symbol that starts
every evaluation window (so the first token of a window is scored too) and is never predicted.

Both ends are checked against manifests: the corpus splits against the size and sha256 that
`prepare_corpus` recorded, the token streams and tokenizer against the ones recorded here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dagzoo.data.integrity import FILE_RECORDS, check_prepared_file, file_record, load_npy, read_manifest
from dagzoo.errors import ConfigError, DataError
from dagzoo.io import atomic_save_npy, atomic_write_json, atomic_write_text, read_json

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
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      special_tokens=[], show_progress=False)
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
    manifest = {"tokenizer": spec, "vocab_size": tok.vocab_size, "bos_id": tok.vocab_size, "splits": {},
                "files": {"tokenizer.json": file_record(out_dir / "tokenizer.json")}}
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
    "type": "object", "required": ["vocab_size", "bos_id", "splits"],
    "properties": {
        "vocab_size": {"type": "integer", "minimum": 1}, "bos_id": {"type": "integer", "minimum": 0},
        "splits": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["chars"], "properties": {"chars": {"type": "integer", "minimum": 0}}}},
        "files": FILE_RECORDS}}


class TokenData:
    """The token streams and tokenizer of one (corpus, tokenizer) preparation."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.manifest = read_manifest(self.dir / "manifest.json", "--data is the tokenized directory (e.g. "
                                      "results/data/<corpus>/char), made by the tokenize stage", MANIFEST_SCHEMA)
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
