"""Pretraining examples exactly as the original BERT recipe (Devlin et al. 2019, section 3.1 and
appendix A.1; google-research/bert `create_pretraining_data.py`).

Corpus: one sentence a line, a blank line between documents.  For each document, in order:

1. Pack sentences into a chunk until it reaches the target length, `max_seq_length - 3` tokens
   (room for [CLS] and two [SEP]s), or with probability `short_seq_prob` a shorter random target
   in [2, max], so the model also sees short inputs.
2. A = the first k sentences of the chunk (k random in [1, len - 1]).
   B = the rest of the chunk ("IsNext", label 0), or with probability 0.5 a span starting at a
   random sentence of a *different* document ("NotNext", label 1); the chunk's unused sentences
   go back to be packed again.  A chunk of one sentence is NotNext or IsNext at 50/50 too (the
   original forces NotNext there, tilting the labels to 55% NotNext on our corpus): for IsNext it
   takes in the next sentence, or at the document's end reaches back over the sentences before it
   to the target length, so the pair keeps the original's length; only a document of a single
   sentence is cut at a random token into A and B.
3. While A + B is too long, drop a token from the longer of the two, from the front or the back
   at random.
4. [CLS] A [SEP] B [SEP], segment ids 0 for [CLS] A [SEP] and 1 for B [SEP].
5. Masked LM: round(15% of the length) positions are selected (at least 1, at most
   `max_predictions_per_seq`), never [CLS] or [SEP]; of those, 80% become [MASK], 10% a random token, 10% stay as they
   are.  With whole-word masking, all pieces of a word ("play", "##ing") are selected together.

Everything is drawn from one seeded `random.Random`, so a seed gives the same examples.
Masks are drawn once per copy of the data (`dupe_factor` copies, as the original) or anew every
epoch (dynamic masking, as RoBERTa): `PretrainingData.epoch(e)` returns epoch e's examples.
"""

from __future__ import annotations

import errno
import glob
import gzip
import random
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..layers.cross_entropy import IGNORE_INDEX
from .batching import pad_batch
from .example_store import Example, ExampleSequence, ExampleStore

OBJECTIVES = ("mlm+nsp", "mlm")      # BERT's two tasks, or masked LM alone (RoBERTa, transformers' run_mlm)

# ---- the corpus ---------------------------------------------------------------------------

def corpus_files(spec) -> list[Path]:
    """The files of a corpus given as a file, a directory (its *.txt and *.txt.gz, sorted), a glob
    pattern, or a comma-separated list of these (google-research/bert's --input_file)."""
    files = []
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        path = Path(part)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith((".txt", ".txt.gz")))
            if not found:
                raise FileNotFoundError(f"corpus directory {path} holds no .txt or .txt.gz file")
            files.extend(found)
        elif any(ch in part for ch in "*?["):
            found = sorted(Path(p) for p in glob.glob(part, recursive=True) if Path(p).is_file())
            if not found:
                raise FileNotFoundError(f"corpus pattern {part} matches no file")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise ValueError(f"corpus {path} is not a regular file (a FIFO, device or socket): give a text "
                             f"file, a directory of them or a glob pattern")
        else:
            raise FileNotFoundError(f"corpus not found: {path}")
    if not files:
        raise FileNotFoundError(f"no corpus given: {spec!r}")
    return files


def read_file_documents(path):
    """One corpus file's documents, yielded one at a time as the file is read (lists of sentences;
    a file's end closes its last document).  Lines are split as str.splitlines splits text; a
    byte that is not UTF-8 is reported at its line and offset in the file."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    current, number, offset = [], 0, 0
    try:
        with opener(path, "rb") as f:
            for raw in f:
                number += 1
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise ValueError(f"corpus {path} is not UTF-8 text: line {number}, byte {offset + e.start} of "
                                     f"the {'uncompressed ' if opener is gzip.open else ''}file is 0x{raw[e.start]:02x}; "
                                     f"convert it (for Latin-1: iconv -f latin1 -t utf-8)") from None
                offset += len(raw)
                for line in text.splitlines() or [""]:        # as str.splitlines splits the whole text
                    line = line.strip()
                    if line:
                        current.append(line)
                    elif current:
                        yield current
                        current = []
    except PermissionError:
        raise PermissionError(errno.EACCES, "permission denied: this user may not read the corpus", str(path)) from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise ValueError(f"corpus {path} is not a whole gzip file ({e}): download or compress it again") from None
    if current:
        yield current


def read_documents(spec) -> list[list[str]]:
    """A corpus in BERT's format (see `corpus_files` for how it may be given; .gz files are read
    compressed) -> documents, each a list of sentences, file after file."""
    documents = [doc for path in corpus_files(spec) for doc in read_file_documents(path)]
    if not documents:
        raise ValueError(f"corpus {spec} is empty: expected one sentence a line, a blank line "
                         f"between documents")
    return documents


def tokenize_documents(documents, tokenizer) -> list[list[list[int]]]:
    """Documents of sentences -> documents of token-id lists (no special tokens, empty ones dropped)."""
    flat = [s for doc in documents for s in doc]
    ids = tokenizer.encode_batch_ids(flat)
    out, k = [], 0
    for doc in documents:
        sentences = [s for s in ids[k:k + len(doc)] if s]
        k += len(doc)
        if sentences:
            out.append(sentences)
    return out


def split_indices(n_documents, eval_fraction, seed, min_documents=2):
    """Which of n documents train and which are held out (a random `eval_fraction` of them, at
    least `min_documents`: 2 for next-sentence prediction, which needs another document; 1 for
    MLM alone; and as many left to train on).  Both lists in corpus order."""
    if n_documents < min_documents:
        raise ValueError(f"the corpus has {n_documents} document: next-sentence prediction needs "
                         f"at least two (separate documents with a blank line)")
    if eval_fraction <= 0:
        return list(range(n_documents)), []
    order = list(range(n_documents))
    random.Random(seed).shuffle(order)
    n_eval = max(min_documents, int(round(n_documents * eval_fraction)))
    if n_documents - n_eval < min_documents:
        raise ValueError(f"the corpus has {n_documents} document(s): too few to hold out {n_eval} "
                         f"for evaluation and keep {min_documents} for training")
    held = set(order[:n_eval])
    return [i for i in range(n_documents) if i not in held], sorted(held)


def split_documents(documents, eval_fraction, seed, min_documents=2):
    """`split_indices` applied to a list of documents: (training documents, held-out ones)."""
    train, held = split_indices(len(documents), eval_fraction, seed, min_documents)
    return [documents[i] for i in train], [documents[i] for i in held]


class DocumentView:
    """Some documents of a corpus, in a given order, read only when asked for (the corpus may be
    the memory-mapped token cache)."""

    def __init__(self, documents, indices):
        self.documents, self.indices = documents, list(indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.documents[self.indices[i]]


# ---- one example --------------------------------------------------------------------------

@dataclass
class Vocab:
    """What masking needs to know about the vocabulary."""
    cls_id: int
    sep_id: int
    mask_id: int
    special_ids: frozenset
    is_continuation: np.ndarray   # (V,) True for "##" pieces, for whole-word masking
    size: int

    @classmethod
    def from_tokenizer(cls, tokenizer):
        vocab = tokenizer.get_vocab()
        is_cont = np.zeros(tokenizer.vocab_size, dtype=bool)
        for token, i in vocab.items():
            is_cont[i] = token.startswith("##")
        return cls(tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id,
                   frozenset(tokenizer.all_special_ids), is_cont, tokenizer.vocab_size)


def truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng):
    """Trim the longer list, from the front or the back at random, until both fit."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def mask_tokens(tokens, vocab: Vocab, rng, masked_lm_prob=0.15, max_predictions_per_seq=20,
                whole_word_mask=False):
    """Choose ~15% of the positions (never a special token); 80% [MASK], 10% random, 10% kept.
    Returns (masked tokens, labels with -100 where nothing is predicted)."""
    candidates = []                                       # groups of positions masked together
    for i, t in enumerate(tokens):
        if t in vocab.special_ids:
            continue
        if whole_word_mask and candidates and vocab.is_continuation[t] and candidates[-1][-1] == i - 1:
            candidates[-1].append(i)
        else:
            candidates.append([i])
    rng.shuffle(candidates)
    # 15% of the sequence's length, [CLS] and [SEP]s included, as the reference counts it
    num_to_predict = min(max_predictions_per_seq, max(1, int(round(len(tokens) * masked_lm_prob))))
    output, labels = list(tokens), [IGNORE_INDEX] * len(tokens)
    n_chosen = 0
    for group in candidates:
        if n_chosen >= num_to_predict:
            break
        if n_chosen + len(group) > num_to_predict:        # a whole word that would overshoot
            continue
        for i in group:
            r = rng.random()
            if r < 0.8:
                output[i] = vocab.mask_id
            elif r < 0.9:                                   # a random non-special token
                while True:
                    output[i] = rng.randrange(vocab.size)
                    if output[i] not in vocab.special_ids:
                        break
            labels[i] = tokens[i]                           # (else: kept as it is)
            n_chosen += 1
    return output, labels


def create_examples_from_document(documents, doc_index, vocab, rng, max_seq_length=128,
                                  short_seq_prob=0.1, masked_lm_prob=0.15,
                                  max_predictions_per_seq=20, whole_word_mask=False):
    """All examples whose A comes from documents[doc_index] (steps 1-5 of the module docstring)."""
    document = documents[doc_index]
    max_num_tokens = max_seq_length - 3
    target_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_length = rng.randint(2, max_num_tokens)
    examples, chunk, chunk_length, i = [], [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        chunk_length += len(document[i])
        if i == len(document) - 1 or chunk_length >= target_length:
            random_next = rng.random() < 0.5
            if len(chunk) == 1 and not random_next:
                # One sentence and IsNext: A and B must both be real text of this document.
                if i + 1 < len(document):                  # take in the next sentence
                    i += 1
                    chunk.append(document[i])
                elif i >= 1:                               # the document's last: reach back
                    back, length = i - 1, len(chunk[0])
                    while back >= 0 and length < target_length:
                        chunk.insert(0, document[back])
                        length += len(document[back])
                        back -= 1
                elif len(chunk[0]) >= 2:                   # a one-sentence document: cut it in two
                    cut = rng.randint(1, len(chunk[0]) - 1)
                    chunk = [chunk[0][:cut], chunk[0][cut:]]
                else:
                    random_next = True
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            tokens_a = [t for s in chunk[:a_end] for t in s]
            tokens_b, random_index = [], -1
            if random_next:
                # NotNext: a span of another document.  Draw among the others, never this one.
                random_index = rng.randrange(len(documents) - 1)
                if random_index >= doc_index:
                    random_index += 1
                other = documents[random_index]
                target_b_length = target_length - len(tokens_a)
                for sentence in other[rng.randrange(len(other)):]:
                    tokens_b.extend(sentence)
                    if len(tokens_b) >= target_b_length:
                        break
                i -= len(chunk) - a_end                      # unused sentences go back
            else:
                tokens_b = [t for s in chunk[a_end:] for t in s]
            truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
            if tokens_a and tokens_b:
                tokens = [vocab.cls_id] + tokens_a + [vocab.sep_id] + tokens_b + [vocab.sep_id]
                types = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
                masked, labels = mask_tokens(tokens, vocab, rng, masked_lm_prob,
                                             max_predictions_per_seq, whole_word_mask)
                examples.append(Example(masked, types, labels, int(random_index >= 0),
                                        doc_index, random_index))
            chunk, chunk_length = [], 0
        i += 1
    return examples


@dataclass(frozen=True)
class Shard:
    """What one of `size` MPI ranks trains on: of every step's size x share examples (in the epoch's
    order), those at positions [rank x share, (rank + 1) x share).  Examples after the last whole
    step are trained on by no rank."""
    rank: int
    size: int
    share: int

    def positions(self, n: int) -> list[int]:
        """This rank's positions in an epoch of n examples, in its training order."""
        per_step = self.size * self.share
        return [step * per_step + self.rank * self.share + k for step in range(n // per_step) for k in range(self.share)]


def create_examples(documents, vocab, rng, store_dir=None, shard=None, **kwargs):
    """One pass over every document in order, written to an on-disk store, then shuffled.  With a
    `shard` of several ranks, only this rank's examples are written: a first pass draws every
    example to count them (the shuffle needs the count), a second, from the same generator state,
    draws them again and keeps this rank's; the generator ends where one pass would leave it."""
    if shard is None or shard.size == 1:
        store = ExampleStore(store_dir)
        for doc_index in range(len(documents)):
            for ex in create_examples_from_document(documents, doc_index, vocab, rng, **kwargs):
                store.append(ex)
        order = list(range(len(store)))
        rng.shuffle(order)                  # the permutation shuffling the examples themselves would make
        return ExampleSequence([store.close()], order)
    start = rng.getstate()
    n = sum(len(create_examples_from_document(documents, d, vocab, rng, **kwargs)) for d in range(len(documents)))
    order = list(range(n))
    rng.shuffle(order)
    end = rng.getstate()
    mine = [order[p] for p in shard.positions(n)]         # example indices, in this rank's training order
    slot = {index: k for k, index in enumerate(sorted(mine))}
    rng.setstate(start)
    store, index = ExampleStore(store_dir), 0
    for doc_index in range(len(documents)):
        for ex in create_examples_from_document(documents, doc_index, vocab, rng, **kwargs):
            if index in slot:
                store.append(ex)
            index += 1
    rng.setstate(end)
    return ExampleSequence([store.close()], [slot[i] for i in mine])


def create_full_sentence_examples(documents, vocab, rng, max_seq_length=128, masked_lm_prob=0.15,
                                  max_predictions_per_seq=20, whole_word_mask=False, short_seq_prob=None,
                                  store_dir=None, shard=None):
    """Masked-LM-only examples, RoBERTa's FULL-SENTENCES (Liu et al. 2019, section 4.2): whole
    sentences packed in order up to `max_seq_length - 2` tokens, [CLS] ... [SEP], one segment; a
    pack crosses into the next document with a [SEP] between the two.  A sentence longer than a
    whole pack is cut to fit.  (`short_seq_prob` belongs to the MLM + NSP recipe; unused here.)
    Shuffled, then masked as `mask_tokens`.  With a `shard`, every pack is masked (the generator
    runs through them all) but only this rank's are written."""
    room = max_seq_length - 2
    packs = ExampleStore(store_dir)                      # the packs' tokens, before masking
    tokens, first_doc = [], 0

    def close():
        nonlocal tokens
        if tokens:
            packs.append(Example(tokens, [], [], -1, first_doc, -1))
        tokens = []

    for doc_index, document in enumerate(documents):
        boundary = bool(tokens)                          # the pack holds the previous document's end
        for sentence in document:
            sentence = sentence[:room]
            needed = len(sentence) + (1 if boundary else 0)
            if len(tokens) + needed > room:
                close()
                boundary = False
            if not tokens:
                first_doc = doc_index
            if boundary:
                tokens.append(vocab.sep_id)
                boundary = False
            tokens.extend(sentence)
    close()
    packs.close()
    order = list(range(len(packs)))
    rng.shuffle(order)
    mine = set(shard.positions(len(order))) if shard is not None and shard.size > 1 else None
    store = ExampleStore(store_dir)
    for position, i in enumerate(order):                 # masked in the shuffled order
        pack = packs.example(i)
        ids = [vocab.cls_id] + pack.input_ids + [vocab.sep_id]
        masked, labels = mask_tokens(ids, vocab, rng, masked_lm_prob, max_predictions_per_seq, whole_word_mask)
        if mine is None or position in mine:
            store.append(Example(masked, [0] * len(ids), labels, -1, pack.document_index, -1))
    return ExampleSequence([store.close()])


# ---- epochs and batches -------------------------------------------------------------------

class PretrainingData:
    """Examples for each epoch, reproducible from the seed.

    objective="mlm+nsp": BERT's sentence pairs (create_examples); "mlm": full-sentence packs
                   without a second segment (create_full_sentence_examples).
    dynamic=True:  epoch e draws new segment pairs and masks with a generator seeded by (seed, e).
    dynamic=False: `dupe_factor` copies of the data, each with its own masks, drawn once; every
                   epoch reuses them (reshuffled), as the original BERT release.
    """

    def __init__(self, documents, vocab: Vocab, seed=0, dynamic=True, dupe_factor=1, objective="mlm+nsp",
                 **example_kwargs):
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        if objective == "mlm+nsp" and len(documents) < 2:
            raise ValueError("next-sentence prediction needs at least two documents")
        self.objective = objective
        self.documents, self.vocab, self.seed = documents, vocab, seed
        self.dynamic, self.dupe_factor, self.example_kwargs = dynamic, dupe_factor, example_kwargs
        self._static = None

    def _draw(self, key, shard=None):
        rng = random.Random(f"{self.seed}-{key}")
        docs_rng_order = list(range(len(self.documents)))
        rng.shuffle(docs_rng_order)                     # documents shuffled (appendix A.2)
        docs = DocumentView(self.documents, docs_rng_order)
        create = create_examples if self.objective == "mlm+nsp" else create_full_sentence_examples
        examples = create(docs, self.vocab, rng, shard=shard, **self.example_kwargs)
        # report document indices in the corpus' own order
        return ExampleSequence(examples.stores, examples.order, [docs_rng_order])

    def epoch(self, e: int, shard: Shard | None = None) -> ExampleSequence:
        """Epoch e's examples, in order: a sequence read from disk a batch at a time.  With a `shard`
        of several ranks, only this rank's, in its order (dynamic masking writes only those; static
        masking keeps every copy, as its epochs deal the same examples out differently)."""
        if self.dynamic:
            return self._draw(f"epoch{e}", shard)
        if self._static is None:
            drawn = [self._draw(f"dupe{d}") for d in range(self.dupe_factor)]
            stores = [s for x in drawn for s in x.stores]
            offsets = np.cumsum([0] + [len(x) for x in drawn])
            order = [int(offsets[k]) + j for k, x in enumerate(drawn) for j in x.order]
            self._static = ExampleSequence(stores, order, [x.document_ids[0] for x in drawn])
        order = list(range(len(self._static)))
        random.Random(f"{self.seed}-order{e}").shuffle(order)
        if shard is not None and shard.size > 1:
            order = [order[p] for p in shard.positions(len(order))]
        return self._static.reordered(order)


def collate(examples, pad_id=0):
    """Pad a list of examples to the longest: int64 arrays for the model (`next_sentence_label`
    only for sentence pairs)."""
    batch = pad_batch([{"input_ids": ex.input_ids, "token_type_ids": ex.token_type_ids, "labels": ex.labels}
                       for ex in examples], pad_id)
    if all(ex.next_sentence_label >= 0 for ex in examples):
        batch["next_sentence_label"] = np.array([ex.next_sentence_label for ex in examples], dtype=np.int64)
    return batch
