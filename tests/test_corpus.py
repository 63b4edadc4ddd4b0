"""Corpus loading, caching, fingerprints, errors, and deterministic batches."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from verifier import corpus as C


@pytest.fixture(autouse=True)
def _private_cache(cache: Path) -> Path:
    return cache


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_text_file_is_byte_tokens(tmp_path: Path, cache: Path):
    text = "def f(x):\n    return x + 1\n" * 50 + "naïve ünïcode\n"
    path = tmp_path / "a.txt"
    path.write_text(text, encoding="utf-8")
    c = C.load_corpus(path)
    assert c.vocab_size == 256
    assert bytes(np.asarray(c.tokens, dtype=np.uint8)) == text.encode()
    assert re.fullmatch(r"corpus:[0-9a-f]{12}/bytes", c.scope)
    assert len(c.val) == pytest.approx(0.05 * len(c.tokens), abs=1)
    assert len(c.train) + len(c.val) == len(c.tokens)
    assert c.decode(c.encode("return x")) == "return x"
    # cached: the second load maps the same file and hashes nothing new
    tokens_file = c.path / "tokens.bin"
    before = tokens_file.stat().st_mtime_ns
    again = C.load_corpus(path)
    assert again.fingerprint == c.fingerprint and again.path == c.path
    assert tokens_file.stat().st_mtime_ns == before
    assert str(c.path).startswith(str(cache))


def test_directory_is_sorted_and_skips_hidden_files(tmp_path: Path):
    root = _tree(tmp_path / "d", {"b.txt": b"BBB\n", "a.txt": b"AAA\n", "sub/c.txt": b"CCC\n",
                                  ".hidden": b"\0\0", ".git/x": b"\0"})
    c = C.load_corpus(root, val_fraction=0.25)
    assert bytes(np.asarray(c.tokens, dtype=np.uint8)) == b"AAA\nBBB\nCCC\n"
    assert c.n_files == 3


def test_fingerprint_follows_content_not_location(tmp_path: Path):
    a = _tree(tmp_path / "a", {"x.txt": b"hello world\n" * 20, "y.txt": b"more text\n" * 20})
    fp = C.load_corpus(a).fingerprint
    b = tmp_path / "b"
    shutil.copytree(a, b)
    assert C.load_corpus(b).fingerprint == fp
    (b / "y.txt").write_bytes(b"other text\n" * 20)
    assert C.load_corpus(b).fingerprint != fp
    # a renamed file is a different corpus (paths are part of the fingerprint)
    (a / "y.txt").rename(a / "z.txt")
    assert C.load_corpus(a).fingerprint != fp


def test_errors_are_one_clear_value_error(tmp_path: Path):
    with pytest.raises(C.CorpusNotFound, match="does not exist"):
        C.load_corpus(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(C.EmptyCorpus, match="empty"):
        C.load_corpus(tmp_path / "empty.txt")
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(C.EmptyCorpus, match="no files"):
        C.load_corpus(tmp_path / "emptydir")
    mixed = _tree(tmp_path / "mixed", {"ok.txt": b"text\n", "img.png": b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"})
    with pytest.raises(C.NonTextFile, match=r"img\.png"):
        C.load_corpus(mixed)
    with pytest.raises(C.CorpusError, match="tokenizer"):
        C.load_corpus(mixed / "ok.txt", tokenizer="words")
    for err in (C.CorpusNotFound, C.EmptyCorpus, C.NonTextFile):
        assert issubclass(err, ValueError)
    # nothing half-built was left behind by the failures
    assert not list((tmp_path / "cache" / "corpus").glob("*tmp*"))


def test_pretokenized_bin_and_npy(tmp_path: Path):
    tokens = np.arange(1000, dtype=np.uint16) % 500
    tokens.tofile(tmp_path / "t.bin")
    c = C.load_corpus(tmp_path / "t.bin")
    assert c.vocab_size == 500 and c.tokenizer == "tokens"
    assert np.array_equal(c.tokens, tokens)
    np.save(tmp_path / "t.npy", tokens.astype(np.uint32) * 100)
    c = C.load_corpus(tmp_path / "t.npy", vocab_size=60000)
    assert c.vocab_size == 60000 and c.tokens.dtype == np.uint32
    assert c.scope.endswith("/tokens")
    np.save(tmp_path / "f.npy", tokens.astype(np.float32))
    with pytest.raises(C.CorpusError, match="uint16 or uint32"):
        C.load_corpus(tmp_path / "f.npy")
    with pytest.raises(C.CorpusError, match="too small"):
        C.load_corpus(tmp_path / "t.bin", vocab_size=100)


def test_bpe_tokenizer_is_trained_and_cached(tmp_path: Path):
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "scaling", "law", "token"]
    rng = np.random.default_rng(0)
    docs = {f"doc{i}.txt": (" ".join(rng.choice(words, 300)) + "\n").encode() for i in range(4)}
    root = _tree(tmp_path / "bpe", docs)
    c = C.load_corpus(root, tokenizer="bpe", vocab_size=300)
    assert c.tokenizer == f"bpe{c.vocab_size}" and 257 <= c.vocab_size <= 300
    assert (c.path / "tokenizer.json").exists()
    assert int(np.asarray(c.tokens).max()) < c.vocab_size
    assert c.decode(c.encode("gamma delta law")) == "gamma delta law"
    assert len(c.tokens) < sum(len(d) for d in docs.values()) / 2  # merges happened
    eot = c.encode(C.EOT)
    assert int((np.asarray(c.tokens) == eot[0]).sum()) == 4  # one separator after each document
    bytes_scope = C.load_corpus(root).scope
    assert bytes_scope.split("/")[0] == c.scope.split("/")[0]  # same content, different tokenizer


def test_default_corpus_is_the_standard_library():
    c = C.load_corpus()
    assert re.fullmatch(r"corpus:[0-9a-f]{12}/bytes", c.scope)
    assert "stdlib" in c.source and c.n_files > 500
    assert len(c.tokens) > 10_000_000
    files = C.corpus_files()
    assert len(files) == c.n_files and all(f.suffix == ".py" for f in files)
    assert not any("site-packages" in f.parts for f in files)
    assert sum(f.stat().st_size for f in files) == len(c.tokens)
    assert C.load_corpus().scope == c.scope


def test_batches_are_a_function_of_seed_and_step():
    a = C.batch_offsets(10_000, 32, 8, seed=1, step=5)
    assert np.array_equal(a, C.batch_offsets(10_000, 32, 8, seed=1, step=5))
    assert not np.array_equal(a, C.batch_offsets(10_000, 32, 8, seed=1, step=6))
    assert not np.array_equal(a, C.batch_offsets(10_000, 32, 8, seed=2, step=5))
    assert a.min() >= 0 and a.max() < 10_000 - 32
    tokens = np.arange(10_000, dtype=np.uint16)
    x, y = C.gather(tokens, a, 32)
    assert x.shape == y.shape == (8, 32) and x.dtype == np.int64
    assert np.array_equal(y[:, :-1], x[:, 1:]) and np.array_equal(x[:, 0], a)
    v = C.eval_offsets(1000, 32, 10)
    assert np.array_equal(v, C.eval_offsets(1000, 32, 10))
    assert v[0] == 0 and v[-1] == 1000 - 33 and len(v) == 10


def test_corpus_too_small_for_the_context(tmp_path: Path):
    (tmp_path / "tiny.txt").write_text("x" * 100)
    c = C.load_corpus(tmp_path / "tiny.txt")
    with pytest.raises(C.CorpusError, match="seq_len"):
        c.check_seq_len(64)
    c.check_seq_len(3)
