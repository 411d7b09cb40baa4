"""Pretraining examples on thousands of draws from the shipped corpus: the recipe's statistics."""

import os
import random
from collections import Counter

import numpy as np
import pytest

from minibert.data.pretraining import (PretrainingData, Vocab, collate, mask_tokens, read_documents,
                                       split_documents, tokenize_documents, truncate_seq_pair)
from minibert.tokenization import BertTokenizer
from minibert.training.pretrain import DEFAULT_CORPUS

MAX_LEN = 64


@pytest.fixture(scope="module")
def corpus():
    documents = read_documents(DEFAULT_CORPUS)[:400]               # Genesis to 2 Samuel: 400 chapters
    tok = BertTokenizer.train_from_texts([s for d in documents for s in d], vocab_size=2000,
                                         show_progress=False)
    return tokenize_documents(documents, tok), Vocab.from_tokenizer(tok), tok


@pytest.fixture(scope="module")
def examples(corpus):
    docs, vocab, _ = corpus
    return list(PretrainingData(docs, vocab, seed=0, max_seq_length=MAX_LEN).epoch(0))


def test_there_are_thousands(examples):
    assert len(examples) > 5000


def test_lengths_segments_and_layout(examples, corpus):
    _, vocab, _ = corpus
    for ex in examples:
        n = len(ex.input_ids)
        assert 5 <= n <= MAX_LEN
        assert len(ex.token_type_ids) == len(ex.labels) == n
        assert ex.input_ids[0] == vocab.cls_id and ex.input_ids[-1] == vocab.sep_id
        seps = [i for i, t in enumerate(ex.input_ids) if t == vocab.sep_id]
        assert len(seps) == 2                                    # [CLS] A [SEP] B [SEP]
        first_sep = seps[0]
        assert ex.token_type_ids == [0] * (first_sep + 1) + [1] * (n - first_sep - 1)
    batch = collate(examples[:16])
    real = batch["attention_mask"].astype(bool)
    assert np.all(real.sum(1) == [len(ex.input_ids) for ex in examples[:16]])
    assert np.all(batch["input_ids"][~real] == 0) and np.all(batch["token_type_ids"][~real] == 0)
    assert np.all(batch["labels"][~real] == -100)


def test_fifteen_percent_selected_and_specials_never(examples, corpus):
    _, vocab, _ = corpus
    for ex in examples:
        chosen = [i for i, lab in enumerate(ex.labels) if lab != -100]
        # round(15% of the length, [CLS] and [SEP] counted), at least 1, at most 20: the reference's count
        assert len(chosen) == min(20, max(1, int(round(0.15 * len(ex.input_ids)))))
        for i in chosen:
            assert ex.labels[i] not in vocab.special_ids         # never [CLS], [SEP] or [PAD]


def test_eighty_ten_ten(examples, corpus):
    _, vocab, _ = corpus
    outcome = Counter()
    for ex in examples:
        for t, lab in zip(ex.input_ids, ex.labels):
            if lab == -100:
                continue
            outcome["mask" if t == vocab.mask_id else "kept" if t == lab else "random"] += 1
    n = sum(outcome.values())
    assert n > 40000
    # Binomial standard deviation ~0.002 at n = 40k; 0.01 is five of them.  A random
    # replacement equal to the original counts as "kept": 1/2000 of the 10%, negligible.
    assert abs(outcome["mask"] / n - 0.8) < 0.01
    assert abs(outcome["kept"] / n - 0.1) < 0.01
    assert abs(outcome["random"] / n - 0.1) < 0.01
    randoms = [t for ex in examples for t, lab in zip(ex.input_ids, ex.labels)
               if lab != -100 and t != vocab.mask_id and t != lab]
    assert not set(randoms) & vocab.special_ids                # random tokens are real tokens
    assert len(set(randoms)) > 500                             # drawn across the vocabulary


def test_next_sentence_labels(examples):
    labels = [ex.next_sentence_label for ex in examples]
    assert abs(np.mean(labels) - 0.5) < 0.02                   # n > 5000: std 0.007
    for ex in examples:
        if ex.next_sentence_label == 1:
            assert ex.random_document_index >= 0
            assert ex.random_document_index != ex.document_index   # never A's own document
        else:
            assert ex.random_document_index == -1


def test_is_next_b_continues_a(corpus):
    """For IsNext, A and B (before masking) are each a stretch of A's own document, B after A.
    (Not A + B together: truncation may trim the end of A or the start of B.)"""
    docs, vocab, _ = corpus
    vocab_nomask = Vocab(vocab.cls_id, vocab.sep_id, vocab.mask_id, vocab.special_ids,
                         vocab.is_continuation, vocab.size)
    examples = PretrainingData(docs, vocab_nomask, seed=3, max_seq_length=MAX_LEN,
                               masked_lm_prob=1e-9).epoch(0)[:300]
    def joined(doc_index):
        return "," + ",".join(str(t) for s in docs[doc_index] for t in s) + ","

    checked = Counter()
    for ex in examples:
        tokens = [lab if lab != -100 else t for t, lab in zip(ex.input_ids, ex.labels)]
        first_sep = tokens.index(vocab.sep_id)
        a = "," + ",".join(map(str, tokens[1:first_sep])) + ","
        b = "," + ",".join(map(str, tokens[first_sep + 1:-1])) + ","
        text = joined(ex.document_index)
        assert a in text
        if ex.next_sentence_label == 0:
            assert b in text and text.rindex(b) >= text.index(a) + len(a) - 1
        else:                                     # NotNext: B is a stretch of the random document
            assert b in joined(ex.random_document_index)
        checked[ex.next_sentence_label] += 1
    assert checked[0] > 100 and checked[1] > 100


def test_same_seed_same_examples_and_dynamic_masks(corpus):
    docs, vocab, _ = corpus
    a = PretrainingData(docs[:60], vocab, seed=5, max_seq_length=MAX_LEN)
    b = PretrainingData(docs[:60], vocab, seed=5, max_seq_length=MAX_LEN)
    epoch = lambda data, e: list(data.epoch(e))                      # noqa: E731  (read from the store)
    assert epoch(a, 0) == epoch(b, 0) and epoch(a, 1) == epoch(b, 1)
    assert epoch(a, 0) != epoch(a, 1)                                # dynamic: new masks each epoch
    assert epoch(a, 0) != epoch(PretrainingData(docs[:60], vocab, seed=6, max_seq_length=MAX_LEN), 0)
    static = PretrainingData(docs[:60], vocab, seed=5, dynamic=False, dupe_factor=2, max_seq_length=MAX_LEN)
    e0, e1 = static.epoch(0), static.epoch(1)
    key = lambda ex: (tuple(ex.input_ids), tuple(ex.labels))  # noqa: E731
    assert sorted(map(key, e0)) == sorted(map(key, e1))             # the same masked copies ...
    assert [key(x) for x in e0] != [key(x) for x in e1]             # ... in a new order
    assert len(e0) > 1.8 * len(a.epoch(0))                           # two copies


def test_whole_word_masking_masks_every_piece(corpus):
    docs, vocab, tok = corpus
    examples = PretrainingData(docs, vocab, seed=1, max_seq_length=MAX_LEN, whole_word_mask=True).epoch(0)
    words_seen = 0
    for ex in examples[:2000]:
        original = [lab if lab != -100 else t for t, lab in zip(ex.input_ids, ex.labels)]
        chosen = [lab != -100 for lab in ex.labels]
        for i in range(1, len(original)):
            if vocab.is_continuation[original[i]] and original[i - 1] not in vocab.special_ids:
                assert chosen[i] == chosen[i - 1], "a word was only partly masked"
                words_seen += chosen[i]
    assert words_seen > 50


def test_mask_tokens_and_truncation_units():
    vocab = Vocab(2, 3, 4, frozenset({0, 1, 2, 3, 4}), np.zeros(100, dtype=bool), 100)
    tokens = [2] + list(range(10, 50)) + [3]
    masked, labels = mask_tokens(tokens, vocab, random.Random(0))
    assert sum(lab != -100 for lab in labels) == 6                   # round(0.15 * 40)
    assert masked[0] == 2 and masked[-1] == 3 and labels[0] == labels[-1] == -100
    a, b = list(range(10)), list(range(4))
    truncate_seq_pair(a, b, 8, random.Random(0))
    assert len(a) + len(b) == 8 and len(b) == 4                      # the longer one is trimmed


def test_corpus_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus not found"):
        read_documents(tmp_path / "none.txt")
    (tmp_path / "empty.txt").write_text("\n\n  \n")
    with pytest.raises(ValueError, match="is empty"):
        read_documents(tmp_path / "empty.txt")
    (tmp_path / "one.txt").write_text("a sentence.\nanother one.\n")
    with pytest.raises(ValueError, match="at least two"):
        split_documents(read_documents(tmp_path / "one.txt"), 0.1, 0)
    (tmp_path / "bad.txt.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="is not a whole gzip file"):
        read_documents(tmp_path / "bad.txt.gz")


def test_pad_batch_is_the_one_padding_helper():
    """Token ids, segment ids and per-token labels padded at the end; labels only when every
    feature has per-token labels (a classification label is not padded); `length` pads further."""
    from minibert.data.batching import pad_batch
    features = [{"input_ids": [2, 7, 3], "token_type_ids": [0, 0, 0], "labels": [-100, 5, -100]},
                {"input_ids": [2, 9, 4, 8, 3], "labels": [-100, 1, 2, 3, -100]}]
    batch = pad_batch(features, pad_token_id=0)
    np.testing.assert_array_equal(batch["input_ids"], [[2, 7, 3, 0, 0], [2, 9, 4, 8, 3]])
    np.testing.assert_array_equal(batch["attention_mask"], [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(batch["token_type_ids"], np.zeros((2, 5)))
    np.testing.assert_array_equal(batch["labels"], [[-100, 5, -100, -100, -100], [-100, 1, 2, 3, -100]])
    assert all(a.dtype == np.int64 for a in batch.values())
    wide = pad_batch([{"input_ids": [2, 3], "label": 1}], pad_token_id=7, length=4)
    assert set(wide) == {"input_ids", "token_type_ids", "attention_mask"}
    np.testing.assert_array_equal(wide["input_ids"], [[2, 3, 7, 7]])


def test_lengths_follow_the_reference_recipe():
    """On the shipped corpus at max_seq_length 128, one pass (dupe factor 1): the length
    distribution and the number of predictions of google-research/bert's create_pretraining_data.py
    (tests/reference_recipe.py), with next-sentence labels at 50/50 where the reference tilts them."""
    from reference_recipe import reference_examples

    from minibert.data.pretraining import create_examples
    from minibert.training.pretrain import SHIPPED_VOCAB
    tok = BertTokenizer.from_vocab(SHIPPED_VOCAB)
    docs = tokenize_documents(read_documents(DEFAULT_CORPUS), tok)
    ref = np.array(reference_examples(docs, 128, 0.1, random.Random(1)), dtype=float)        # (N, 3)
    ours = create_examples(docs, Vocab.from_tokenizer(tok), random.Random(1), max_seq_length=128)
    n = np.array([len(ex.input_ids) for ex in ours])
    predictions = np.array([sum(label != -100 for label in ex.labels) for ex in ours])
    assert abs(n.mean() / ref[:, 0].mean() - 1) < 0.02                           # mean length within 2%
    assert abs((n < 64).mean() - (ref[:, 0] < 64).mean()) < 0.01                   # short ones within a point
    assert abs(predictions.mean() / ref[:, 2].mean() - 1) < 0.02
    assert ref[:, 1].mean() > 0.54                                                 # the reference's tilt ...
    assert abs(np.mean([ex.next_sentence_label for ex in ours]) - 0.5) < 0.015     # ... and our balance


def test_full_sentence_packs_for_mlm_alone(corpus):
    """RoBERTa's FULL-SENTENCES: whole sentences in order, packs as full as the next sentence
    allows, crossing documents with a [SEP] between them; one segment, no NSP label."""
    from minibert.data.pretraining import create_full_sentence_examples
    docs, vocab, _ = corpus
    docs = docs[:60]
    examples = create_full_sentence_examples(docs, vocab, random.Random(0), max_seq_length=MAX_LEN)
    originals = []
    for ex in examples:
        assert len(ex.input_ids) <= MAX_LEN and ex.next_sentence_label == -1
        assert ex.token_type_ids == [0] * len(ex.input_ids)
        original = [lab if lab != -100 else t for t, lab in zip(ex.input_ids, ex.labels)]
        assert original[0] == vocab.cls_id and original[-1] == vocab.sep_id
        originals.append(original[1:-1])
    # Every token of the corpus is in exactly one pack, and each pack is whole sentences: put
    # back in order of their first document, the packs are the corpus with [SEP] between documents.
    originals = [o for _, o in sorted(zip([ex.document_index for ex in examples], originals),
                                      key=lambda p: (p[0], p[1] != []))]
    stream = [t for o in originals for t in o]
    corpus_tokens = sum(min(len(s), MAX_LEN - 2) for d in docs for s in d)     # a longer sentence is cut
    assert len(stream) - stream.count(vocab.sep_id) == corpus_tokens
    assert stream.count(vocab.sep_id) <= len(docs) - 1
    lengths = np.array([len(ex.input_ids) for ex in examples])
    sentence_mean = np.mean([min(len(s), MAX_LEN - 2) for d in docs for s in d])
    assert lengths.mean() > 1.3 * (sentence_mean + 2)             # packed, not one sentence each
    batch = collate(examples[:4])
    assert "next_sentence_label" not in batch


def test_a_corpus_of_many_files(tmp_path):
    """A file, a directory, a glob or a comma list of them: documents in file order."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("a one.\na two.\n\na three.\n")
    (tmp_path / "d" / "b.txt").write_text("b one.\n")                     # its end closes its document
    import gzip
    with gzip.open(tmp_path / "d" / "c.txt.gz", "wt") as f:
        f.write("c one.\nc two.\n")
    (tmp_path / "d" / "notes.md").write_text("not a corpus\n")
    docs = read_documents(tmp_path / "d")
    assert docs == [["a one.", "a two."], ["a three."], ["b one."], ["c one.", "c two."]]
    assert read_documents(str(tmp_path / "d" / "*.txt")) == docs[:3]
    assert read_documents(f"{tmp_path / 'd' / 'b.txt'},{tmp_path / 'd' / 'a.txt'}") == [docs[2], *docs[:2]]
    with pytest.raises(FileNotFoundError, match="matches no file"):
        read_documents(str(tmp_path / "*.none"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no .txt or .txt.gz file"):
        read_documents(tmp_path / "empty")


def test_the_token_cache(tmp_path, corpus):
    """Tokenized once into memory-mapped files: the same documents as tokenizing in memory; a
    second open reads the cache without tokenizing; a changed file gets a new cache."""
    from minibert.data.pretraining import read_file_documents
    from minibert.data.token_cache import TokenizedCorpus
    _, _, tok = corpus
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.txt").write_text("In the beginning God created.\nAnd the earth.\n\n\u0301\n\nLet there be light.\n")
    (tmp_path / "c" / "b.txt").write_text("And there was light.\n")
    files = corpus_files_of(tmp_path / "c")
    built = TokenizedCorpus.build_or_open(files, tok, tmp_path / "cache", read_file_documents)
    text = read_documents(tmp_path / "c")
    assert len(built) == len(text) == 4 and isinstance(built.ids, np.memmap)
    expected = tokenize_documents(text, tok)                 # drops the document that tokenizes to nothing
    assert [built[i] for i in range(4) if built[i]] == expected and built[1] == []   # the lone accent
    counts = built.token_counts([0, 2, 3], tok.vocab_size)
    assert counts.sum() == sum(len(s) for d in expected for s in d)

    def refuse(*args, **kwargs):
        raise AssertionError("tokenized again")
    original = tok.encode_batch_ids
    tok.encode_batch_ids = refuse
    try:
        again = TokenizedCorpus.build_or_open(files, tok, tmp_path / "cache", read_file_documents)
        assert again.directory == built.directory and again[3] == built[3]
    finally:
        tok.encode_batch_ids = original
    (tmp_path / "c" / "b.txt").write_text("And there was light, and it was good.\n")
    changed = TokenizedCorpus.build_or_open(files, tok, tmp_path / "cache", read_file_documents)
    assert changed.directory != built.directory and changed[3] != built[3]
    # an edit that keeps the size and the modification time is still a new corpus
    b = tmp_path / "c" / "b.txt"
    before = b.stat()
    b.write_text("And there was light, and it was bad!!\n")
    os.utime(b, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert b.stat().st_size == before.st_size and b.stat().st_mtime_ns == before.st_mtime_ns
    edited = TokenizedCorpus.build_or_open(files, tok, tmp_path / "cache", read_file_documents)
    assert edited.directory != changed.directory and edited[3] == tokenize_documents([["And there was light, "
                                                                                      "and it was bad!!"]], tok)[0]


@pytest.mark.parametrize("damage", ["cut documents", "cut ids", "emptied meta", "offsets edited"])
def test_a_damaged_token_cache_is_rebuilt_with_a_warning(tmp_path, corpus, damage, caplog):
    """A cache whose files no longer match its meta.json is never read as it is: it is tokenized
    again, with a warning, and gives every document back."""
    from minibert.data.pretraining import read_file_documents
    from minibert.data.token_cache import TokenizedCorpus
    _, _, tok = corpus
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.txt").write_text("\n\n".join(f"Sentence {i} of the text.\nAnd one more." for i in range(40)))
    files = corpus_files_of(tmp_path / "c")
    built = TokenizedCorpus.build_or_open(files, tok, tmp_path / "cache", read_file_documents)
    expected = [built[i] for i in range(len(built))]
    assert len(expected) == 40
    directory = built.directory
    del built
    if damage == "cut documents":
        (directory / "documents.bin").write_bytes((directory / "documents.bin").read_bytes()[:24])
    elif damage == "cut ids":
        (directory / "ids.bin").write_bytes((directory / "ids.bin").read_bytes()[:-2])
    elif damage == "emptied meta":
        (directory / "meta.json").write_text("")
    else:
        offsets = np.fromfile(directory / "sentences.bin", dtype=np.int64)
        offsets[5], offsets[6] = offsets[6], offsets[5]
        offsets.tofile(directory / "sentences.bin")
    with caplog.at_level("WARNING", logger="minibert"):
        again = TokenizedCorpus.build_or_open(files, tok, tmp_path / "cache", read_file_documents)
    assert "the token cache is damaged" in caplog.text and str(directory) in caplog.text
    assert [again[i] for i in range(len(again))] == expected


def corpus_files_of(path):
    from minibert.data.pretraining import corpus_files
    return corpus_files(path)


def test_an_epoch_lives_on_disk(corpus):
    """An epoch's examples are written once to files and read back a batch at a time; the store's
    directory goes when the epoch is dropped; the shuffled order is the one shuffling the examples
    themselves gives."""
    import gc

    from minibert.data.example_store import ExampleSequence, ExampleStore
    from minibert.data.pretraining import Example
    docs, vocab, _ = corpus
    epoch = PretrainingData(docs[:30], vocab, seed=3, max_seq_length=MAX_LEN).epoch(0)
    directory = epoch.stores[0].directory
    assert (directory / "input_ids.bin").stat().st_size == 4 * sum(len(ex.input_ids) for ex in epoch)
    assert epoch[10:12] == [epoch[10], epoch[11]]
    del epoch
    gc.collect()
    assert not directory.exists()
    store = ExampleStore()
    made = [Example([2, i, 3], [0, 0, 0], [-100, i, -100], i % 2, i, -1) for i in range(20)]
    for ex in made:
        store.append(ex)
    order = list(range(20))
    random.Random(7).shuffle(order)
    shuffled = list(made)
    random.Random(7).shuffle(shuffled)
    assert list(ExampleSequence([store.close()], order)) == shuffled


def test_a_vocabulary_trains_on_the_first_part_of_a_large_corpus(tmp_path):
    from minibert.training.pretraining_corpus import training_text
    (tmp_path / "c.txt").write_text("".join(f"sentence {i} of document {i}.\n\n" for i in range(100)))
    everything = training_text([tmp_path / "c.txt"], range(0, 100, 2))
    assert len(everything) == 50 and everything[1] == "sentence 2 of document 2."
    assert training_text([tmp_path / "c.txt"], range(100), limit=100) == everything[:1] + \
        ["sentence 1 of document 1.", "sentence 2 of document 2.", "sentence 3 of document 3."]


@pytest.mark.parametrize("objective, dynamic", [("mlm+nsp", True), ("mlm", True), ("mlm+nsp", False)])
def test_each_rank_builds_only_its_shard(corpus, objective, dynamic):
    """A shard of rank r of 3 (2 examples each a step) holds exactly the examples rank r trains on
    today, at positions [2r, 2r + 2) of each step of 6, in order; with dynamic masking its store
    on disk holds only those (a third of the epoch's, give or take the last partial step)."""
    from minibert.data.pretraining import Shard
    docs, vocab, _ = corpus
    data = PretrainingData(docs[:60], vocab, seed=3, objective=objective, dynamic=dynamic, max_seq_length=MAX_LEN)
    whole = data.epoch(1)
    key = lambda ex: (ex.input_ids, ex.token_type_ids, ex.labels, ex.next_sentence_label,   # noqa: E731
                      ex.document_index, ex.random_document_index)
    everything = [key(ex) for ex in whole]
    steps = len(everything) // 6
    assert steps > 10
    for rank in range(3):
        shard = data.epoch(1, Shard(rank, 3, 2))
        expected = [everything[s * 6 + 2 * rank + k] for s in range(steps) for k in range(2)]
        assert [key(ex) for ex in shard] == expected
        if dynamic:
            stored = sum(len(store) for store in shard.stores)
            assert stored == len(expected) < len(everything) / 2
