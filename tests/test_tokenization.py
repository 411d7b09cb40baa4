"""Our WordPiece tokenizer against transformers.AutoTokenizer, loading, training and saving."""

import shutil

import numpy as np
import pytest
import transformers

from minibert.tokenization import BertTokenizer

TEXTS = ["I love Korea", "Hello, world!", "naïve café — 東京 3.14159 $5",
         "unbelievably long words like antidisestablishmentarianism", "a " * 40, ""]
PAIRS = ["What is it?", "It is a test of the pair encoding.", "Short", "b " * 30, "x", "y"]


@pytest.fixture(scope="module")
def toks(minilm_dir):
    return BertTokenizer.from_pretrained(minilm_dir), transformers.AutoTokenizer.from_pretrained(minilm_dir)


def assert_same(ours, ref):
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        np.testing.assert_array_equal(ours[key], ref[key], err_msg=key)


@pytest.mark.parametrize("kwargs", [
    dict(padding=True),
    dict(padding="max_length", max_length=64),
    dict(padding=True, truncation=True, max_length=12),
    dict(padding="max_length", truncation=True, max_length=20),
])
def test_singles_match_autotokenizer(toks, kwargs):
    ours, ref = toks
    assert_same(ours(TEXTS, **kwargs), ref(TEXTS, return_tensors="np", **kwargs))


@pytest.mark.parametrize("kwargs", [
    dict(padding=True),
    dict(padding=True, truncation=True, max_length=16),                  # longest_first
    dict(padding=True, truncation="only_second", max_length=24),
    dict(padding="max_length", truncation="longest_first", max_length=30),
])
def test_pairs_match_autotokenizer(toks, kwargs):
    ours, ref = toks
    a, b = TEXTS[:4], PAIRS[:4]                  # PAIRS[3] is long: truncation has work to do
    assert_same(ours(a, b, **kwargs), ref(a, b, return_tensors="np", **kwargs))


def test_fixed_padding_in_tokenizer_json_is_not_applied(toks):
    """all-MiniLM-L6-v2's tokenizer.json pads everything to 128 and truncates at 128: a call
    gets what it asks for instead."""
    ours, _ = toks
    assert ours("I love Korea").input_ids.tolist() == [[101, 1045, 2293, 4420, 102]]
    long = ours(["word " * 300], truncation=True, max_length=200)
    assert long.input_ids.shape == (1, 200)
    assert ours(["word " * 300]).input_ids.shape == (1, 302)


def test_transformers_conventions(toks):
    """return_tensors, batch_decode, the special tokens by name, and words with their word_ids()."""
    ours, ref = toks
    assert_same(ours(TEXTS[:3], padding=True, return_tensors="np"), ref(TEXTS[:3], padding=True, return_tensors="np"))
    with pytest.raises(ValueError, match="minibert works in NumPy"):
        ours("x", return_tensors="pt")
    batch = ours(TEXTS, PAIRS, padding=True)
    assert ours.batch_decode(batch.input_ids) == ref.batch_decode(batch.input_ids, skip_special_tokens=True)
    assert ours.batch_decode(batch.input_ids[:2], skip_special_tokens=False) == \
        ref.batch_decode(batch.input_ids[:2], skip_special_tokens=False)
    for name in ("pad", "unk", "cls", "sep", "mask"):
        assert getattr(ours, f"{name}_token") == getattr(ref, f"{name}_token")
        assert getattr(ours, f"{name}_token_id") == getattr(ref, f"{name}_token_id")
    assert sorted(ours.all_special_tokens) == sorted(ref.all_special_tokens)
    words = [["Jean-Luc", "Picard", "commands", "the", "Enterprise"], ["Seoul", "is", "big"], ["\u0301"]]
    for kwargs in (dict(padding=True), dict(padding=True, truncation=True, max_length=6)):
        mine, theirs = ours(words, is_split_into_words=True, **kwargs), ref(words, is_split_into_words=True,
                                                                             return_tensors="np", **kwargs)
        assert_same(mine, theirs)
        for i in range(len(words)):
            assert mine.word_ids(i) == theirs.word_ids(i)
    assert ours(words[0], is_split_into_words=True).word_ids() == ref(words[0], is_split_into_words=True).word_ids()
    with pytest.raises(TypeError, match="is_split_into_words=True"):
        ours([["a", "b"]])
    with pytest.raises(TypeError, match="a list of words"):
        ours("a b", is_split_into_words=True)


def test_tokens_decode_and_ids(toks):
    ours, ref = toks
    assert ours.tokenize("I love Korea, playing") == ref.tokenize("I love Korea, playing")
    pieces = ours.tokenize("unbelievably")
    assert pieces == ref.tokenize("unbelievably") and pieces[0] == "un" and pieces[1].startswith("##")
    ids = ours("I love Korea!").input_ids[0]
    assert ours.decode(ids) == ref.decode(ids, skip_special_tokens=True) == "i love korea!"
    assert ours.decode(ids, skip_special_tokens=False) == "[CLS] i love korea! [SEP]"
    assert ours.convert_tokens_to_ids(["[CLS]", "love", "no-such-token"]) == [101, 2293, 100]
    assert ours.convert_ids_to_tokens([101, 2293]) == ["[CLS]", "love"]
    assert (ours.pad_token_id, ours.cls_token_id, ours.sep_token_id, ours.mask_token_id) == (0, 101, 102, 103)
    assert ours.vocab_size == 30522 and ours.model_max_length == 512


def test_vocab_txt_alone_gives_the_same_ids(toks, minilm_dir, tmp_path):
    shutil.copy(minilm_dir / "vocab.txt", tmp_path / "vocab.txt")
    shutil.copy(minilm_dir / "tokenizer_config.json", tmp_path / "tokenizer_config.json")
    from_vocab = BertTokenizer.from_pretrained(tmp_path)
    assert_same(from_vocab(TEXTS, PAIRS, padding=True), toks[0](TEXTS, PAIRS, padding=True))


def test_errors(toks):
    ours, _ = toks
    with pytest.raises(ValueError, match="different lengths.*padding=True"):
        ours(["a", "a b c"])
    with pytest.raises(ValueError, match="2 texts but 1 text pairs"):
        ours(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="unknown padding"):
        ours(["a"], padding="shortest")
    with pytest.raises(ValueError, match="empty"):
        ours([])
    with pytest.raises(ValueError, match="could not encode.*too short"):     # as transformers
        ours(["a " * 40], ["b"], truncation="only_second", max_length=24)


def test_train_save_and_load_in_transformers(tmp_path):
    corpus = tmp_path / "corpus.txt"
    lines = ["the king spoke unto the people", "and the people answered the king",
             "in the beginning was the word", "blessed are the meek for they shall inherit"] * 50
    corpus.write_text("\n".join(lines) + "\n")
    tok = BertTokenizer.train([corpus], vocab_size=120, min_frequency=1, show_progress=False)
    vocab = tok.get_vocab()
    assert [vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 1, 2, 3, 4]
    assert tok.vocab_size <= 120 and "king" in vocab
    tok.save_pretrained(tmp_path / "tok")
    ref = transformers.AutoTokenizer.from_pretrained(tmp_path / "tok")
    texts, pairs = ["The King answered", "blessed word"], ["unseen zebra", "the people"]
    assert_same(tok(texts, pairs, padding=True), ref(texts, pairs, padding=True, return_tensors="np"))
    again = BertTokenizer.from_pretrained(tmp_path / "tok")
    assert_same(again(texts, padding=True), tok(texts, padding=True))
    with pytest.raises(FileNotFoundError, match="training file not found"):
        BertTokenizer.train([tmp_path / "missing.txt"])
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="training file is empty"):
        BertTokenizer.train([tmp_path / "empty.txt"])


def test_vocab_txt_alone_keeps_special_tokens_whole(tmp_path):
    """As transformers' BertTokenizer on the same file: [MASK] is one token, not [UNK] m ##as ##k."""
    import transformers
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat",
                                                   "sat", "m", "##as", "##k", "[", "]"]) + "\n")
    ours = BertTokenizer.from_pretrained(tmp_path)
    assert ours.tokenize("the [MASK] sat") == ["the", "[MASK]", "sat"]
    ref = transformers.BertTokenizer(str(tmp_path / "vocab.txt"))
    assert ours("the [MASK] sat").input_ids[0].tolist() == ref("the [MASK] sat")["input_ids"]
    assert ours.vocab_size == 13


def test_a_tokenizer_config_that_is_not_an_object(tmp_path, toks):
    toks[0].save_pretrained(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="tokenizer_config.json must hold a JSON object, got a list"):
        BertTokenizer.from_pretrained(tmp_path)


def test_training_skips_words_wordpiece_cannot_read():
    """A word longer than 100 characters is [UNK] whatever the vocabulary, and training on it is
    quadratic in its length: it is left out (1 MB without a space trains at once); words that the
    pre-tokenizer splits (punctuation, Chinese characters) are kept."""
    from minibert.tokenization import without_long_words
    tok = BertTokenizer.train_from_texts(["the cat sat " * 3, "a" * 1_000_000 + " tail"], vocab_size=60,
                                         min_frequency=1, show_progress=False)
    assert max(len(t) for t in tok.get_vocab()) < 100 and "tail" in tok.get_vocab()
    pipeline = tok._tokenizer
    long_chinese = "東京は日本の首都です" * 20                        # one whitespace word, 200 characters
    kept = without_long_words(f"x {long_chinese} {'b' * 150} y.z", pipeline)
    assert kept.startswith("x 東 京") and "b" * 150 not in kept and kept.endswith(" y.z")


def test_training_gives_the_same_vocabulary_in_every_process(tmp_path):
    """Three processes train on one small corpus full of ties (words of equal counts, pairs of
    equal counts) and write the same vocab.txt, ids included.  Before the "##c" pieces were given
    to the trainer in a fixed order, the ids differed in nearly every pair of processes, and the
    tokens themselves in some."""
    import subprocess
    import sys
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
             "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango"]
    lines = [" ".join(words[i:] + words[:i]) for i in range(len(words))] * 3     # every word equally often
    (tmp_path / "corpus.txt").write_text("\n".join(lines) + "\n")
    script = ("import sys; from minibert.tokenization import BertTokenizer; "
              "BertTokenizer.train([sys.argv[1]], vocab_size=90, min_frequency=1, show_progress=False)"
              ".save_pretrained(sys.argv[2])")
    for run in range(3):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / "corpus.txt"), str(tmp_path / f"run{run}")],
                       check=True)
    first = (tmp_path / "run0" / "vocab.txt").read_text()
    assert len(first.splitlines()) == 90 and first.splitlines()[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    for run in (1, 2):
        assert (tmp_path / f"run{run}" / "vocab.txt").read_text() == first
    tok = BertTokenizer.from_pretrained(tmp_path / "run0")
    assert tok.tokenize("##a") == ["[UNK]", "[UNK]", "a"]        # "##a" is no special token: read as text
