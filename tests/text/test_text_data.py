"""Corpora, splits, tokenizers, checksummed downloads and safe extraction."""

import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from functools import partial

import pytest

from dagzoo.data.download import RemoteFile, fetch, safe_extract
from dagzoo.errors import DataError
from dagzoo.io import read_json
from dagzoo.text.data import (
    BPETokenizer,
    CharTokenizer,
    TokenData,
    kjv_text,
    prepare_corpus,
    prepare_tokens,
    split_positional,
)

from conftest import small_corpus


def test_kjv_text_is_clean_and_ordered():
    text = kjv_text()
    assert 4_000_000 < len(text) < 4_500_000
    assert text.startswith("In the beginning God created the heaven")
    assert text.rstrip().endswith("The grace of our Lord Jesus Christ be with you all. Amen.")
    import re

    assert not re.search(r"\b\d+:\d+\s", text), "verse numbers must be stripped"
    assert text.count("\n") > 24_000


def test_prepare_corpus_split_and_manifest(tmp_path):
    corpus = small_corpus(tmp_path / "c.txt")
    m = prepare_corpus(f"file:{corpus}", tmp_path / "out", val=0.1, test=0.1)
    parts = [(tmp_path / "out" / f"{s}.txt").read_text() for s in ("train", "val", "test")]
    assert "".join(parts) == corpus.read_text()
    assert all(p.endswith("\n") for p in parts[:2]), "cuts fall on line boundaries"
    for s, p in zip(("train", "val", "test"), parts):
        assert m["files"][s]["sha256"] == hashlib.sha256(p.encode()).hexdigest()
        assert m["files"][s]["chars"] == len(p)
    assert read_json(tmp_path / "out" / "manifest.json") == m
    assert abs(len(parts[2]) / len(corpus.read_text()) - 0.1) < 0.02


def test_split_is_deterministic():
    text = "".join(f"line {i}\n" for i in range(1000))
    assert split_positional(text, 0.05, 0.05) == split_positional(text, 0.05, 0.05)


@pytest.mark.probe
@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"   \n\n", "is empty"),
        (b"ok line\n\xff\xfe broken\n", "not valid UTF-8 (line 2"),
        (b"one short line\n", "split is empty"),
    ],
)
def test_bad_corpus_errors(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        prepare_corpus(f"file:{path}", tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.probe
def test_missing_corpus_file(tmp_path):
    with pytest.raises(DataError, match="corpus file not found"):
        prepare_corpus(f"file:{tmp_path / 'nope.txt'}", tmp_path / "out")


def test_char_tokenizer_roundtrip_and_unknowns():
    tok = CharTokenizer.train("hello world\n")
    ids = tok.encode("hello world\n")
    assert tok.decode(ids) == "hello world\n"
    unk = tok.encode("hez")
    assert unk[-1] == tok.unk_id and tok.vocab_size == len(set("hello world\n")) + 1


def test_bpe_tokenizer_roundtrip(tmp_path):
    text = small_corpus(tmp_path / "c.txt").read_text()
    tok = BPETokenizer.train(text, vocab_size=300)
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert len(ids) < len(text) / 2 and tok.vocab_size <= 300


def test_prepare_tokens_writes_streams(tmp_path):
    corpus = small_corpus(tmp_path / "c.txt")
    prepare_corpus(f"file:{corpus}", tmp_path / "d")
    prepare_tokens(tmp_path / "d", tmp_path / "d" / "char", {"kind": "char"})
    data = TokenData(tmp_path / "d" / "char")
    tok = data.tokenizer()
    for s in ("train", "val", "test"):
        assert tok.decode(data.tokens(s)) == (tmp_path / "d" / f"{s}.txt").read_text()
    assert data.bos_id == data.vocab_size


# ------------------------------------------------------------------ downloads
@pytest.fixture
def http_root(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_verifies_checksum(http_root, tmp_path):
    root, url = http_root
    (root / "corpus.txt").write_bytes(b"some text\n" * 100)
    good = hashlib.sha256(b"some text\n" * 100).hexdigest()
    path = fetch(RemoteFile(f"{url}/corpus.txt", sha256=good), tmp_path / "cache")
    assert path.read_bytes() == b"some text\n" * 100
    # a second fetch uses the verified cache (the server may be gone)
    (root / "corpus.txt").unlink()
    assert fetch(RemoteFile(f"{url}/corpus.txt", sha256=good), tmp_path / "cache") == path


@pytest.mark.probe
def test_download_checksum_mismatch_leaves_nothing(http_root, tmp_path):
    root, url = http_root
    (root / "corpus.txt").write_bytes(b"tampered\n")
    with pytest.raises(DataError, match="checksum mismatch for corpus.txt") as e:
        fetch(RemoteFile(f"{url}/corpus.txt", sha256="0" * 64), tmp_path / "cache")
    assert "expected sha256 000" in str(e.value)
    assert list((tmp_path / "cache").iterdir()) == []


@pytest.mark.probe
def test_cached_file_with_wrong_checksum_is_refused(tmp_path):
    (tmp_path / "corpus.txt").write_bytes(b"changed on disk")
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch(RemoteFile("http://127.0.0.1:9/corpus.txt", md5="0" * 32), tmp_path)


@pytest.mark.probe
def test_unreachable_download_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="cannot download"):
        fetch(RemoteFile("http://127.0.0.1:9/x.zip", sha256="0" * 64), tmp_path, timeout=2)


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members:
            z.writestr(name, data)


def test_safe_extract_zip_and_tar(tmp_path):
    _zip(tmp_path / "ok.zip", [("d/a.txt", "A"), ("b.txt", "B")])
    safe_extract(tmp_path / "ok.zip", tmp_path / "x")
    assert (tmp_path / "x" / "d" / "a.txt").read_text() == "A"
    with tarfile.open(tmp_path / "ok.tar.gz", "w:gz") as t:
        info = tarfile.TarInfo("c.txt")
        info.size = 1
        t.addfile(info, io.BytesIO(b"C"))
    safe_extract(tmp_path / "ok.tar.gz", tmp_path / "y")
    assert (tmp_path / "y" / "c.txt").read_text() == "C"


@pytest.mark.probe
@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "d/../../evil.txt"])
def test_safe_extract_refuses_traversal(tmp_path, name):
    _zip(tmp_path / "bad.zip", [("fine.txt", "x"), (name, "pwned")])
    with pytest.raises(DataError, match="unsafe archive member"):
        safe_extract(tmp_path / "bad.zip", tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "out" / "fine.txt").exists(), "nothing is written from a rejected archive"


@pytest.mark.probe
def test_safe_extract_refuses_tar_links(tmp_path):
    with tarfile.open(tmp_path / "bad.tar", "w") as t:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        t.addfile(info)
    with pytest.raises(DataError, match="links and devices"):
        safe_extract(tmp_path / "bad.tar", tmp_path / "out")
