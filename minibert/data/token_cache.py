"""A corpus tokenized once, kept on disk and memory-mapped: a second run skips tokenizing, and a
corpus larger than memory is read a document at a time.

    corpus = TokenizedCorpus.build_or_open(files, tokenizer, cache_root)
    len(corpus)        # documents, as the text has them (one that tokenizes to nothing is empty)
    corpus[i]          # document i: a list of sentences, each a list of token ids

On disk, in `cache_root/<key>/` (the key hashes the files' paths, sizes and modification times
and the tokenizer's vocabulary and casing, so a changed corpus or vocabulary gets a new cache):
    ids.bin              every sentence's ids, one after another (uint16, or uint32 for large vocabularies)
    sentences.bin        int64 (S + 1,): sentence s is ids[sentences[s]:sentences[s + 1]]
    documents.bin        int64 (D + 1,): document d is sentences documents[d] ... documents[d + 1] - 1
    meta.json            counts and dtypes; written last, so a cache without it is incomplete
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from ..files import staging_directory, sweep_stale

CHUNK = 4096          # sentences tokenized per call


def default_cache_root() -> Path:
    return Path(os.environ.get("MINIBERT_CACHE", Path.home() / ".cache" / "minibert")) / "tokens"


def cache_key(files, tokenizer) -> str:
    h = hashlib.sha256()
    for path in files:
        stat = Path(path).stat()
        h.update(json.dumps([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]).encode())
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    h.update(json.dumps([vocab, tokenizer.do_lower_case]).encode())
    return h.hexdigest()[:32]


class TokenizedCorpus:
    """Documents of token-id sentences, read from the memory-mapped cache on demand."""

    def __init__(self, directory: Path):
        meta = json.loads((directory / "meta.json").read_text())
        self.directory = directory
        self.ids = np.memmap(directory / "ids.bin", dtype=meta["dtype"], mode="r", shape=(meta["tokens"],)) \
            if meta["tokens"] else np.zeros(0, dtype=meta["dtype"])
        self.sentences = np.fromfile(directory / "sentences.bin", dtype=np.int64)
        self.documents = np.fromfile(directory / "documents.bin", dtype=np.int64)

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
    def build_or_open(cls, files, tokenizer, cache_root=None, read_documents=None, log=None):
        """Open the cache of `files` under `tokenizer`, building it first when there is none.
        `read_documents(path)` yields a file's documents (lists of sentences)."""
        root = Path(cache_root) if cache_root else default_cache_root()
        directory = root / cache_key(files, tokenizer)
        if (directory / "meta.json").is_file():
            return cls(directory)
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
