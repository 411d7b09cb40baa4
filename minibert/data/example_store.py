"""An epoch's pretraining examples on disk instead of in memory: written once in one pass,
read back memory-mapped, a batch at a time, in any order.

    store = ExampleStore()                      # files in a temporary directory, removed with it
    store.append(example)                       # ... as they are made
    view = ExampleSequence([store.close()], order)   # examples[order[0]], examples[order[1]], ...
    view[64:128]                                # a batch: a list of Example

The order of a shuffled epoch is a shuffled list of indices: `random.shuffle` permutes a list by
its length and the generator alone, so shuffling range(n) gives the very permutation that
shuffling the n examples themselves would.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import owner_tag, sweep_stale

PREFIX = "minibert-examples-"     # then <host>-<pid>-<random>: sweep_stale finds a dead owner's


@dataclass
class Example:
    input_ids: list[int]          # [CLS] A [SEP] B [SEP], after masking
    token_type_ids: list[int]
    labels: list[int]             # the original id at predicted positions, IGNORE_INDEX elsewhere
    next_sentence_label: int      # 0: B follows A, 1: B is random, -1: no B (MLM-only examples)
    document_index: int           # where A came from
    random_document_index: int    # where a random B came from (-1 for IsNext)


class RaggedStore:
    """int32 sequences of different lengths, one after another in a file, with their offsets."""

    def __init__(self, path: Path):
        self.path = path
        self._file = open(path, "wb")
        self._ends = [0]
        self.data = None

    def append(self, values):
        array = np.asarray(values, dtype=np.int32)
        try:
            self._file.write(array.tobytes())
        except OSError as e:                              # a full $TMPDIR: say which file
            raise OSError(e.errno, e.strerror, str(self.path)) from None
        self._ends.append(self._ends[-1] + len(array))

    def close(self):
        try:
            self._file.close()
        except OSError as e:
            raise OSError(e.errno, e.strerror, str(self.path)) from None
        self.offsets = np.asarray(self._ends, dtype=np.int64)
        total = int(self.offsets[-1])
        self.data = np.memmap(self.path, dtype=np.int32, mode="r", shape=(total,)) if total else np.zeros(0, np.int32)

    def __len__(self):
        return len(self._ends) - 1

    def __getitem__(self, i) -> list[int]:
        return self.data[self.offsets[i]:self.offsets[i + 1]].tolist()


class ExampleStore:
    """Pretraining examples (minibert.data.pretraining.Example) in files of a directory of their own."""

    def __init__(self, directory=None):
        parent = Path(directory or tempfile.gettempdir())
        sweep_stale(parent, f"{PREFIX}*")                  # stores of runs killed before they could clean up
        self.directory = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{owner_tag()}-", dir=parent))
        # removed when the store is dropped, or at the latest when the program ends
        weakref.finalize(self, shutil.rmtree, self.directory, True)
        self.input_ids, self.token_type_ids, self.labels = (RaggedStore(self.directory / f"{name}.bin")
                                                            for name in ("input_ids", "token_type_ids", "labels"))
        self._small = []                                  # next_sentence_label, document, random document

    def append(self, ex):
        self.input_ids.append(ex.input_ids)
        self.token_type_ids.append(ex.token_type_ids)
        self.labels.append(ex.labels)
        self._small.append((ex.next_sentence_label, ex.document_index, ex.random_document_index))

    def close(self) -> "ExampleStore":
        for part in (self.input_ids, self.token_type_ids, self.labels):
            part.close()
        self.small = np.asarray(self._small, dtype=np.int64).reshape(-1, 3)
        self._small = None
        return self

    def __len__(self):
        return len(self.input_ids)

    def example(self, i):
        nsl, doc, other = (int(v) for v in self.small[i])
        return Example(self.input_ids[i], self.token_type_ids[i], self.labels[i], nsl, doc, other)


class ExampleSequence:
    """Examples of one or more stores in a given order (indices over the stores one after another),
    with document indices mapped back to the corpus's own (`document_ids`, per store)."""

    def __init__(self, stores, order=None, document_ids=None):
        self.stores = list(stores)
        self.starts = np.cumsum([0] + [len(s) for s in self.stores])
        self.order = list(range(int(self.starts[-1]))) if order is None else list(order)
        self.document_ids = document_ids or [None] * len(self.stores)

    def __len__(self):
        return len(self.order)

    def _get(self, i):
        k = int(np.searchsorted(self.starts, i, side="right") - 1)
        ex = self.stores[k].example(i - int(self.starts[k]))
        ids = self.document_ids[k]
        if ids is not None:
            ex.document_index = ids[ex.document_index]
            if ex.random_document_index >= 0:
                ex.random_document_index = ids[ex.random_document_index]
        return ex

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._get(j) for j in self.order[i]]
        return self._get(self.order[i])

    def __iter__(self):
        return (self._get(j) for j in self.order)

    def reordered(self, order) -> "ExampleSequence":
        """The same examples in another order (indices into this sequence's order)."""
        return ExampleSequence(self.stores, [self.order[j] for j in order], self.document_ids)
