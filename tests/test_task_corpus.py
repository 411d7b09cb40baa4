"""A pretraining corpus from task files: the text columns read, labels ignored, evaluation text
never pretrained on (dropped with a warning, or the run refused), masked LM alone by default."""

import json
from pathlib import Path

import pytest
from helpers import one_line_error, tiny_config

from minibert.cli import main
from minibert.data.finetuning import DataError
from minibert.data.task_corpus import (CorpusReader, eval_siblings, held_out_files, is_eval_split, read_task_texts)
from minibert.data.token_cache import TokenizedCorpus
from minibert.training.pretrain import PretrainArgs, TrainingError, pretrain

WORDS = "good bad film plot actor scene music story long short funny dull warm cold bright slow".split()


def sentences(n, offset=0):
    """n different sentences of 6 to 9 words."""
    return [" ".join(WORDS[(i * 7 + j * 3 + offset) % len(WORDS)] for j in range(6 + i % 4)) + f" number{i + offset}"
            for i in range(n)]


def write_tsv(path, texts, header=True):
    rows = ["sentence\tlabel"] if header else []
    rows += [f"{t}\t{'positive' if i % 2 else 'negative'}" for i, t in enumerate(texts)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


# ---- reading ---------------------------------------------------------------------------------

def test_each_format_gives_its_text_columns(tmp_path):
    """TSV with and without a header (a pair file: both sentences), CSV and JSONL by column name,
    CoNLL's words joined; --text-column by name and by position; labels never read as text."""
    tsv = write_tsv(tmp_path / "a.tsv", ["A fine film.", "A dull  plot."])
    assert read_task_texts(tsv) == [["A fine film."], ["A dull plot."]]
    pair = tmp_path / "pair.tsv"
    pair.write_text("The cat sat.\tA cat was sitting.\tentailment\nIt rains.\tThe sun shines.\tcontradiction\n")
    assert read_task_texts(pair) == [["The cat sat.", "A cat was sitting."], ["It rains.", "The sun shines."]]
    assert read_task_texts(pair, text_column="1") == [["A cat was sitting."], ["The sun shines."]]
    csv = tmp_path / "a.csv"
    csv.write_text('id,text,label\n1,"Great, really great.",1\n2,Awful.,0\n')
    assert read_task_texts(csv) == [["Great, really great."], ["Awful."]]
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"premise": "P one.", "hypothesis": "H one.", "label": 0}\n'
                     '{"premise": "P two.", "hypothesis": "H two.", "label": 2}\n')
    assert read_task_texts(jsonl) == [["P one.", "H one."], ["P two.", "H two."]]
    assert read_task_texts(jsonl, text_column="hypothesis") == [["H one."], ["H two."]]
    conll = tmp_path / "a.conll"
    conll.write_text("-DOCSTART- O\n\nEU B-ORG\nrejects O\nGerman B-MISC\n\nPeter B-PER\nBlackburn I-PER\n")
    assert read_task_texts(conll) == [["EU rejects German"], ["Peter Blackburn"]]


def test_bad_task_files_are_named(tmp_path):
    tsv = write_tsv(tmp_path / "a.tsv", ["One.", "Two."])
    with pytest.raises(DataError, match=r"has no column 'review': its columns are 'sentence', 'label'"):
        read_task_texts(tsv, text_column="review")
    ragged = tmp_path / "ragged.tsv"
    ragged.write_text("sentence\tlabel\nOne.\tpositive\nTwo.\n")
    with pytest.raises(DataError, match=r"ragged.tsv:3: expected 2 tab-separated columns"):
        read_task_texts(ragged)
    numbers = tmp_path / "numbers.jsonl"
    numbers.write_text('{"text": 3, "label": 1}\n')
    with pytest.raises(DataError, match=r"record 1: column\(s\) text must hold text"):
        read_task_texts(numbers)
    conll = tmp_path / "a.conll"
    conll.write_text("EU B-ORG\n")
    with pytest.raises(DataError, match="drop --text-column"):
        read_task_texts(conll, text_column="0")


# ---- evaluation text is never pretrained on ---------------------------------------------------------

def test_held_out_files_are_found_and_left_out(tmp_path):
    """train.tsv's dev and test files are found beside it; an evaluation split given as the corpus
    is refused; a held-out sentence is left out however it is spaced or cased."""
    train = write_tsv(tmp_path / "train.tsv", ["A fine film.", "The  plot is DULL.", "Music, warm."])
    dev = write_tsv(tmp_path / "dev.tsv", ["the plot is dull."])
    test = tmp_path / "test.csv"
    test.write_text("sentence,label\nNothing shared.,1\n")
    other = write_tsv(tmp_path / "other.tsv", ["Music, warm."])
    assert eval_siblings(train) == [dev, test] and eval_siblings(dev) == [] and eval_siblings(other) == []
    assert [is_eval_split(p) for p in ("dev.tsv", "sst-test.csv", "validation_matched.jsonl", "train.tsv",
                                        "devotion.tsv", "latest.tsv")] == [True, True, True, False, False, False]
    files = held_out_files([train], exclude=str(other))
    assert files == [other, dev, test]
    reader = CorpusReader(None, files)
    assert list(reader.documents(train)) == [["A fine film."]]
    assert reader.overlap([train]) == (2, 3)
    with pytest.raises(DataError, match="named as an evaluation split"):
        held_out_files([dev])
    with pytest.raises(FileNotFoundError, match="--exclude .*missing.tsv: no such file"):
        held_out_files([train], exclude=str(tmp_path / "missing.tsv"))
    with pytest.raises(DataError, match="both the corpus and a held-out file"):
        held_out_files([train, other], exclude=str(other))
    # what is read decides the cache: another text column or other held-out text is another corpus
    assert len({CorpusReader(None, []).fingerprint(), CorpusReader("0", []).fingerprint(),
                reader.fingerprint()}) == 3


@pytest.fixture
def task_dir(tmp_path):
    """A train/dev/test triple; two dev sentences and one test sentence are in train too."""
    train = sentences(120)
    write_tsv(tmp_path / "train.tsv", train)
    write_tsv(tmp_path / "dev.tsv", [train[3].upper(), train[50]] + sentences(10, offset=500))
    write_tsv(tmp_path / "test.tsv", ["  " + train[7]] + sentences(10, offset=900))
    config = tmp_path / "config.json"
    tiny_config(hidden_size=32, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64).to_json_file(config)
    return tmp_path


def task_args(task_dir, out, **kw):
    base = dict(corpus=str(task_dir / "train.tsv"), output_dir=str(out), config_file=str(task_dir / "config.json"),
                vocab_size=200, max_seq_length=32, batch_size=4, max_steps=4, eval_fraction=0.1, eval_every=2,
                save_every=2, log_every=1, max_eval_examples=16)
    base.update(kw)
    return PretrainArgs(**base)


def test_a_task_file_pretrains_without_its_evaluation_sentences(task_dir, tmp_path, capsys):
    """`minibert pretrain --corpus train.tsv`: masked LM alone (said in args.json), a vocabulary of
    its own, one document an example, and none of the dev and test sentences in what it reads: the
    overlap is left out with a warning that counts it."""
    out = tmp_path / "run"
    assert main(["pretrain", "--corpus", str(task_dir / "train.tsv"), "--output", str(out), "--config",
                 str(task_dir / "config.json"), "--vocab-size", "200", "--max-seq-length", "32", "--batch-size",
                 "4", "--steps", "4", "--eval-every", "2", "--save-every", "2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "warning: 3 of the corpus's 120 sentences are also in" in printed and "dev.tsv" in printed
    stored = json.loads((out / "args.json").read_text())
    assert stored["objective"] == "mlm" and "NSP" not in printed
    assert json.loads((out / "model" / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    cache = Path(__import__("os").environ["MINIBERT_CACHE"]) / "tokens"
    from minibert.tokenization import BertTokenizer
    tokenizer = BertTokenizer.from_pretrained(out / "tokenizer")
    corpora = [TokenizedCorpus(d) for d in cache.iterdir() if (d / "meta.json").is_file()
               and str((task_dir / "train.tsv").resolve()) in json.loads((d / "meta.json").read_text())["files"]]
    assert len(corpora) == 1 and len(corpora[0]) == 117
    read = {tokenizer.decode(ids) for d in range(len(corpora[0])) for ids in corpora[0][d]}
    train = sentences(120)
    held = {train[3], train[7], train[50]}
    assert {tokenizer.decode(tokenizer(s).input_ids[0][1:-1]) for s in held}.isdisjoint(read)
    assert len(read) == 117


def test_a_task_corpus_refuses_what_would_mislead(task_dir, tmp_path, capsys):
    """The dev file as the corpus, NSP on independent sentences, a column that is not there, a
    --text-column for a text corpus, a corpus that is nothing but held-out text: one line each."""
    out = str(tmp_path / "run")
    common = ["--output", out, "--config", str(task_dir / "config.json"), "--vocab-size", "200", "--quiet"]
    cases = [(["--corpus", str(task_dir / "dev.tsv")], "is named as an evaluation split"),
             (["--corpus", str(task_dir / "train.tsv"), "--objective", "mlm+nsp"],
              "its examples are independent sentences"),
             (["--corpus", str(task_dir / "train.tsv"), "--text-column", "review"], "train.tsv has no column 'review'"),
             (["--text-column", "0"], "names a column of a task file")]
    for flags, needle in cases:
        assert main(["pretrain", *flags, *common]) == 2
        one_line_error(capsys, needle)
    copy = write_tsv(tmp_path / "mine.tsv", sentences(12, offset=500)[:10])
    assert main(["pretrain", "--corpus", str(copy), "--exclude", str(task_dir / "dev.tsv"), *common]) == 2
    one_line_error(capsys, "every sentence of corpus", "nothing is left to pretrain on")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
    with pytest.raises(TrainingError, match="independent sentences"):
        pretrain(task_args(task_dir, tmp_path / "api", objective="mlm+nsp"), progress=False)


def test_a_text_corpus_keeps_its_objective(task_dir, tmp_path):
    """Text in documents still defaults to BERT's MLM + NSP; --exclude works for it too."""
    text = tmp_path / "domain.txt"
    train = sentences(60)
    text.write_text("\n\n".join("\n".join(train[i:i + 5]) for i in range(0, 60, 5)) + "\n")
    out = tmp_path / "text"
    pretrain(task_args(task_dir, out, corpus=str(text), exclude=str(task_dir / "dev.tsv")), progress=False)
    assert json.loads((out / "args.json").read_text())["objective"] == "mlm+nsp"
