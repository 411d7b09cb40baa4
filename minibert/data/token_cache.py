"""A corpus tokenized once, kept on disk and memory-mapped: a second run skips tokenizing, and a
corpus larger than memory is read a document at a time.

    corpus = TokenizedCorpus.build_or_open(files, tokenizer, cache_root)
    len(corpus)        # documents, as the text has them (one that tokenizes to nothing is empty)
    corpus[i]          # document i: a list of sentences, each a list of token ids

On disk, in `cache_root/<key>/` (the key hashes the files' content and the tokenizer's vocabulary
and casing, so a changed corpus or vocabulary gets a new cache; a damaged cache is rebuilt):
    ids.bin              every sentence's ids, one after another (uint16, or uint32 for large vocabularies)
    sentences.bin        int64 (S + 1,): sentence s is ids[sentences[s]:sentences[s + 1]]
    documents.bin        int64 (D + 1,): document d is sentences documents[d] ... documents[d + 1] - 1
    meta.json            counts and dtypes; written last, so a cache without it is incomplete
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from ..files import staging_directory, sweep_stale

CHUNK = 4096          # sentences tokenized per call
logger = logging.getLogger("minibert")


def default_cache_root() -> Path:
    return Path(os.environ.get("MINIBERT_CACHE", Path.home() / ".cache" / "minibert")) / "tokens"


def corpus_fingerprint(files) -> str:
    """A digest of the corpus's content, file by file in order (BLAKE2b, ~1 GB/s: cheap beside
    tokenizing).  Keyed on content, not on sizes and dates, an edit that keeps both still counts."""
    h = hashlib.blake2b(digest_size=16)
    for path in files:
        with open(path, "rb") as f:
            h.update(hashlib.file_digest(f, "blake2b").digest())
    return h.hexdigest()


def cache_key(files, tokenizer, fingerprint=None) -> str:
    """The cache directory's name: the corpus's content and the tokenizer's vocabulary and casing."""
    h = hashlib.sha256()
    h.update((fingerprint or corpus_fingerprint(files)).encode())
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    h.update(json.dumps([vocab, tokenizer.do_lower_case]).encode())
    return h.hexdigest()[:32]


class DamagedCache(ValueError):
    """A cache directory whose files do not match its meta.json (cut, edited, half-deleted)."""


class TokenizedCorpus:
    """Documents of token-id sentences, read from the memory-mapped cache on demand."""

    def __init__(self, directory: Path):
        """Open a complete cache; its files are checked against meta.json (DamagedCache if not)."""
        self.directory = directory
        try:
            meta = json.loads((directory / "meta.json").read_text())
            dtype = np.dtype(meta["dtype"])
            sizes = {"ids.bin": meta["tokens"] * dtype.itemsize, "sentences.bin": (meta["sentences"] + 1) * 8,
                     "documents.bin": (meta["documents"] + 1) * 8}
            for name, size in sizes.items():
                found = (directory / name).stat().st_size
                if found != size:
                    raise DamagedCache(f"{directory / name} holds {found} bytes where its meta.json says {size}")
            self.ids = np.memmap(directory / "ids.bin", dtype=dtype, mode="r", shape=(meta["tokens"],)) \
                if meta["tokens"] else np.zeros(0, dtype=dtype)
            self.sentences = np.fromfile(directory / "sentences.bin", dtype=np.int64)
            self.documents = np.fromfile(directory / "documents.bin", dtype=np.int64)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DamagedCache(str(e) if isinstance(e, DamagedCache) else
                               f"{directory} cannot be read ({type(e).__name__}: {e})") from None
        ends_agree = self.sentences[0] == 0 and self.sentences[-1] == meta["tokens"] and \
            self.documents[0] == 0 and self.documents[-1] == meta["sentences"]
        ordered = np.all(np.diff(self.sentences) >= 0) and np.all(np.diff(self.documents) >= 0)
        if not (ends_agree and ordered):
            raise DamagedCache(f"{directory}'s offsets do not agree with its meta.json")

    def __len__(self):
        return len(self.documents) - 1

    def __getitem__(self, d) -> list[list[int]]:
        first, last = self.documents[d], self.documents[d + 1]
        starts = self.sentences[first:last + 1]
        return [self.ids[a:b].tolist() for a, b in zip(starts[:-1], starts[1:])]

    def token_range(self, d) -> tuple[int, int]:
        """Document d's ids are ids[a:b] (its sentences lie one after another)."""
        return int(self.sentences[self.documents[d]]), int(self.sentences[self.documents[d + 1]])

    def token_counts(self, documents, size) -> np.ndarray:
        """How often each id occurs in the given documents: (size,)."""
        counts = np.zeros(size, dtype=np.int64)
        ranges = sorted(self.token_range(d) for d in documents)
        start, end = ranges[0] if ranges else (0, 0)
        for a, b in ranges[1:] + [(None, None)]:           # neighbouring documents: one range, one bincount
            if a == end:
                end = b
                continue
            if end > start:
                counts += np.bincount(self.ids[start:end], minlength=size)[:size]
            start, end = a, b
        return counts

    @classmethod
    def build_or_open(cls, files, tokenizer, cache_root=None, read_documents=None, log=None, fingerprint=None):
        """Open the cache of `files` under `tokenizer`, building it first when there is none (or
        again, with a warning, when it is damaged).  `read_documents(path)` yields a file's documents
        (lists of sentences); `fingerprint` is corpus_fingerprint(files) when already known."""
        root = Path(cache_root) if cache_root else default_cache_root()
        directory = root / cache_key(files, tokenizer, fingerprint)
        if (directory / "meta.json").is_file():
            try:
                return cls(directory)
            except DamagedCache as e:
                logger.warning(f"warning: the token cache is damaged ({e}): tokenizing the corpus again")
                shutil.rmtree(directory, ignore_errors=True)
        if log:
            log(f"tokenizing the corpus once into {directory}")
        root.mkdir(parents=True, exist_ok=True)
        sweep_stale(root, ".build.*")              # builds killed before they could clean up
        staging = staging_directory(root, "build")
        try:
            dtype = np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.uint32
            sentence_ends, document_ends, total = [0], [0], 0
            with open(staging / "ids.bin", "wb") as out:
                pending, pending_docs = [], []

                def flush():
                    nonlocal total
                    if not pending:
                        return
                    for ids in tokenizer.encode_batch_ids(pending):
                        if ids:                                   # an empty sentence is dropped
                            out.write(np.asarray(ids, dtype=dtype).tobytes())
                            total += len(ids)
                            sentence_ends.append(total)
                        pending_docs[0][1] -= 1
                        while pending_docs and pending_docs[0][1] == 0:
                            pending_docs.pop(0)
                            document_ends.append(len(sentence_ends) - 1)
                    pending.clear()

                for path in files:
                    for document in read_documents(path):
                        pending.extend(document)
                        pending_docs.append([None, len(document)])            # [_, sentences left]
                        if len(pending) >= CHUNK:
                            flush()
                flush()
            np.asarray(sentence_ends, dtype=np.int64).tofile(staging / "sentences.bin")
            np.asarray(document_ends, dtype=np.int64).tofile(staging / "documents.bin")
            (staging / "meta.json").write_text(json.dumps({
                "tokens": total, "dtype": np.dtype(dtype).name, "sentences": len(sentence_ends) - 1,
                "documents": len(document_ends) - 1, "files": [str(Path(f).resolve()) for f in files]}))
            try:
                os.rename(staging, directory)
            except OSError:                         # another run built it meanwhile: use theirs
                shutil.rmtree(staging, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return cls(directory)
