"""Token streams for continual pre-training: tokenizers, corpora read from text, tokenised once
into a memory-mapped array.

A prepared corpus is two files in one folder: ``NAME.bin``, the token ids as raw ``uint16``
(``uint32`` when the vocabulary has more than 65,536 entries), and ``NAME.json``, a small header:
the tokenizer (kind, vocabulary size, SHA-256 digest of its definition), the dtype, the number of
training tokens (the held-out tokens follow them in the same file) and the digest of the text.
Documents are joined with an end-of-text token; every tenth document (index 9, 19, ...) goes to
the held-out part, so that the held-out loss samples the whole corpus, not its last pages.
Batches read windows of the memory map (:mod:`lifelong.lm.batches`): the corpus is never loaded
whole, as in nanoGPT's ``train.bin``.

Two tokenizers: :class:`ByteTokenizer` (UTF-8 bytes plus one end-of-text id, always available)
and :class:`BPETokenizer`, a byte-level BPE trained locally with the optional ``tokenizers``
package (``pip install lifelong[lm]``); its definition is saved as ``tokenizer.json`` beside the
corpora, and a stream's corpora must share one tokenizer (the digest says so).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from lifelong.errors import ConfigError, DataError

HEADER_VERSION = 1
HOLDOUT_EVERY = 10  # document i is held out when i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1
EOT = "<|endoftext|>"


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255 and the end-of-text id 256 (vocabulary 257)."""

    kind = "byte"
    vocab_size = 257
    eot_id = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")

    def definition(self) -> str:
        return "byte-level: utf-8 bytes 0..255, end-of-text 256"

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.definition().encode()).hexdigest()


def _tokenizers():
    try:
        import tokenizers
    except ImportError:
        raise ConfigError("the BPE tokenizer needs the `tokenizers` package: pip install 'lifelong[lm]' "
                          "(or use --tokenizer byte)") from None
    return tokenizers


class BPETokenizer:
    """A byte-level BPE (GPT-2's scheme) of the ``tokenizers`` package, trained here."""

    kind = "bpe"

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.vocab_size = inner.get_vocab_size()
        self.eot_id = inner.token_to_id(EOT)

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int) -> "BPETokenizer":
        tk = _tokenizers()
        if vocab_size < 257 + 1:
            raise ConfigError(f"--vocab-size {vocab_size} is too small for a byte-level BPE: at least 258 "
                              "(256 bytes, end-of-text and one merge)")
        inner = tk.Tokenizer(tk.models.BPE())
        inner.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
        inner.decoder = tk.decoders.ByteLevel()
        trainer = tk.trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                         initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet())
        inner.train_from_iterator(texts, trainer=trainer)
        return cls(inner)

    @classmethod
    def from_file(cls, path: Path) -> "BPETokenizer":
        tk = _tokenizers()
        try:
            return cls(tk.Tokenizer.from_file(str(path)))
        except Exception as exc:  # the package's own parse errors
            raise DataError(f"{path} is not a tokenizers JSON file ({exc})") from None

    def encode(self, text: str) -> list[int]:
        return self.inner.encode(text).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.inner.decode(list(ids))

    def definition(self) -> str:
        return self.inner.to_str()

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.definition().encode()).hexdigest()


Tokenizer = ByteTokenizer | BPETokenizer


def read_documents(path: Path) -> list[str]:
    """The documents of a text file (one) or of a folder (each file below it, in sorted order).
    A file that is not UTF-8 text (or holds a NUL byte) and a corpus without any text are errors."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"corpus {path} does not exist")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    docs = [_read_text(f) for f in files]
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise DataError(f"corpus {path} holds no text")
    return docs


def _read_text(file: Path) -> str:
    data = file.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{file} is not UTF-8 text (byte {exc.start}); remove it from the corpus") from None
    if "\x00" in text:
        raise DataError(f"{file} is not text (it holds NUL bytes); remove it from the corpus")
    return text


def dtype_for(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 2 ** 16 else np.dtype(np.uint32)


def split_documents(docs: Sequence[str]) -> tuple[list[str], list[str]]:
    """(training, held-out) documents: every :data:`HOLDOUT_EVERY`-th one is held out; a corpus of
    fewer documents holds out the last one when it has two or more."""
    held = [d for i, d in enumerate(docs) if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1]
    train = [d for i, d in enumerate(docs) if i % HOLDOUT_EVERY != HOLDOUT_EVERY - 1]
    if not held and len(docs) >= 2:
        held, train = [docs[-1]], list(docs[:-1])
    return train, held


def _ids(tokenizer: Tokenizer, docs: Sequence[str], dtype: np.dtype) -> np.ndarray:
    """The documents' ids, each followed by end-of-text, as one array (no list of Python ints)."""
    parts = []
    for d in docs:
        parts.append(np.asarray(tokenizer.encode(d), dtype=dtype))
        parts.append(np.asarray([tokenizer.eot_id], dtype=dtype))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def write_corpus(folder: Path, name: str, docs: Sequence[str], tokenizer: Tokenizer) -> dict:
    """Tokenise ``docs`` once into ``folder/NAME.bin`` and write its header ``NAME.json``."""
    train, held = split_documents(docs)
    if not held:
        raise DataError(f"corpus {name!r} has one document; it needs two or more (one is held out for the loss): a "
                        "text file is one document, give a folder of files or NAME=hf:FILE.txt (a document a line)")
    dtype = dtype_for(tokenizer.vocab_size)
    train_ids, held_ids = _ids(tokenizer, train, dtype), _ids(tokenizer, held, dtype)
    array = np.concatenate([train_ids, held_ids])
    folder.mkdir(parents=True, exist_ok=True)
    array.tofile(folder / f"{name}.bin")
    header = {"version": HEADER_VERSION, "name": name,
              "tokenizer": {"kind": tokenizer.kind, "vocab_size": tokenizer.vocab_size, "digest": tokenizer.digest},
              "dtype": dtype.name, "train_tokens": len(train_ids), "val_tokens": len(held_ids),
              "documents": len(docs),
              "text_digest": hashlib.sha256("\x00".join(docs).encode()).hexdigest()}
    (folder / f"{name}.json").write_text(json.dumps(header, indent=1) + "\n", encoding="utf-8")
    return header


@dataclass
class TokenCorpus:
    """A prepared corpus, memory-mapped: :attr:`train` and :attr:`val` are views of one file."""

    name: str
    header: dict
    data: np.memmap

    @property
    def train(self) -> np.ndarray:
        return self.data[: self.header["train_tokens"]]

    @property
    def val(self) -> np.ndarray:
        return self.data[self.header["train_tokens"]:]

    @property
    def tokenizer(self) -> dict:
        return self.header["tokenizer"]


def open_corpus(folder: Path, name: str) -> TokenCorpus:
    """Memory-map ``folder/NAME.bin`` after checking it against its header."""
    head_file, bin_file = Path(folder) / f"{name}.json", Path(folder) / f"{name}.bin"
    if not head_file.is_file() or not bin_file.is_file():
        raise DataError(f"no prepared corpus {name!r} in {folder} (run `lifelong lm prepare` first)")
    try:
        header = json.loads(head_file.read_text(encoding="utf-8"))
        dtype = np.dtype(header["dtype"])
        total = header["train_tokens"] + header["val_tokens"]
        header["tokenizer"]["vocab_size"], header["tokenizer"]["digest"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{head_file} is not a corpus header ({type(exc).__name__}: {exc})") from None
    if header.get("version") != HEADER_VERSION:
        raise DataError(f"{head_file} has header version {header.get('version')!r}; this lifelong reads "
                        f"{HEADER_VERSION} (prepare the corpus again)")
    if bin_file.stat().st_size != total * dtype.itemsize:
        raise DataError(f"{bin_file} has {bin_file.stat().st_size} bytes, its header says {total} tokens of "
                        f"{dtype.name}; prepare the corpus again")
    return TokenCorpus(name, header, np.memmap(bin_file, dtype=dtype, mode="r"))


def load_tokenizer(spec: str, texts: Iterable[str] | None = None, vocab_size: int = 4096) -> Tokenizer:
    """``byte``; ``bpe`` (trained on ``texts``); or the path of a saved ``tokenizer.json``."""
    if spec == "byte":
        return ByteTokenizer()
    if spec == "bpe":
        return BPETokenizer.train(texts or [], vocab_size)
    path = Path(spec)
    if path.suffix == ".json" and path.is_file():
        return BPETokenizer.from_file(path)
    raise ConfigError(f"unknown tokenizer {spec!r}: byte, bpe or the path of a tokenizer.json")
