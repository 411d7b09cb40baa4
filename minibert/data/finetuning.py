"""Fine-tuning data: reading the four task formats and turning them into model inputs.

    classify  TSV  sentence<TAB>label             (or .csv / .jsonl with text and label columns)
    pair      TSV  sentence_a<TAB>sentence_b<TAB>label  (or .csv / .jsonl: sentence1, sentence2, label)
    tag       CoNLL columns: one token a line, its tag in the last column, a blank line between
              sentences (-DOCSTART- lines skipped)
    qa        SQuAD v1.1 JSON: data -> paragraphs -> context, qas -> question, answers

Word-level tags go on the first WordPiece of each word, IGNORE_INDEX (-100) on the rest (they are not scored),
as in the BERT paper's NER setup (section 5.3).  QA contexts longer than the window are split
into overlapping windows (`doc_stride` tokens of overlap); a window that does not contain the
whole answer points at [CLS] (position 0), as transformers' examples do.
A malformed line raises `DataError` naming the file and line.
"""

from __future__ import annotations

import errno
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..layers.cross_entropy import IGNORE_INDEX


class DataError(ValueError):
    """A malformed input file: the message names the file and line (or entry)."""


# ---- reading ---------------------------------------------------------------------------------

def read_text_file(path):
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a directory: give the data file itself")
    if path.exists() and not path.is_file():
        raise DataError(f"{path} is not a regular file (a FIFO, device or socket): give a data file")
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    try:
        return path, path.read_text(encoding="utf-8")
    except PermissionError:
        raise PermissionError(errno.EACCES, "permission denied: this user may not read the data file", str(path)) from None
    except UnicodeDecodeError as e:
        raw = path.read_bytes()
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path} is not UTF-8 text: line {line}, byte {e.start} is 0x{raw[e.start]:02x} ({e.reason}); "
                        f"convert it (for Latin-1: iconv -f latin1 -t utf-8)") from None


def _lines(path):
    path, text = read_text_file(path)
    return path, text.splitlines()


def read_tsv(path, pair=False, labelled=True):
    """-> (texts, pairs or None, labels as strings).  A first line ending in 'label' is a header.
    With `labelled=False` (texts to predict) the label column may be left out: labels is then None
    when no line has one."""
    path, lines = _lines(path)
    n_cols = 3 if pair else 2
    allowed = (n_cols,) if labelled else (n_cols - 1, n_cols)
    texts, pairs, labels = [], [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if number == 1 and cols[-1].strip().lower() == "label":
            continue
        if len(cols) not in allowed or not all(c.strip() for c in cols):
            layout = "sentence_a<TAB>sentence_b" if pair else "sentence"
            layout += "<TAB>label" if labelled else "[<TAB>label]"
            raise DataError(f"{path}:{number}: expected {' or '.join(map(str, allowed))} non-empty tab-separated "
                            f"columns ({layout}), got {len(cols)}: {line[:60]!r}")
        texts.append(cols[0].strip())
        if pair:
            pairs.append(cols[1].strip())
        labels.append(cols[-1].strip() if len(cols) == n_cols else None)
    if not texts:
        raise DataError(f"{path} has no examples")
    if not labelled and None in labels:
        labels = None
    return texts, (pairs if pair else None), labels


# the text columns of a .csv or .jsonl file, by name, as the datasets library's GLUE-style sets have them
TEXT_COLUMNS = {False: (("text",), ("sentence",), ("sentence1",), ("review",)),
                True: (("sentence1", "sentence2"), ("text", "text_pair"), ("premise", "hypothesis"),
                       ("question", "sentence"), ("question1", "question2"))}
LABEL_COLUMNS = ("label", "labels")


def csv_records(path, text):
    """(rows as dicts by the header's names, where(i) naming row i's line) of a CSV file's text."""
    import csv
    import io
    try:
        records = list(csv.DictReader(io.StringIO(text)))
    except csv.Error as e:
        raise DataError(f"{path} is not readable as CSV ({e})") from None
    return records, lambda i: f"{path}:{i + 2}"                  # line 1 is the header


def jsonl_records(path, text):
    """(one JSON object a line, where(i) naming record i) of a JSON Lines file's text."""
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{number}: not a JSON object ({e.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
    return records, lambda i: f"{path}: record {i + 1}"


def read_sentences(path, pair=False, labelled=True):
    """-> (texts, pairs or None, labels as strings), from TSV (read_tsv), or from a .csv (a header
    row, then comma-separated, quoted as CSV quotes) or a .jsonl (one JSON object a line) file as
    the datasets library reads them: the columns by name (TEXT_COLUMNS, LABEL_COLUMNS)."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        return read_tsv(path, pair, labelled)
    path, text = read_text_file(path)
    records, where = (csv_records if suffix == ".csv" else jsonl_records)(path, text)
    if not records:
        raise DataError(f"{path} has no examples")
    names = set(records[0])
    columns = next((c for c in TEXT_COLUMNS[pair] if set(c) <= names), None)
    if columns is None:
        wanted = " or ".join("+".join(c) for c in TEXT_COLUMNS[pair])
        raise DataError(f"{path} has columns {sorted(names)}; a {'pair' if pair else 'sentence'} file needs {wanted}")
    label = next((c for c in LABEL_COLUMNS if c in names), None)
    if labelled and label is None:
        raise DataError(f"{path} has no label column ({' or '.join(LABEL_COLUMNS)}); it has {sorted(names)}")
    texts, pairs, labels = [], [], []
    for i, record in enumerate(records):
        values = [record.get(c) for c in columns]
        if not all(isinstance(v, str) and v.strip() for v in values):
            raise DataError(f"{where(i)}: {', '.join(columns)} must be non-empty text, got {values}")
        texts.append(values[0].strip())
        if pair:
            pairs.append(values[1].strip())
        gold = record.get(label) if label else None
        labels.append(None if gold in (None, "") else str(gold).strip())
    if labelled and None in labels:
        raise DataError(f"{where(labels.index(None))}: no {label}")
    if not labelled and all(g is None for g in labels):
        labels = None
    elif not labelled and None in labels:
        raise DataError(f"{where(labels.index(None))}: no {label}, where other examples have one")
    return texts, (pairs if pair else None), labels


def read_conll(path, labelled=True):
    """-> (sentences as word lists, tag lists).  With `labelled=False` (words to tag) a line may
    hold the word alone; tags is then None."""
    path, lines = _lines(path)
    sentences, tags, words, word_tags = [], [], [], []
    for number, line in enumerate(lines + [""], start=1):
        if not line.strip():
            if words:
                sentences.append(words)
                tags.append(word_tags)
                words, word_tags = [], []
            continue
        cols = line.split()
        if cols[0] == "-DOCSTART-":
            continue
        if "\t" in line and len(line.split("\t")[0].split()) > 1:
            raise DataError(f"{path}:{number}: a whole sentence in the first column ({line[:60]!r}): a tagging file "
                            f"is CoNLL, one token a line with its tag, a blank line between sentences (this looks "
                            f"like a classification TSV)")
        if len(cols) < 2 and labelled:
            raise DataError(f"{path}:{number}: expected a token and its tag in columns, got {line[:60]!r}")
        words.append(cols[0])
        word_tags.append(cols[-1])
    if not sentences:
        raise DataError(f"{path} has no sentences")
    return sentences, (tags if labelled else None)


@dataclass
class QAExample:
    id: str
    question: str
    context: str
    answer_text: str | None = None      # the first answer (training target)
    answer_start: int | None = None     # its character offset in the context
    all_answers: list[str] = field(default_factory=list)


def read_squad(path) -> list[QAExample]:
    path, text = read_text_file(path)
    try:
        data = json.loads(text)["data"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not a SQuAD v1.1 JSON file with a 'data' list ({type(e).__name__}: {e})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: 'data' must be a list of articles, got a {type(data).__name__}")
    examples = []
    for a, article in enumerate(data):
        paragraphs = article.get("paragraphs", []) if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise DataError(f"{path}: data[{a}] must be an object with a 'paragraphs' list")
        for p, para in enumerate(paragraphs):
            where = f"{path}: data[{a}].paragraphs[{p}]"
            if not isinstance(para, dict) or not isinstance(para.get("context"), str) \
                    or not isinstance(para.get("qas"), list):
                raise DataError(f"{where} must be an object with a 'context' string and a 'qas' list")
            context = para["context"]
            for q, qa in enumerate(para["qas"]):
                if not isinstance(qa, dict) or "id" not in qa or not isinstance(qa.get("question"), str):
                    raise DataError(f"{where}.qas[{q}] needs an 'id' and a 'question' string")
                answers = qa.get("answers", [])
                if not isinstance(answers, list) or not all(
                        isinstance(x, dict) and isinstance(x.get("text"), str) for x in answers):
                    raise DataError(f"{where}.qas[{q}]: 'answers' must be a list of objects with a 'text' string")
                ex = QAExample(str(qa["id"]), qa["question"], context,
                               all_answers=[x["text"] for x in answers])
                if answers:
                    first = answers[0]
                    start = first.get("answer_start")
                    if not isinstance(start, int) or context[start:start + len(first["text"])] != first["text"]:
                        raise DataError(f"{where}.qas[{q}]: answer {first['text']!r} is not at "
                                        f"answer_start {start} of the context")
                    ex.answer_text, ex.answer_start = first["text"], start
                examples.append(ex)
    if not examples:
        raise DataError(f"{path} has no questions")
    return examples


# ---- turning examples into features ------------------------------------------------------------

def label_vocabulary(labels):
    """Sorted label names -> ids (numbers sort numerically, so '0', '1', '2' keep their order)."""
    names = sorted(set(labels), key=lambda s: (0, float(s), s) if _is_number(s) else (1, 0.0, s))
    return {name: i for i, name in enumerate(names)}


def _is_number(s):
    try:
        float(s)
        return True
    except ValueError:
        return False


def encode_tags(tokenizer, sentences, tags, label2id, max_length):
    """Word-level tags -> per-WordPiece labels: the tag on a word's first piece, IGNORE_INDEX elsewhere.
    `scored_words` lists the word each labelled piece stands for: a word that yields no piece (a
    lone combining accent) or is cut off by `max_length` is not scored."""
    features = []
    for words, word_tags in zip(sentences, tags):
        enc = tokenizer(list(words), is_split_into_words=True, truncation=True, max_length=max_length)
        ids, word_ids = enc.input_ids[0].tolist(), enc.word_ids(0)
        labels, scored_words, previous = [], [], None
        for w in word_ids:
            if w is None or w == previous:
                labels.append(IGNORE_INDEX)
            else:
                if word_tags[w] not in label2id:
                    raise DataError(f"tag {word_tags[w]!r} is not among the training tags {sorted(label2id)}")
                labels.append(label2id[word_tags[w]])
                scored_words.append(w)
            previous = w
        features.append({"input_ids": ids, "labels": labels, "scored_words": scored_words})
    return features


def encode_squad(tokenizer, examples, max_length=384, doc_stride=128):
    """Question + context windows with the answer's token span (0, 0 when outside a window).
    Neighbouring windows share `doc_stride` context tokens, which must be fewer than a window
    holds: max_length minus the question minus [CLS] and two [SEP]."""
    features = []
    for index, ex in enumerate(examples):
        room = max_length - len(tokenizer.tokenize(ex.question)) - 3      # context tokens a window holds
        if room < 1:
            raise DataError(f"question {ex.id!r} is {max_length - 3 - room} tokens long: no room for its context "
                            f"within max_length {max_length}; raise --max-length")
        if doc_stride >= room:
            raise DataError(f"doc_stride {doc_stride} must be smaller than the {room} context tokens a window of "
                            f"max_length {max_length} holds beside question {ex.id!r}: lower --doc-stride "
                            f"or raise --max-length")
        for window in tokenizer.encode_windows(ex.question, ex.context, max_length, doc_stride):
            ids, type_ids, offsets, sequence_ids = window
            context_tokens = [i for i, s in enumerate(sequence_ids) if s == 1]
            start = end = 0
            if ex.answer_start is not None:
                a0, a1 = ex.answer_start, ex.answer_start + len(ex.answer_text)
                first, last = context_tokens[0], context_tokens[-1]
                if offsets[first][0] <= a0 and offsets[last][1] >= a1:
                    start = next(i for i in context_tokens if offsets[i][1] > a0)
                    end = max(i for i in context_tokens if offsets[i][0] < a1)
            features.append({"input_ids": ids, "token_type_ids": type_ids, "offsets": offsets,
                             "context_tokens": context_tokens, "example_index": index,
                             "start_positions": start, "end_positions": end})
    return features
