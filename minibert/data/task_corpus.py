"""A pretraining corpus from a task's own files: the text of a fine-tuning file, labels ignored.

    minibert pretrain --corpus data/sentiment/train.tsv          # in-domain (Krishna et al. 2022)
    minibert pretrain --corpus train.tsv --init-from all-MiniLM   # task-adaptive (Gururangan et al. 2020)

A task file is read as the fine-tuning readers read it (minibert.data.finetuning):

    .tsv     tab-separated; a first line ending in "label"/"labels" is a header naming the columns.
             The text is every column but the last (the label), or the one column there is.
    .csv     a header row; .jsonl one JSON object a line.  The text columns by name, as the
             datasets library's sets have them (TEXT_COLUMNS: sentence1 + sentence2, text, ...).
    .conll   one token a line, its tag last, a blank line between sentences: the words, joined.

`text_column` (a column's name, or its 0-based position) names the text instead.  Each example
is one document of its sentences (one, or two for a pair).  The examples of a task file are
independent of each other, with no "next sentence" in a document to pair with, so such a corpus
pretrains with masked LM alone (`--objective mlm`, full-sentence packs; RoBERTa found that
dropping next sentence prediction costs nothing downstream, Liu et al. 2019, table 2).

Evaluation text is never pretrained on: the sentences of the held-out files (`exclude`, and the
dev/test files found beside a corpus file named train.*) are dropped from the corpus, with a
warning that counts them, and a corpus file that is itself named as an evaluation split is refused.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .finetuning import (LABEL_COLUMNS, TEXT_COLUMNS, DataError, csv_records, jsonl_records, read_conll,
                         read_text_file)
from .pretraining import read_file_documents

TASK_SUFFIXES = (".tsv", ".csv", ".jsonl", ".conll")
EVAL_SPLITS = ("dev", "validation", "valid", "val", "test", "eval")      # the names of held-out splits


def is_task_file(path) -> bool:
    return Path(path).suffix.lower() in TASK_SUFFIXES


def is_eval_split(path) -> bool:
    """A file named as a held-out split: dev.tsv, test.csv, validation_matched.jsonl, sst-dev.tsv ..."""
    words = re.split(r"[^a-z]+", Path(path).stem.lower())
    return any(word in EVAL_SPLITS for word in words)


def eval_siblings(path) -> list[Path]:
    """The held-out splits beside a training file: train.tsv -> dev.tsv, test.tsv, ... (any task
    suffix), sst-train.csv -> sst-dev.csv, ...  A file not named train.* has none."""
    path = Path(path)
    if "train" not in path.stem.lower():
        return []
    pattern = re.compile("train", re.IGNORECASE)
    found = []
    for split in EVAL_SPLITS:
        stem = pattern.sub(split, path.stem)
        for suffix in TASK_SUFFIXES:
            candidate = path.with_name(stem + suffix)
            if candidate.is_file() and candidate not in found:
                found.append(candidate)
    return found


# ---- reading a task file's text -------------------------------------------------------------

def _records(path):
    """(column names, records as dicts, where(i) for messages) of a .tsv, .csv or .jsonl file."""
    suffix = Path(path).suffix.lower()
    path, text = read_text_file(path)
    if suffix == ".tsv":
        rows = [(number, line.split("\t")) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
        if rows and rows[0][1][-1].strip().lower() in LABEL_COLUMNS:
            names = [c.strip() for c in rows[0][1]]
            rows = rows[1:]
        else:
            names = [str(i) for i in range(len(rows[0][1]))] if rows else []
        records, lines = [], []
        for number, cols in rows:
            if len(cols) != len(names):
                raise DataError(f"{path}:{number}: expected {len(names)} tab-separated columns as the first "
                                f"line has, got {len(cols)}: {text.splitlines()[number - 1][:60]!r}")
            records.append(dict(zip(names, cols)))
            lines.append(number)
        return names, records, lambda i: f"{path}:{lines[i]}"
    records, where = (csv_records if suffix == ".csv" else jsonl_records)(path, text)
    names = list(records[0]) if records else []
    return names, records, where


def _text_columns(path, names, text_column) -> list[str]:
    """The columns that hold the text: `text_column` (a name, or a 0-based position), else by name
    (TEXT_COLUMNS, pairs first), else every column but the label (the last, in a file without names)."""
    if text_column is not None:
        if text_column in names:
            return [text_column]
        if str(text_column).isdigit() and int(text_column) < len(names):
            return [names[int(text_column)]]
        raise DataError(f"{path} has no column {text_column!r}: its columns are "
                        f"{', '.join(map(repr, names)) or 'none'} (a name, or a 0-based position)")
    for columns in TEXT_COLUMNS[True] + TEXT_COLUMNS[False]:
        if set(columns) <= set(names):
            return list(columns)
    if names and all(n.isdigit() for n in names):                  # a TSV without a header: label last
        return names[:-1] if len(names) > 1 else names
    text = [n for n in names if n.lower() not in LABEL_COLUMNS]
    if not text:
        raise DataError(f"{path} has no text column (it has {', '.join(map(repr, names)) or 'none'}): "
                        f"name one with --text-column")
    return text


def read_task_texts(path, text_column=None) -> list[list[str]]:
    """A task file's examples as lists of their texts (labels and other columns ignored)."""
    path = Path(path)
    if path.suffix.lower() == ".conll":
        if text_column is not None:
            raise DataError(f"{path} is CoNLL (a token a line): its text is the first column; drop --text-column")
        sentences, _ = read_conll(path, labelled=False)
        return [[" ".join(words)] for words in sentences]
    names, records, where = _records(path)
    if not records:
        raise DataError(f"{path} has no examples")
    columns = _text_columns(path, names, text_column)
    examples = []
    for i, record in enumerate(records):
        values = [record.get(c) for c in columns]
        if not all(v is None or isinstance(v, str) for v in values):
            raise DataError(f"{where(i)}: column(s) {', '.join(columns)} must hold text, got {values}")
        texts = [" ".join(v.split()) for v in values if v and v.strip()]
        if texts:
            examples.append(texts)
    return examples


def file_sentences(path, text_column=None) -> list[str]:
    """Every sentence of a task file or of a text corpus file (one sentence a line)."""
    if is_task_file(path):
        return [text for example in read_task_texts(path, text_column) for text in example]
    return [sentence for document in read_file_documents(path) for sentence in document]


def normalise(sentence: str) -> str:
    """The form in which two sentences count as the same: spaces collapsed, case folded."""
    return " ".join(sentence.split()).casefold()


# ---- the reader a run uses --------------------------------------------------------------------

@dataclass
class CorpusReader:
    """Reads each corpus file's documents (a task file's examples, or a text file's blank-line
    separated documents), leaving out every sentence of the held-out files."""
    text_column: str | None = None
    held_out_files: list[Path] = field(default_factory=list)

    def __post_init__(self):
        self.held_out = {normalise(s) for path in self.held_out_files for s in file_sentences(path, self.text_column)}

    def _source(self, path):
        return read_task_texts(path, self.text_column) if is_task_file(path) else read_file_documents(path)

    def documents(self, path):
        """One file's documents, lists of sentences, without the held-out ones."""
        for document in self._source(path):
            kept = [s for s in document if normalise(s) not in self.held_out] if self.held_out else document
            if kept:
                yield kept

    def overlap(self, files) -> tuple[int, int]:
        """(sentences of `files` that are held-out text, all their sentences)."""
        dropped = total = 0
        for path in files:
            for document in self._source(path):
                total += len(document)
                dropped += sum(normalise(s) in self.held_out for s in document)
        return dropped, total

    def fingerprint(self) -> str:
        """What, beside the corpus's content, decides the documents: the text column and the held-out text."""
        h = hashlib.blake2b(digest_size=16)
        h.update(json.dumps([self.text_column, sorted(self.held_out)]).encode())
        return h.hexdigest()


def held_out_files(corpus_files, exclude=None) -> list[Path]:
    """The files whose sentences a run must not pretrain on: `exclude` (a comma-separated list) and
    the evaluation splits beside each task file named train.*; refuses a corpus file that is itself
    named as an evaluation split."""
    for path in corpus_files:
        if is_task_file(path) and is_eval_split(path):
            raise DataError(f"corpus {path} is named as an evaluation split: pretraining on the sentences a model "
                            f"is scored on makes the score a measure of memory; pretrain on the training "
                            f"file (its dev and test files are then left out of it)")
    files = [Path(p.strip()) for p in str(exclude or "").split(",") if p.strip()]
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"--exclude {path}: no such file (an evaluation file whose sentences are "
                                    f"never pretrained on)")
    for path in corpus_files:
        if is_task_file(path):
            files += [s for s in eval_siblings(path) if s not in files]
    resolved = {Path(p).resolve() for p in corpus_files}
    for path in files:
        if path.resolve() in resolved:
            raise DataError(f"{path} is both the corpus and a held-out file: drop it from --corpus or --exclude")
    return files
