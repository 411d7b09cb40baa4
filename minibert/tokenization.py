"""WordPiece tokenization (Wu et al. 2016; BERT section 3), on the `tokenizers` library.

    "I love Korea"  ->  [CLS] i love korea [SEP]                  single sentence, segment 0
    (A, B)          ->  [CLS] A [SEP] B [SEP]                      A is segment 0, B segment 1

Text is normalised (lower-cased for uncased models, accents stripped with it, Chinese characters
split), split on whitespace and punctuation, and each word is split greedily into the longest
pieces in the vocabulary; a piece inside a word carries the `##` prefix ("playing" -> "play",
"##ing").

A `tokenizer.json` may carry fixed padding and truncation settings (all-MiniLM-L6-v2's pads
everything to 128).  We switch them off on load: every call gets exactly the padding and
truncation it asks for, as `transformers` tokenizers do.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors, trainers
from tokenizers.models import WordPiece

from .data.batching import pad_batch
from .files import write_atomic

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
TOKENIZER_FILE, VOCAB_FILE, TOKENIZER_CONFIG_FILE = "tokenizer.json", "vocab.txt", "tokenizer_config.json"


MAX_WORD_CHARS = 100        # WordPiece's max_input_chars_per_word: a longer word is [UNK] whatever the vocabulary


def without_long_words(text, tokenizer):
    """`text` without the words WordPiece could only read as [UNK] (longer than MAX_WORD_CHARS
    once normalised and split at punctuation and Chinese characters, as the tokenizer splits).
    Training on them costs time quadratic in their length and teaches nothing."""
    if len(text) <= MAX_WORD_CHARS or max(map(len, text.split()), default=0) <= MAX_WORD_CHARS:
        return text
    kept = []
    for chunk in text.split():
        if len(chunk) <= MAX_WORD_CHARS:
            kept.append(chunk)
            continue
        words = tokenizer.pre_tokenizer.pre_tokenize_str(tokenizer.normalizer.normalize_str(chunk))
        kept.extend(word for word, _ in words if len(word) <= MAX_WORD_CHARS)
    return " ".join(kept)


def has_tokenizer_files(directory) -> bool:
    directory = Path(directory)
    return (directory / TOKENIZER_FILE).is_file() or (directory / VOCAB_FILE).is_file()


class BatchEncoding(dict):
    """`input_ids`, `token_type_ids`, `attention_mask` as (B, T) int64 arrays; keys or attributes.
    `word_ids(i)` gives text i's word index for each position (None for special tokens and padding)."""

    def __init__(self, data, encodings=()):
        super().__init__(data)
        self._encodings = list(encodings)

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def word_ids(self, batch_index: int = 0) -> list:
        """For each position of text `batch_index`, the index of the word it came from (the
        words of `is_split_into_words=True` input, or the pre-tokenizer's words); None for
        [CLS], [SEP] and padding."""
        if not self._encodings:
            raise ValueError("word_ids() needs the encoding that the tokenizer call returned")
        width = self["input_ids"].shape[1]
        ids = list(self._encodings[batch_index].word_ids)
        return ids + [None] * (width - len(ids))


def continuation_pieces(texts, tokenizer) -> list[str]:
    """"##c" for every character c found after the first character of a word of `texts` (words as
    `tokenizer` normalises and splits them), in character order: the pieces WordPiece training
    starts from besides the single characters."""
    inside = set()
    for text in texts:
        for word, _ in tokenizer.pre_tokenizer.pre_tokenize_str(tokenizer.normalizer.normalize_str(text)):
            inside.update(word[1:])
    return ["##" + c for c in sorted(inside)]


def _bert_pipeline(tokenizer: Tokenizer, lowercase: bool) -> Tokenizer:
    """Attach BERT's normaliser, pre-tokeniser, [CLS]/[SEP] template and WordPiece decoder."""
    tokenizer.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                      strip_accents=None, lowercase=lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if cls_id is None or sep_id is None:
        raise ValueError("the vocabulary has no [CLS] or [SEP] token")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return tokenizer


class BertTokenizer:
    """BERT's WordPiece tokenizer with HF-like calls:

        tok = BertTokenizer.from_pretrained("path/to/checkpoint")
        batch = tok(["I love Korea", "Hello"], padding=True)      # (B, T) arrays
        batch = tok(questions, contexts, truncation=True, max_length=128, padding="max_length")
        tok.decode(batch["input_ids"][0])
    """

    def __init__(self, tokenizer: Tokenizer, model_max_length: int = 512, do_lower_case: bool = True):
        self._tokenizer = tokenizer
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self.model_max_length = int(model_max_length)
        self.do_lower_case = bool(do_lower_case)
        for token in SPECIAL_TOKENS:
            if tokenizer.token_to_id(token) is None:
                raise ValueError(f"the vocabulary has no {token} token")
        self.pad_token, self.unk_token, self.cls_token, self.sep_token, self.mask_token = SPECIAL_TOKENS
        self.pad_token_id, self.unk_token_id, self.cls_token_id, self.sep_token_id, self.mask_token_id = (
            tokenizer.token_to_id(t) for t in SPECIAL_TOKENS)
        self.all_special_tokens = list(SPECIAL_TOKENS)
        self.all_special_ids = sorted({self.pad_token_id, self.unk_token_id, self.cls_token_id,
                                       self.sep_token_id, self.mask_token_id})

    # ---- construction ---------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, directory) -> "BertTokenizer":
        """Load `tokenizer.json`, or else `vocab.txt`, with `tokenizer_config.json`'s settings."""
        directory = Path(directory)
        settings = {}
        if (directory / TOKENIZER_CONFIG_FILE).is_file():
            path = directory / TOKENIZER_CONFIG_FILE
            try:
                settings = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ValueError(f"{path} is not valid JSON ({e})") from None
            if not isinstance(settings, dict):
                raise ValueError(f"{path} must hold a JSON object, got a {type(settings).__name__}")
        lowercase = settings.get("do_lower_case", True)
        max_len = settings.get("model_max_length", 512)
        if not isinstance(max_len, int) or max_len > 1_000_000:      # HF writes 1e30 for "no limit"
            max_len = 512
        if (directory / TOKENIZER_FILE).is_file():
            try:
                tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
            except Exception as e:
                raise ValueError(f"{directory / TOKENIZER_FILE} could not be read ({e})") from None
            return cls(tokenizer, max_len, lowercase)
        if (directory / VOCAB_FILE).is_file():
            return cls.from_vocab(directory / VOCAB_FILE, do_lower_case=lowercase, model_max_length=max_len)
        raise FileNotFoundError(f"{directory} has no {TOKENIZER_FILE} or {VOCAB_FILE}")

    @classmethod
    def from_vocab(cls, vocab_file, do_lower_case=True, model_max_length=512) -> "BertTokenizer":
        """Build the tokenizer from a `vocab.txt` (one token a line; the line number is its id)."""
        tokens = Path(vocab_file).read_text(encoding="utf-8").splitlines()
        if not tokens:
            raise ValueError(f"{vocab_file} is empty")
        return cls._from_vocab_dict({tok: i for i, tok in enumerate(tokens)}, do_lower_case, model_max_length)

    @classmethod
    def _from_vocab_dict(cls, vocab, do_lower_case, model_max_length) -> "BertTokenizer":
        tokenizer = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=MAX_WORD_CHARS))
        # Special tokens are matched whole, before normalisation, as transformers' BertTokenizer
        # does (else "[MASK]" would be lower-cased and split into "[UNK] m ##as ##k").
        tokenizer.add_special_tokens([t for t in SPECIAL_TOKENS if t in vocab])
        return cls(_bert_pipeline(tokenizer, do_lower_case), model_max_length, do_lower_case)

    @classmethod
    def train(cls, files, vocab_size=8000, min_frequency=2, lowercase=True,
              model_max_length=512, show_progress=True) -> "BertTokenizer":
        """Learn a WordPiece vocabulary from text files (.gz too), one text a line."""
        texts = []
        for f in files:
            if not Path(f).is_file():
                raise FileNotFoundError(f"training file not found: {f}")
            opener = gzip.open if str(f).endswith(".gz") else open
            with opener(f, "rt", encoding="utf-8") as fh:
                lines = [line for line in fh.read().splitlines() if line.strip()]
            if not lines:
                raise ValueError(f"training file is empty: {f}")
            texts.extend(lines)
        return cls.train_from_texts(texts, vocab_size, min_frequency, lowercase, model_max_length,
                                    show_progress)

    @classmethod
    def train_from_texts(cls, texts, vocab_size=8000, min_frequency=2, lowercase=True,
                         model_max_length=512, show_progress=True) -> "BertTokenizer":
        """Learn a WordPiece vocabulary from a list of texts; ids 0-4 are
        [PAD] [UNK] [CLS] [SEP] [MASK], then every "##c" (c a character seen inside a word), in
        character order, then the single characters and the merged pieces, as `tokenizers`'
        trainer makes them.

        The same texts give the same vocabulary, ids included, in every process.  Left alone, the
        trainer gives each "##c" its id in the order it meets them in a hash map, which differs
        from process to process, and breaks ties between equally frequent pairs by those ids: two
        trainings differed in their tokens, not only in their order.  Handing it the "##c" pieces
        up front, in a fixed order, fixes every id and so every tie-break."""
        tokenizer = Tokenizer(WordPiece(unk_token="[UNK]", max_input_chars_per_word=MAX_WORD_CHARS))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        texts = [without_long_words(t, tokenizer) for t in texts]
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                            special_tokens=list(SPECIAL_TOKENS) + continuation_pieces(texts, tokenizer),
                                            continuing_subword_prefix="##", show_progress=show_progress)
        tokenizer.train_from_iterator(texts, trainer, length=len(texts))
        # rebuilt from the vocabulary alone: the "##c" pieces are ordinary tokens, not special ones
        return cls._from_vocab_dict(tokenizer.get_vocab(), lowercase, model_max_length)

    # ---- vocabulary -----------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size()

    def __len__(self):
        return self.vocab_size

    def get_vocab(self) -> dict[str, int]:
        return self._tokenizer.get_vocab()

    def tokenize(self, text: str) -> list[str]:
        """WordPiece tokens of `text`, without [CLS]/[SEP]."""
        return self._tokenizer.encode(text, add_special_tokens=False).tokens

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, str):
            return self._tokenizer.token_to_id(tokens) if tokens in self.get_vocab() else self.unk_token_id
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def convert_ids_to_tokens(self, ids):
        if isinstance(ids, (int, np.integer)):
            return self._tokenizer.id_to_token(int(ids))
        return [self._tokenizer.id_to_token(int(i)) for i in ids]

    # ---- encoding ---------------------------------------------------------------------------

    def encode(self, text, text_pair=None, add_special_tokens=True) -> list[int]:
        return self._tokenizer.encode(text, text_pair, add_special_tokens=add_special_tokens).ids

    def encode_batch_ids(self, texts, add_special_tokens=False) -> list[list[int]]:
        """Token ids for many texts at once (the `tokenizers` library works in parallel)."""
        return [e.ids for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=add_special_tokens)]

    def encode_windows(self, question, context, max_length, stride):
        """[CLS] question [SEP] context-window [SEP] for overlapping windows over a long context
        (`stride` tokens shared by neighbours).  Each window: (ids, type ids, character offsets,
        sequence ids: 0 question, 1 context, None special)."""
        self._tokenizer.enable_truncation(max_length, stride=stride, strategy="only_second")
        try:
            first = self._tokenizer.encode(question, context)
        except Exception as e:
            raise ValueError(f"could not window the context ({e}); is the question longer than "
                             f"max_length {max_length}?") from None
        finally:
            self._tokenizer.no_truncation()
        return [(e.ids, e.type_ids, e.offsets, e.sequence_ids) for e in [first, *first.overflowing]]

    def __call__(self, text, text_pair=None, padding=False, truncation=False, max_length=None,
                 add_special_tokens=True, is_split_into_words=False, return_tensors=None) -> BatchEncoding:
        """Encode one text or a list (optionally paired with `text_pair`) into (B, T) arrays.

        padding:    False (all sequences must then have one length), True / "longest", "max_length"
        truncation: False, True / "longest_first" (trim the longer of a pair first), "only_first",
                    "only_second"; lengths count [CLS] and [SEP].  max_length defaults to
                    model_max_length.
        is_split_into_words: a text is a list of words (a batch a list of such lists), each word
                    split into pieces on its own; `word_ids()` maps pieces back to the words.
        return_tensors: None or "np" (minibert works in NumPy: the arrays are always NumPy's).
        """
        if return_tensors not in (None, "np"):
            raise ValueError(f"return_tensors={return_tensors!r}: minibert works in NumPy; use 'np' (or leave it out)")
        texts = self._as_batch(text, is_split_into_words, "text")
        if text_pair is not None:
            pairs = self._as_batch(text_pair, is_split_into_words, "text_pair")
            if len(pairs) != len(texts):
                raise ValueError(f"{len(texts)} texts but {len(pairs)} text pairs")
            inputs = list(zip(texts, pairs))
        else:
            inputs = texts
        if not inputs:
            raise ValueError("nothing to encode: the list of texts is empty")
        length = self.model_max_length if max_length is None else int(max_length)

        if truncation is True:
            truncation = "longest_first"
        if truncation:
            if truncation not in ("longest_first", "only_first", "only_second"):
                raise ValueError(f"unknown truncation strategy {truncation!r}")
            self._tokenizer.enable_truncation(length, strategy=truncation)
        try:
            encodings = self._tokenizer.encode_batch(inputs, add_special_tokens=add_special_tokens,
                                                     is_pretokenized=is_split_into_words)
        except Exception as e:                        # e.g. a pair too short for only_second
            raise ValueError(f"could not encode: {e}") from None
        finally:
            self._tokenizer.no_truncation()

        lengths = [len(e.ids) for e in encodings]
        if padding is True or padding == "longest":
            width = None
        elif padding == "max_length":
            width = length
        elif padding in (False, None, "do_not_pad"):
            if len(set(lengths)) > 1:
                raise ValueError(f"sequences have different lengths ({min(lengths)} to {max(lengths)}): "
                                 f"pass padding=True to pad them into one array")
            width = None
        else:
            raise ValueError(f"unknown padding {padding!r}: use True, 'longest' or 'max_length'")
        batch = pad_batch([{"input_ids": e.ids, "token_type_ids": e.type_ids} for e in encodings],
                          self.pad_token_id, length=width)
        return BatchEncoding(dict(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                                  attention_mask=batch["attention_mask"]), encodings)

    @staticmethod
    def _as_batch(text, is_split_into_words, name) -> list:
        """One input or a list of them, as a list; checks the kind (strings, or lists of words)."""
        if not is_split_into_words:
            texts = [text] if isinstance(text, str) else list(text)
            if not all(isinstance(t, str) for t in texts):
                raise TypeError(f"{name} must be a string or a list of strings (for lists of words pass "
                                f"is_split_into_words=True)")
            return texts
        if isinstance(text, str):
            raise TypeError(f"with is_split_into_words=True, {name} is a list of words (or a list of such lists)")
        texts = [text] if all(isinstance(w, str) for w in text) else list(text)
        if not all(isinstance(t, (list, tuple)) and all(isinstance(w, str) for w in t) for t in texts):
            raise TypeError(f"with is_split_into_words=True, {name} is a list of words (or a list of such lists)")
        return [list(t) for t in texts]

    def decode(self, ids, skip_special_tokens=True) -> str:
        return self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def batch_decode(self, sequences, skip_special_tokens=True) -> list[str]:
        """`decode` for each row of a (B, T) array or each list of ids (padding is a special token)."""
        return [self.decode(ids, skip_special_tokens) for ids in sequences]

    # ---- saving -----------------------------------------------------------------------------

    def save_pretrained(self, directory) -> None:
        """Write tokenizer.json, vocab.txt, tokenizer_config.json and special_tokens_map.json."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        vocab = sorted(self.get_vocab().items(), key=lambda kv: kv[1])
        special = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                   "cls_token": "[CLS]", "mask_token": "[MASK]"}
        settings = {"tokenizer_class": "BertTokenizer", "do_lower_case": self.do_lower_case,
                    "model_max_length": self.model_max_length, **special}
        write_atomic(directory / TOKENIZER_FILE, lambda tmp: self._tokenizer.save(tmp))
        write_atomic(directory / VOCAB_FILE, lambda tmp: Path(tmp).write_text(
            "".join(tok + "\n" for tok, _ in vocab), encoding="utf-8"))
        for name, content in ((TOKENIZER_CONFIG_FILE, settings), ("special_tokens_map.json", special)):
            write_atomic(directory / name, lambda tmp, c=content: Path(tmp).write_text(
                json.dumps(c, indent=2) + "\n", encoding="utf-8"))
