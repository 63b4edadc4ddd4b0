"""Training text → a memory-mapped token array, cached by fingerprint, with deterministic batches.

A corpus is a text file, a directory of text files, or pre-tokenised tokens (``.bin``: raw uint16 as
nanoGPT writes them; ``.npy``: uint16 or uint32). Text is tokenised once into
``<cache>/corpus/<key>/tokens.bin`` where ``key`` hashes the content fingerprint and the tokenizer spec.

* Tokenizers: ``bytes`` (one token per byte, vocab 256, the default) or ``bpe`` (a byte-level BPE trained
  with the ``tokenizers`` library on the corpus itself, saved next to the tokens, ``<|endoftext|>``
  between documents).
* Cache directory: ``$SCALEPLAN_CACHE``, else ``$XDG_CACHE_HOME/scaleplan``, else ``~/.cache/scaleplan``:
  per user rather than per checkout, so a corpus is tokenised once per machine.
* Fingerprint: sha256 over the files' relative paths, sizes and contents, in sorted path order (a single
  file: its content only). A stat index (paths, sizes, mtimes) skips re-hashing unchanged inputs.
* Split: the last ``val_fraction`` (5%) of the token stream is validation, the rest training.
* Default corpus (no path): the running interpreter's standard library, ``*.py`` under
  ``sysconfig.get_paths()["stdlib"]`` without ``site-packages``, sorted; its scope is
  ``corpus:<first 12 hex of fingerprint>/bytes`` like any other corpus.
* Text check: a file containing a NUL byte is binary (the heuristic git and grep use). Text need not be
  UTF-8 for the byte tokenizer; BPE decodes with replacement characters.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fits.errors import BadInput

TOKENIZERS = ("bytes", "bpe")
EOT = "<|endoftext|>"
_PRETOKENIZED = (".bin", ".npy")
_SKIP_DIRS = {"__pycache__", "site-packages", "dist-packages"}
_FORMAT = 1  # bump when the cache layout or tokenisation changes


class CorpusError(BadInput):
    """The corpus cannot be used; ``field`` names the option (``corpus`` unless said), the message the path
    and the problem."""

    def __init__(self, message: str, *, field: str | None = "corpus") -> None:
        super().__init__(message, field=field)


class CorpusNotFound(CorpusError):
    """The corpus path does not exist."""


class EmptyCorpus(CorpusError):
    """The corpus has no files or no tokens."""


class NonTextFile(CorpusError):
    """A corpus file is not text."""


def cache_dir() -> Path:
    env = os.environ.get("SCALEPLAN_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "scaleplan"


def default_corpus_path() -> Path:
    """The running interpreter's standard-library directory."""
    return Path(sysconfig.get_paths()["stdlib"])


@dataclass
class Corpus:
    """A tokenised corpus: ``tokens[:n_train]`` is training data, ``tokens[n_train:]`` validation."""

    tokens: np.ndarray
    n_train: int
    vocab_size: int
    fingerprint: str
    """sha256 (hex) of the inputs' contents; independent of the tokenizer."""
    tokenizer: str
    """"bytes", "bpe<vocab>" or "tokens" (pre-tokenised input)."""
    source: str
    n_files: int
    path: Path | None = None
    """Cache directory of this tokenisation (None for pre-tokenised input, which is mapped in place)."""
    _bpe: object | None = field(default=None, repr=False)

    @property
    def scope(self) -> str:
        return f"corpus:{self.fingerprint[:12]}/{self.tokenizer}"

    @property
    def train(self) -> np.ndarray:
        return self.tokens[: self.n_train]

    @property
    def val(self) -> np.ndarray:
        return self.tokens[self.n_train :]

    def check_seq_len(self, seq_len: int) -> None:
        for name, part in (("training", self.train), ("validation", self.val)):
            if len(part) < seq_len + 1:
                raise CorpusError(
                    f"{self.source} has only {len(part)} {name} tokens, fewer than seq_len + 1 = "
                    f"{seq_len + 1}; use a larger corpus or a shorter --seq-len")

    def encode(self, text: str) -> list[int]:
        if self.tokenizer == "bytes":
            return list(text.encode("utf-8"))
        if self._bpe is None:
            raise CorpusError("pre-tokenised corpora have no tokenizer to encode text with")
        return self._bpe.encode(text).ids

    def decode(self, ids) -> str:
        if self.tokenizer == "bytes":
            return bytes(int(i) for i in ids).decode("utf-8", errors="replace")
        if self._bpe is None:
            raise CorpusError("pre-tokenised corpora have no tokenizer to decode with")
        return self._bpe.decode([int(i) for i in ids])


def batch_offsets(n_tokens: int, seq_len: int, batch_size: int, *, seed: int, step: int) -> np.ndarray:
    """Start offsets of the training sequences of ``step``: a pure function of (seed, step), so a resumed
    run, or every rank of a distributed one, draws exactly the same global batch."""
    rng = np.random.default_rng([seed, step])
    return rng.integers(0, n_tokens - seq_len, size=batch_size)


def gather(tokens: np.ndarray, offsets: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and next-token targets (int64) for sequences starting at ``offsets``."""
    window = tokens[offsets[:, None] + np.arange(seq_len + 1)].astype(np.int64)
    return np.ascontiguousarray(window[:, :-1]), np.ascontiguousarray(window[:, 1:])


def eval_offsets(n_tokens: int, seq_len: int, n_sequences: int) -> np.ndarray:
    """A fixed validation set: ``n_sequences`` windows spread evenly over the split (no randomness)."""
    last = n_tokens - seq_len - 1
    return np.unique(np.linspace(0, last, num=max(1, n_sequences)).round().astype(np.int64))


# ---------------------------------------------------------------------------------------------- loading


def load_corpus(path: str | os.PathLike | None = None, *, tokenizer: str = "bytes",
                vocab_size: int | None = None, val_fraction: float = 0.05,
                cache: str | os.PathLike | None = None) -> Corpus:
    """Tokenise (or reuse the cached tokens of) ``path``; None means the standard-library default."""
    if tokenizer not in TOKENIZERS:
        raise CorpusError(f"must be one of {TOKENIZERS}, got {tokenizer!r}", field="tokenizer")
    if not 0.0 < val_fraction < 1.0:
        raise CorpusError(f"must be between 0 and 1, got {val_fraction}", field="val_fraction")
    root = Path(cache) if cache is not None else cache_dir()

    if path is None:
        src = default_corpus_path()
        files = corpus_files()
        label = f"python{sysconfig.get_python_version()} stdlib ({src})"
    else:
        src = Path(path).expanduser()
        if not src.exists():
            raise CorpusNotFound(f"{src} does not exist")
        src = src.resolve()
        if src.is_file() and src.suffix in _PRETOKENIZED:
            return _load_pretokenized(src, vocab_size, val_fraction, root)
        files = [src] if src.is_file() else _list_files(src, pattern="*")
        label = str(src)
    if not files:
        raise EmptyCorpus(f"{src} contains no files")
    if tokenizer == "bpe":
        vocab_size = 4096 if vocab_size is None else vocab_size
        if not 257 <= vocab_size <= 2**31:
            raise CorpusError(f"a BPE vocabulary needs 257 or more entries, got {vocab_size}", field="vocab_size")
    else:
        vocab_size = 256

    rel = [f.name if f == src else f.relative_to(src).as_posix() for f in files]
    spec = {"format": _FORMAT, "tokenizer": tokenizer, "vocab_size": vocab_size,
            "val_fraction": val_fraction}
    fingerprint = _fingerprint(root, files, rel, single=src.is_file())
    key = _sha({"fingerprint": fingerprint, **spec})
    out = root / "corpus" / key
    if not (out / "meta.json").exists():
        _build(out, files, rel, tokenizer, vocab_size, val_fraction, fingerprint, label)
    return _open_cached(out)


def corpus_files(path: str | os.PathLike | None = None) -> list[Path]:
    """The files a directory corpus is made of, in order; None: the standard-library default."""
    if path is None:
        return _list_files(default_corpus_path(), pattern="*.py")
    return _list_files(Path(path), pattern="*")


def _list_files(src: Path, *, pattern: str) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS)
        for name in filenames:
            p = Path(dirpath) / name
            if not name.startswith(".") and p.match(pattern) and p.is_file():
                files.append(p)
    return sorted(files, key=lambda p: p.relative_to(src).as_posix())


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _fingerprint(root: Path, files: list[Path], rel: list[str], *, single: bool) -> str:
    """Content fingerprint, with a stat-keyed index so unchanged inputs are not hashed again."""
    stats = [(str(f), s.st_size, s.st_mtime_ns) for f in files for s in [f.stat()]]
    index = root / "index" / f"{_sha(stats)}.json"
    try:
        return json.loads(index.read_text())["fingerprint"]
    except (OSError, ValueError, KeyError):
        pass
    h = hashlib.sha256()
    for f, name in zip(files, rel, strict=True):
        data = f.read_bytes()
        if not single:
            h.update(name.encode() + b"\0" + len(data).to_bytes(8, "little"))
        h.update(data)
    fingerprint = h.hexdigest()
    _write_atomic(index, json.dumps({"fingerprint": fingerprint}).encode())
    return fingerprint


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _read_text(f: Path) -> bytes:
    data = f.read_bytes()
    if b"\0" in data:
        raise NonTextFile(f"{f} is not a text file (it contains NUL bytes); "
                          "pass text files, or pre-tokenised .bin/.npy tokens")
    return data


def _build(out: Path, files: list[Path], rel: list[str], tokenizer: str, vocab_size: int | None,
           val_fraction: float, fingerprint: str, label: str) -> None:
    """Tokenise into a private temporary directory, then rename it into place (the rename is the commit:
    a crash leaves no half-written cache, and of two concurrent builders the first rename wins)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=out.name + ".tmp-"))
    try:
        if tokenizer == "bytes":
            dtype, vocab = np.dtype(np.uint16), 256
            with open(tmp / "tokens.bin", "wb") as sink:
                for f in files:
                    np.frombuffer(_read_text(f), dtype=np.uint8).astype(dtype).tofile(sink)
        else:
            bpe = _train_bpe(files, vocab_size)
            bpe.save(str(tmp / "tokenizer.json"))
            vocab = bpe.get_vocab_size()
            dtype = np.dtype(np.uint16 if vocab <= 2**16 else np.uint32)
            eot = bpe.token_to_id(EOT)
            with open(tmp / "tokens.bin", "wb") as sink:
                for chunk in _chunks(files, 64):
                    texts = [_read_text(f).decode("utf-8", errors="replace") for f in chunk]
                    for enc in bpe.encode_batch(texts):
                        np.asarray([*enc.ids, eot], dtype=dtype).tofile(sink)
        n = (tmp / "tokens.bin").stat().st_size // dtype.itemsize
        if n == 0:
            raise EmptyCorpus(f"{label} is empty (0 tokens)")
        meta = {"format": _FORMAT, "n_tokens": n, "n_train": n - max(1, math.ceil(val_fraction * n)),
                "dtype": dtype.name, "vocab_size": vocab, "fingerprint": fingerprint,
                "tokenizer": tokenizer if tokenizer == "bytes" else f"bpe{vocab}", "source": label,
                "n_files": len(files), "files_sample": rel[:5]}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.rename(tmp, out)
        except OSError:  # another process finished the same cache first
            if not (out / "meta.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _train_bpe(files: list[Path], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    texts = (_read_text(f).decode("utf-8", errors="replace") for f in files)
    bpe.train_from_iterator(texts, trainer=trainer, length=len(files))
    return bpe


def _open_cached(out: Path) -> Corpus:
    meta = json.loads((out / "meta.json").read_text())
    tokens = np.memmap(out / "tokens.bin", dtype=np.dtype(meta["dtype"]), mode="r",
                       shape=(meta["n_tokens"],))
    bpe = None
    if (out / "tokenizer.json").exists():
        from tokenizers import Tokenizer

        bpe = Tokenizer.from_file(str(out / "tokenizer.json"))
    return Corpus(tokens=tokens, n_train=meta["n_train"], vocab_size=meta["vocab_size"],
                  fingerprint=meta["fingerprint"], tokenizer=meta["tokenizer"], source=meta["source"],
                  n_files=meta["n_files"], path=out, _bpe=bpe)


def _load_pretokenized(src: Path, vocab_size: int | None, val_fraction: float, root: Path) -> Corpus:
    if src.suffix == ".npy":
        try:
            tokens = np.load(src, mmap_mode="r")
        except ValueError as exc:
            raise CorpusError(f"{src} is not a readable .npy array ({exc})") from exc
        if tokens.dtype not in (np.uint16, np.uint32) or tokens.ndim != 1:
            raise CorpusError(f"{src} must hold a 1-D uint16 or uint32 token array, "
                              f"got {tokens.ndim}-D {tokens.dtype}")
    else:
        if src.stat().st_size % 2:
            raise CorpusError(f"{src} has an odd number of bytes; a .bin must hold raw uint16 tokens")
        tokens = np.memmap(src, dtype=np.uint16, mode="r")
    n = len(tokens)
    if n == 0:
        raise EmptyCorpus(f"{src} is empty (0 tokens)")
    fingerprint = _fingerprint(root, [src], [src.name], single=True)
    meta_path = root / "corpus" / f"{fingerprint}.tokens.json"
    try:
        max_token = json.loads(meta_path.read_text())["max_token"]
    except (OSError, ValueError, KeyError):
        max_token = int(tokens.max())
        _write_atomic(meta_path, json.dumps({"max_token": max_token}).encode())
    if vocab_size is None:
        vocab_size = max_token + 1
    elif vocab_size <= max_token:
        raise CorpusError(f"{vocab_size} is too small for {src}, whose largest token is {max_token}",
                          field="vocab_size")
    return Corpus(tokens=tokens, n_train=n - max(1, math.ceil(val_fraction * n)), vocab_size=vocab_size,
                  fingerprint=fingerprint, tokenizer="tokens", source=str(src), n_files=1)
