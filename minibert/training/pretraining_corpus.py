"""What a pretraining run reads of its corpus: the files, the reader of their documents (a task
file's text, the held-out files' sentences left out), the objective the corpus implies, and the
text its vocabulary is trained on."""

from __future__ import annotations

from ..data.pretraining import corpus_files, read_file_documents
from ..data.task_corpus import CorpusReader, held_out_files, is_task_file, read_task_texts
from .loop import TrainingError

VOCAB_SAMPLE_CHARS = 200_000_000       # a vocabulary is trained on at most this much of the training text


def default_objective(files) -> str:
    """Masked LM alone for a task file (its examples are independent sentences: no next sentence to
    predict), BERT's masked LM + next sentence prediction for text in documents."""
    return "mlm" if any(is_task_file(path) for path in files) else "mlm+nsp"


def corpus_reader(args) -> tuple[list, CorpusReader]:
    """The corpus's files and the reader of their documents (the held-out files' sentences left
    out), every option about them checked."""
    files = corpus_files(args.corpus)
    tasks = [path for path in files if is_task_file(path)]
    if tasks and args.objective == "mlm+nsp":
        raise TrainingError(f"corpus {tasks[0]} is a task file: its examples are independent sentences, with no "
                            f"next sentence in a document for next sentence prediction to learn; use "
                            f"--objective mlm (the default for a task file)")
    if args.text_column is not None and not tasks:
        raise TrainingError(f"--text-column {args.text_column} names a column of a task file (.tsv, .csv, .jsonl), "
                            f"but corpus {args.corpus} has none: a text corpus is one sentence a line")
    for path in tasks:
        read_task_texts(path, args.text_column)                # the corpus's own columns named first
    return files, CorpusReader(args.text_column, held_out_files(files, args.exclude))


def training_text(files, train_indices, limit=VOCAB_SAMPLE_CHARS, read_documents=read_file_documents) -> list[str]:
    """The training documents' sentences, read file by file, up to `limit` characters (a larger
    corpus trains its vocabulary on its first part)."""
    wanted, texts, size, index = set(train_indices), [], 0, 0
    for path in files:
        for document in read_documents(path):
            if index in wanted:
                texts.extend(document)
                size += sum(map(len, document))
                if size >= limit:
                    return texts
            index += 1
    return texts


def check_held_out(args, files, reader: CorpusReader, say):
    """Refuse a corpus that is nothing but held-out text; warn (`say`) how many sentences are left out."""
    if not reader.held_out:
        return
    dropped, total = reader.overlap(files)
    held = ", ".join(map(str, reader.held_out_files))
    if dropped == total:
        raise TrainingError(f"every sentence of corpus {args.corpus} is in the held-out file(s) {held}: nothing "
                            f"is left to pretrain on")
    if dropped:
        say(f"warning: {dropped} of the corpus's {total} sentences are also in {held}: left out, so that no "
            f"evaluation sentence is pretrained on")
