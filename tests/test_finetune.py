"""Fine-tuning: readers and their errors, sub-token alignment, metrics, and each head learning a
small synthetic task from scratch to near-perfect accuracy within a few hundred steps."""

import json
import os
import random
import signal

import numpy as np
import pytest
from helpers import lock_held_by_another_process, one_line_error, tiny_config

from minibert import BertForQuestionAnswering, BertForSequenceClassification, BertModel
from minibert.cli import main
from minibert.data.finetuning import DataError, encode_squad, encode_tags, read_conll, read_squad, read_tsv
from minibert.files import MetricsLog
from minibert.tokenization import BertTokenizer
from minibert.tools.predict import best_span, predict
from minibert.training.finetune import FinetuneArgs, finetune
from minibert.training.metrics import entity_f1, entity_spans, exact_match, macro_f1, tagging_scheme, token_f1

WORDS = [f"w{i}" for i in range(40)]
NUMBERS = [str(n) for n in range(10, 30)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A randomly initialised small encoder with a tokenizer that knows the synthetic words."""
    path = tmp_path_factory.mktemp("model")
    texts = [" ".join(WORDS + NUMBERS + ["answer", ":", "the", "is", "un", "play", "able"])] * 5
    tok = BertTokenizer.train_from_texts(texts, vocab_size=200, min_frequency=1, show_progress=False)
    config = tiny_config(vocab_size=tok.vocab_size, hidden_size=32, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)
    model = BertModel(config, seed=0)
    model.tokenizer = tok
    model.save_pretrained(path)
    return path


def sentence(rng, with_number):
    words = [rng.choice(WORDS) for _ in range(rng.randint(4, 8))]
    if with_number:
        words.insert(rng.randint(0, len(words)), rng.choice(NUMBERS))
    return words


def write_tsv(path, rows):
    path.write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


# ---- readers ----------------------------------------------------------------------------------

def test_tsv_reader_and_errors(tmp_path):
    f = write_tsv(tmp_path / "a.tsv", [("sentence", "label"), ("good film", "pos"), ("bad", "neg")])
    assert read_tsv(f) == (["good film", "bad"], None, ["pos", "neg"])
    f.write_text("a\tb\tyes\nonly two\tcols\n")
    with pytest.raises(DataError, match=r"a.tsv:2: expected 3 non-empty tab-separated columns"):
        read_tsv(f, pair=True)
    f.write_text("no tab here\n")
    with pytest.raises(DataError, match=r"a.tsv:1: expected 2"):
        read_tsv(f)


def test_conll_reader_and_alignment(tmp_path, model_dir):
    f = tmp_path / "ner.conll"
    f.write_text("-DOCSTART- -X- O O\n\nw1 NN B-PER\nanswers NNS O\n17 CD B-NUM\n\nw2 B-LOC\n")
    sentences, tags = read_conll(f)
    assert sentences == [["w1", "answers", "17"], ["w2"]] and tags[0] == ["B-PER", "O", "B-NUM"]
    tok = BertTokenizer.from_pretrained(model_dir)
    assert tok.tokenize("answers") == ["answer", "##s"]               # a word split into pieces
    (feat, _) = encode_tags(tok, sentences, tags, {"O": 0, "B-PER": 1, "B-NUM": 2, "B-LOC": 3}, 32)
    pieces = tok.convert_ids_to_tokens(feat["input_ids"])
    labels = feat["labels"]
    assert pieces[0] == "[CLS]" and labels[0] == -100 and labels[-1] == -100
    first = pieces.index("answer")
    n_pieces = 2
    assert labels[first] == 0 and labels[first + 1:first + n_pieces] == [-100] * (n_pieces - 1)
    assert [lab for lab in labels if lab != -100] == [1, 0, 2]     # one label per word
    f.write_text("w1 B-PER\nlonely\n")
    with pytest.raises(DataError, match=r"ner.conll:2: expected a token and its tag"):
        read_conll(f)


def squad_file(path, items):
    """items: (context, question, answer text or None)."""
    paragraphs = []
    for i, (context, question, answer) in enumerate(items):
        answers = [] if answer is None else [{"text": answer, "answer_start": context.index(answer)}]
        paragraphs.append({"context": context, "qas": [{"id": str(i), "question": question,
                                                         "answers": answers}]})
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}))
    return path


def test_squad_reader_windows_and_answer_alignment(tmp_path, model_dir):
    rng = random.Random(0)
    words = [rng.choice(WORDS) for _ in range(60)]
    words[45:48] = ["answer", ":", "w7"]
    context = " ".join(words)
    f = squad_file(tmp_path / "qa.json", [(context, "what is the answer ?", "w7")])
    examples = read_squad(f)
    tok = BertTokenizer.from_pretrained(model_dir)
    features = encode_squad(tok, examples, max_length=32, doc_stride=8)
    assert len(features) > 2                                          # long context: several windows
    inside = [x for x in features if x["start_positions"] > 0]
    assert inside and len(inside) < len(features)                     # others point at [CLS]
    for x in inside:                                                  # the span decodes to the answer
        s, e = x["start_positions"], x["end_positions"]
        assert context[x["offsets"][s][0]:x["offsets"][e][1]] == "w7"
        assert tok.decode(x["input_ids"][s:e + 1]) == "w7"
    bad = json.loads(f.read_text())
    bad["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 3
    f.write_text(json.dumps(bad))
    with pytest.raises(DataError, match=r"qa.json: data\[0\].paragraphs\[0\].qas\[0\]: answer 'w7' is not at"):
        read_squad(f)
    f.write_text("[1, 2]")
    with pytest.raises(DataError, match="not a SQuAD v1.1 JSON file"):
        read_squad(f)


@pytest.mark.parametrize("scheme", ["IOB", "IOBES", "BILOU"])
@pytest.mark.filterwarnings("ignore:F-score is ill-defined")      # seqeval on draws with no entity at all
def test_entity_f1_agrees_with_seqeval(scheme):
    """seqeval (a test oracle only): conlleval's reading for IOB, strict mode for IOBES and BILOU,
    on random tag sequences, well-formed and not."""
    import seqeval.metrics
    import seqeval.scheme
    prefixes = {"IOB": "BI", "IOBES": "BIES", "BILOU": "BILU"}[scheme]
    tags = ["O"] + [f"{p}-{t}" for p in prefixes for t in ("PER", "LOC")]
    rng = np.random.default_rng(0)
    for trial in range(300):
        gold = [[str(t) for t in rng.choice(tags, rng.integers(1, 9))] for _ in range(3)]
        pred = [[t if rng.random() < 0.7 else str(rng.choice(tags)) for t in g] for g in gold]
        if scheme == "IOB":
            expected = seqeval.metrics.f1_score(gold, pred)
        else:
            expected = seqeval.metrics.f1_score(gold, pred, mode="strict",
                                                scheme=getattr(seqeval.scheme, scheme))
        assert entity_f1(pred, gold, scheme) == pytest.approx(expected, abs=1e-12), (gold, pred)
    assert tagging_scheme(tags) == scheme


def test_tagging_schemes():
    assert entity_spans(["B-PER", "E-PER", "S-LOC"], "IOBES") == {("PER", 0, 2), ("LOC", 2, 3)}
    assert entity_spans(["B-PER", "L-PER", "U-LOC"], "BILOU") == {("PER", 0, 2), ("LOC", 2, 3)}
    perfect = [["B-PER", "I-PER", "E-PER", "O", "S-LOC"]]
    assert entity_f1(perfect, perfect, "IOBES") == 1.0
    with pytest.raises(ValueError, match="tag 'X-PER' is in no tagging scheme"):
        tagging_scheme(["O", "X-PER"])
    with pytest.raises(ValueError, match="mix IOBES and BILOU"):
        tagging_scheme(["B-A", "E-A", "L-A"])


def test_metrics():
    assert entity_spans(["B-PER", "I-PER", "O", "B-LOC", "I-PER"]) == {("PER", 0, 2), ("LOC", 3, 4), ("PER", 4, 5)}
    assert entity_f1([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]]) == 1.0
    assert entity_f1([["B-PER", "O", "O"]], [["B-PER", "I-PER", "O"]]) == 0.0   # wrong span: no credit
    assert macro_f1([0, 1, 1], [0, 1, 0], 2) == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert exact_match("The Eiffel tower!", ["eiffel tower"]) == 1.0
    assert token_f1("eiffel tower in paris", ["the eiffel tower"]) == pytest.approx(2 * 0.5 * 1 / 1.5)
    score, i, j = best_span(np.array([0., 5, 1, 0]), np.array([0., 0, 1, 9]), [1, 2, 3], max_answer_length=2)
    assert (i, j) == (2, 3)                                           # 5 + 9 is too long a span


# ---- learning -----------------------------------------------------------------------------------

def run(model_dir, tmp_path, task, train, dev, **kw):
    settings = dict(learning_rate=3e-3, batch_size=16, warmup_ratio=0.05) | kw
    args = FinetuneArgs(model=str(model_dir), task=task, train_file=str(train), eval_file=str(dev),
                        output_dir=str(tmp_path / task), **settings)
    return finetune(args, progress=False)


def best_epoch(result):
    """The evaluation record of the epoch whose model is in best/ (the first to reach the best score)."""
    return next(r for r in result.history if r[result.metric_name] == result.best_metric)


def test_classify_learns_is_there_a_number(model_dir, tmp_path, capsys):
    rng = random.Random(1)
    rows = [(" ".join(sentence(rng, n)), "number" if n else "words") for n in [0, 1] * 400]
    rng.shuffle(rows)
    train, dev = write_tsv(tmp_path / "train.tsv", rows[:640]), write_tsv(tmp_path / "dev.tsv", rows[640:])
    result = run(model_dir, tmp_path, "classify", train, dev, epochs=6)   # 240 steps
    assert result.history[-1]["accuracy"] >= 0.97, result.history
    assert (result.best_dir / "model.safetensors").is_file() and (result.output_dir / "curve.png").is_file()
    config = json.loads((result.best_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "number", "1": "words"} and config["finetuning_task"] == "classify"
    # predict: the dev file (labels included, so accuracy is reported) and the same without labels
    out = tmp_path / "predictions.jsonl"
    assert main(["predict", "--model", str(result.best_dir), "--input", str(dev), "--output", str(out), "--quiet"]) == 0
    assert "wrote 160 predictions" in capsys.readouterr().err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in records] == [r[0] for r in rows[640:]]
    hits = np.mean([r["label"] == gold for r, (_, gold) in zip(records, rows[640:])])
    assert hits == pytest.approx(best_epoch(result)["accuracy"]) and hits >= 0.97
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-9 and r["score"] == r["probabilities"][r["label"]]
               for r in records)
    unlabelled = write_tsv(tmp_path / "texts.tsv", [(r[0],) for r in rows[640:650]])
    assert main(["predict", "--model", str(result.best_dir), "--input", str(unlabelled), "--quiet"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [p["label"] for p in printed] == [r["label"] for r in records[:10]]


def test_pair_learns_which_segment_holds_the_number(model_dir, tmp_path):
    """One number per pair, in A or in B: the label needs the segment (token type) information."""
    rng = random.Random(2)
    rows = []
    for _ in range(800):
        in_b = rng.random() < 0.5
        a, b = sentence(rng, not in_b), sentence(rng, in_b)
        rows.append((" ".join(a), " ".join(b), "B" if in_b else "A"))
    train, dev = write_tsv(tmp_path / "train.tsv", rows[:640]), write_tsv(tmp_path / "dev.tsv", rows[640:])
    result = run(model_dir, tmp_path, "pair", train, dev, epochs=8)       # 320 steps
    assert result.history[-1]["accuracy"] >= 0.95, result.history
    model = BertForSequenceClassification.from_pretrained(result.best_dir)
    predicted = predict(model, [(a, b) for a, b, _ in rows[640:]], batch_size=7)
    hits = np.mean([p["label"] == gold for p, (_, _, gold) in zip(predicted, rows[640:])])
    assert hits == pytest.approx(best_epoch(result)["accuracy"])


def test_tag_learns_numbers(model_dir, tmp_path):
    rng = random.Random(3)
    lines = []
    for _ in range(600):
        for w in sentence(rng, rng.random() < 0.7):
            lines.append(f"{w} {'B-NUM' if w in NUMBERS else 'O'}")
        lines.append("")
    (tmp_path / "train.conll").write_text("\n".join(lines[: len(lines) * 5 // 6]) + "\n")
    (tmp_path / "dev.conll").write_text("\n".join(lines[len(lines) * 5 // 6:]) + "\n")
    result = run(model_dir, tmp_path, "tag", tmp_path / "train.conll", tmp_path / "dev.conll", epochs=6)
    assert result.history[-1]["entity_f1"] >= 0.97, result.history
    # predict: a tag per word (not per WordPiece), from the dev file's first column
    words_only = tmp_path / "words.conll"
    words_only.write_text("\n".join(line.split(" ")[0] for line in lines[len(lines) * 5 // 6:]) + "\n")
    out = tmp_path / "tags.jsonl"
    assert main(["predict", "--model", str(result.best_dir), "--input", str(words_only), "--output", str(out),
                 "--quiet"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    _, gold = read_conll(tmp_path / "dev.conll")
    assert [len(r["tags"]) for r in records] == [len(g) for g in gold]
    token_accuracy = np.mean([t == g for r, gs in zip(records, gold) for t, g in zip(r["tags"], gs)])
    assert token_accuracy == pytest.approx(best_epoch(result)["token_accuracy"])


def test_qa_learns_the_word_after_answer(model_dir, tmp_path):
    rng = random.Random(4)
    items = []
    for _ in range(700):
        words = [rng.choice(WORDS[:30]) for _ in range(rng.randint(8, 16))]
        target = rng.choice(WORDS[30:])
        at = rng.randint(0, len(words))
        words[at:at] = ["answer", ":", target]
        items.append((" ".join(words), "what is the answer ?", target))
    train = squad_file(tmp_path / "train.json", items[:600])
    dev = squad_file(tmp_path / "dev.json", items[600:])
    result = run(model_dir, tmp_path, "qa", train, dev, epochs=8, max_length=48, doc_stride=16)
    assert result.history[-1]["exact_match"] >= 0.95, result.history
    # predict: the answer text, its character span and a probability, over windows of 48 tokens
    model = BertForQuestionAnswering.from_pretrained(result.best_dir)
    asked = [{"question": q, "context": c} for c, q, _ in items[600:]]
    answers = predict(model, asked, max_length=48, doc_stride=16)
    assert all(a["answer"] == x["context"][a["start"]:a["end"]] and 0 < a["score"] <= 1
               for a, x in zip(answers, asked))
    exact = np.mean([a["answer"] == target for a, (_, _, target) in zip(answers, items[600:])])
    assert exact == pytest.approx(best_epoch(result)["exact_match"])


@pytest.fixture(scope="module")
def dropout_model_dir(model_dir, tmp_path_factory):
    """The same small encoder with dropout on, so a resumed run must also restore the dropout masks."""
    path = tmp_path_factory.mktemp("dropout-model")
    model = BertModel.from_pretrained(model_dir, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    model.save_pretrained(path)
    return path


def test_evaluation_every_n_steps_and_an_exact_resume(dropout_model_dir, tmp_path, capsys):
    """Ctrl-C at step 7 saves; --resume ends where an uninterrupted run ends: the same metrics
    (all but the time), the same best model, the same final scores."""
    rng = random.Random(6)
    rows = [(" ".join(sentence(rng, n)), "number" if n else "words") for n in [0, 1] * 60]
    train, dev = write_tsv(tmp_path / "train.tsv", rows[:96]), write_tsv(tmp_path / "dev.tsv", rows[96:])

    def args(out):
        return FinetuneArgs(model=str(dropout_model_dir), task="classify", train_file=str(train), eval_file=str(dev),
                            output_dir=str(out), epochs=3, batch_size=16, learning_rate=3e-3, eval_steps=4)

    full = finetune(args(tmp_path / "full"), progress=False)
    assert [r["step"] for r in full.history] == [4, 8, 12, 16, 18]           # every 4 steps, and the end

    def interrupt(step, model):
        if step == 7:
            os.kill(os.getpid(), signal.SIGINT)

    cut = finetune(args(tmp_path / "cut"), progress=False, on_step=interrupt)
    assert cut.interrupted and cut.step == 7
    assert main(["finetune", "--resume", "--output", str(tmp_path / "cut"), "--epochs", "5"]) == 2
    one_line_error(capsys, "takes only --output and --quiet, not --epochs")
    assert main(["finetune", "--resume", "--output", str(tmp_path / "cut"), "--quiet"]) == 0
    records = [[{k: v for k, v in json.loads(line).items() if k != "seconds"}
                for line in (out / "metrics.jsonl").read_text().splitlines()] for out in (tmp_path / "full",
                                                                                        tmp_path / "cut")]
    assert records[0] == records[1]
    a = BertForSequenceClassification.from_pretrained(tmp_path / "full" / "best")
    b = BertForSequenceClassification.from_pretrained(tmp_path / "cut" / "best")
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


def test_early_stopping(model_dir, tmp_path, capsys):
    rng = random.Random(7)
    rows = [(" ".join(sentence(rng, n)), n) for n in [0, 1] * 40]
    train = write_tsv(tmp_path / "train.tsv", rows)
    # learning rate 0: the score never improves on the first evaluation, so patience 2 stops at the third
    assert cli_finetune(model_dir, "classify", train, train, tmp_path / "out", "--epochs", "5", "--lr", "0",
                        "--eval-steps", "2", "--early-stopping-patience", "2", "--batch-size", "16") == 0
    records = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "eval"] == [2, 4, 6]
    assert "done: best accuracy" in capsys.readouterr().out
    assert cli_finetune(model_dir, "classify", train, train, tmp_path / "out2", "--early-stopping-patience", "0") == 2
    one_line_error(capsys, "early_stopping_patience must be a positive integer")


def test_frozen_encoder_trains_only_the_head(model_dir, tmp_path):
    rng = random.Random(5)
    rows = [(" ".join(sentence(rng, n)), n) for n in [0, 1] * 100]
    train = write_tsv(tmp_path / "train.tsv", rows)
    result = run(model_dir, tmp_path, "classify", train, train, epochs=1, trainable_layers=0)
    from minibert import BertForSequenceClassification
    tuned = BertForSequenceClassification.from_pretrained(result.best_dir)
    original = BertModel.from_pretrained(model_dir)
    for k, v in original.params.items():
        np.testing.assert_array_equal(tuned.params["bert." + k], v)      # the encoder did not move


def test_cli_finetune_errors(model_dir, tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("fine\tpos\nbroken line\n")
    code = main(["finetune", "--model", str(model_dir), "--task", "classify", "--train", str(bad),
                 "--eval", str(bad), "--output", str(tmp_path / "out"), "--quiet"])
    assert code == 2 and "bad.tsv:2: expected 2" in capsys.readouterr().err


def test_cli_predict_errors(model_dir, tmp_path, capsys):
    texts = write_tsv(tmp_path / "texts.tsv", [("a sentence",)])
    code = main(["predict", "--model", str(model_dir), "--input", str(texts)])
    assert code == 2
    one_line_error(capsys, "holds BertModel, not a fine-tuned model: predict needs one of")
    from minibert import BertForTokenClassification
    tagger = BertForTokenClassification.from_pretrained(model_dir)
    tagger.save_pretrained(tmp_path / "tagger")
    assert main(["predict", "--model", str(tmp_path / "tagger"), "--input", str(texts), "--task", "classify"]) == 2
    one_line_error(capsys, "a BertForTokenClassification does not do the 'classify' task")
    assert main(["predict", "--model", str(tmp_path / "tagger"), "--input", str(tmp_path / "missing")]) == 2
    one_line_error(capsys, "data file not found")
    with pytest.raises(TypeError, match="inputs must be a list"):
        predict(tagger, "one text")


def test_cli_trainable_layers_flag():
    """One name for the idea: --trainable-layers on the command line, trainable_layers in Python."""
    from minibert.cli import build_parser
    a = build_parser().parse_args(["finetune", "--model", "m", "--task", "tag", "--train", "t", "--eval", "e",
                                   "--trainable-layers", "1"])
    assert a.trainable_layers == 1
    with pytest.raises(SystemExit):
        build_parser().parse_args(["finetune", "--model", "m", "--task", "tag", "--train", "t", "--eval", "e",
                                   "--train-layers", "1"])


# ---- bad input and faults (one-line errors, exit status 2, nothing lost) ----------------------

def cli_finetune(model_dir, task, train, dev, out, *extra):
    return main(["finetune", "--model", str(model_dir), "--task", task, "--train", str(train), "--eval", str(dev),
                 "--output", str(out), "--quiet", *extra])


def test_qa_from_the_command_line_with_its_default_stride(model_dir, tmp_path, capsys):
    """The windows' stride follows --max-length (max_length // 3, transformers' 128 of 384), and an
    impossible --doc-stride is named."""
    rng = random.Random(5)
    items = []
    for _ in range(12):
        words = [rng.choice(WORDS) for _ in range(70)]
        words[50:53] = ["answer", ":", "w9"]
        items.append((" ".join(words), "the answer is", "w9"))
    squad = squad_file(tmp_path / "qa.json", items)
    assert cli_finetune(model_dir, "qa", squad, squad, tmp_path / "qa", "--max-length", "48", "--epochs", "1") == 0
    assert "done: best f1" in capsys.readouterr().out
    assert cli_finetune(model_dir, "qa", squad, squad, tmp_path / "qa2", "--max-length", "48",
                        "--doc-stride", "60") == 2
    one_line_error(capsys, "doc_stride 60 must be smaller than the", "--doc-stride")


def test_an_existing_run_is_refused_unless_overwritten(model_dir, tmp_path, capsys):
    rng = random.Random(2)
    train = write_tsv(tmp_path / "t.tsv", [(" ".join(sentence(rng, n)), n) for n in [0, 1] * 20])
    pretraining_run = tmp_path / "pretrain-run"
    pretraining_run.mkdir()
    (pretraining_run / "metrics.jsonl").write_text('{"step": 1, "split": "train"}\n' * 440)
    assert cli_finetune(model_dir, "classify", train, train, pretraining_run) == 2
    one_line_error(capsys, "already holds a run (metrics.jsonl)", "--overwrite-output-dir")
    assert len((pretraining_run / "metrics.jsonl").read_text().splitlines()) == 440     # untouched
    out = tmp_path / "run"
    assert cli_finetune(model_dir, "classify", train, train, out, "--epochs", "1") == 0
    assert "done: best accuracy " in capsys.readouterr().out          # the metric, not "step"
    assert cli_finetune(model_dir, "classify", train, train, out, "--epochs", "1") == 2
    one_line_error(capsys, "already holds a run")
    assert cli_finetune(model_dir, "classify", train, train, out, "--epochs", "1", "--overwrite-output-dir") == 0


@pytest.mark.parametrize("flags, needle", [
    (["--epochs", "0"], "epochs must be a positive integer"),
    (["--batch-size", "0"], "batch_size must be a positive integer"),
    (["--max-length", "1"], "max_length must be at least 4"),
])
def test_impossible_settings_get_one_line(model_dir, tmp_path, capsys, flags, needle):
    rng = random.Random(3)
    train = write_tsv(tmp_path / "t.tsv", [(" ".join(sentence(rng, n)), n) for n in [0, 1] * 4])
    assert cli_finetune(model_dir, "classify", train, train, tmp_path / "out", *flags) == 2
    one_line_error(capsys, needle)


def test_bad_task_files_get_one_line(model_dir, tmp_path, capsys):
    single = write_tsv(tmp_path / "single.tsv", [("a w1 w2", "pos"), ("w3 w4", "pos")])
    assert cli_finetune(model_dir, "classify", single, single, tmp_path / "o1") == 2
    one_line_error(capsys, "single.tsv has a single label, 'pos'")
    latin1 = tmp_path / "latin1.tsv"
    latin1.write_bytes("caf\xe9 w1\tpos\nw2\tneg\n".encode("latin-1"))
    assert cli_finetune(model_dir, "classify", latin1, latin1, tmp_path / "o2") == 2
    one_line_error(capsys, "latin1.tsv is not UTF-8 text")
    no_answers = squad_file(tmp_path / "noans.json", [("w1 w2 w3 w4", "w5?", None)])
    good = squad_file(tmp_path / "good.json", [("w1 w2 answer : w3", "the answer is", "w3")])
    assert cli_finetune(model_dir, "qa", good, no_answers, tmp_path / "o3") == 2
    one_line_error(capsys, "noans.json: no question has an answer")
    for name, data in (("dict.json", {"data": {"title": "x"}}),
                       ("strings.json", {"data": [{"paragraphs": ["just text"]}]}),
                       ("notext.json", {"data": [{"paragraphs": [{"context": "a b", "qas": [
                           {"id": "1", "question": "q", "answers": [{"answer_start": 0}]}]}]}]})):
        path = tmp_path / name
        path.write_text(json.dumps(data))
        assert cli_finetune(model_dir, "qa", path, path, tmp_path / "o4") == 2
        one_line_error(capsys, name)


def test_tagging_scores_the_right_words_when_one_has_no_pieces(model_dir):
    """A lone combining accent normalises to nothing: no WordPiece, so it is not scored, and the
    words after it keep their own gold tags (a perfect predictor scores 1.0)."""
    from minibert.training.tasks import TagTask
    tok = BertTokenizer.from_pretrained(model_dir)
    sentences = [["w1", "\u0301", "w2", "w3"], ["w4", "w5"]]
    tags = [["B-X", "O", "B-Y", "I-Y"], ["O", "B-X"]]
    task = TagTask(FinetuneArgs(str(model_dir), "tag", "", "", max_length=32), tok)
    task.label2id = {"B-X": 0, "B-Y": 1, "I-Y": 2, "O": 3}
    features = encode_tags(tok, sentences, tags, task.label2id, 32)
    assert features[0]["scored_words"] == [0, 2, 3]
    perfect = [np.array([max(label, 0) for label in f["labels"]]) for f in features]
    scores = task.score(features, perfect, tags)
    assert scores == {"entity_f1": 1.0, "token_accuracy": 1.0}


@pytest.mark.parametrize("scheme,tags", [("IOBES", ["B-PER", "E-PER", "O", "S-LOC"]),
                                         ("BILOU", ["B-PER", "L-PER", "O", "U-LOC"])])
def test_tagging_reads_the_scheme_of_its_training_file(model_dir, tmp_path, scheme, tags):
    """A perfect IOBES or BILOU prediction scores 1.0 (B-PER E-PER is one two-word entity)."""
    from minibert.training.tasks import TagTask
    tok = BertTokenizer.from_pretrained(model_dir)
    path = tmp_path / "train.conll"
    path.write_text("".join(f"w{i} {t}\n" for i, t in enumerate(tags)) + "\n")
    task = TagTask(FinetuneArgs(str(model_dir), "tag", "", "", max_length=32), tok)
    features, gold = task.load(path, fit_labels=True)
    assert task.scheme == scheme
    perfect = [np.array([max(label, 0) for label in f["labels"]]) for f in features]
    assert task.score(features, perfect, gold)["entity_f1"] == 1.0
    only_the_first_word = [np.where(np.arange(len(f["labels"])) <= 1, perfect[0], task.label2id["O"])
                           for f in features]                # B-PER alone: no entity in this scheme
    assert task.score(features, only_the_first_word, gold)["entity_f1"] == 0.0
    path.write_text("w1 B-PER\nw2 X-PER\n\n")
    with pytest.raises(DataError, match="train.conll: tag 'X-PER' is in no tagging scheme"):
        task.load(path, fit_labels=True)


def test_a_run_owns_its_directory(model_dir, tmp_path, capsys):
    """A second run into a directory another process is using is refused; the lock dies with its
    process, so a run killed with SIGKILL leaves nothing stuck."""
    rng = random.Random(4)
    train = write_tsv(tmp_path / "t.tsv", [(" ".join(sentence(rng, n)), n) for n in [0, 1] * 8])
    out = tmp_path / "shared"
    out.mkdir()
    with lock_held_by_another_process(out) as pid:
        assert cli_finetune(model_dir, "classify", train, train, out, "--epochs", "1") == 2
        one_line_error(capsys, "is in use by another minibert run", f"process {pid}")
    assert cli_finetune(model_dir, "classify", train, train, out, "--epochs", "1") == 0


@pytest.mark.parametrize("task", ["classify", "tag"])
def test_gradient_accumulation_is_one_larger_batch(model_dir, tmp_path, task):
    """float64: batches of 16 as 4 micro-batches of 4 train the same (mean over examples for
    classification, over scored tokens for tagging) to 1e-12."""
    from safetensors.numpy import load_file
    rng = random.Random(8)
    if task == "classify":
        train = write_tsv(tmp_path / "train.tsv", [(" ".join(sentence(rng, n)), n) for n in [0, 1] * 40])
    else:
        lines = []
        for _ in range(80):
            lines += [f"{w} {'B-NUM' if w in NUMBERS else 'O'}" for w in sentence(rng, rng.random() < 0.7)] + [""]
        train = tmp_path / "train.conll"
        train.write_text("\n".join(lines) + "\n")
    runs = []
    for batch, accum in ((16, 1), (4, 4)):
        out = tmp_path / f"{task}-{batch}"
        finetune(FinetuneArgs(model=str(model_dir), task=task, train_file=str(train), eval_file=str(train),
                              output_dir=str(out), epochs=2, batch_size=batch, grad_accum=accum,
                              learning_rate=3e-3, dtype="float64"), progress=False)
        runs.append(out)
    losses = [[r["loss"] for r in MetricsLog(run / "metrics.jsonl").records() if r["split"] == "train"] for run in runs]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-12)
    a, b = (load_file(str(run / "checkpoint-0000010" / "model.safetensors")) for run in runs)
    for name, w in a.items():
        bound = 1e-15 if name.endswith("attention.self.key.bias") else 1e-12 * np.abs(w).max()
        assert np.abs(b[name] - w).max() <= bound, name


def test_two_mpi_ranks_fine_tune_as_one_process(model_dir, tmp_path, capsys):
    """float64, 33 examples (the last step of an epoch has one, so rank 1 has none): 2 ranks with
    batch 4 give the losses, scores, best-model choice and weights of 1 process with batch 8 to
    1e-12; only rank 0 speaks; a resume under another number of processes is refused."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path
    from safetensors.numpy import load_file
    rng = random.Random(5)
    rows = [(" ".join(sentence(rng, n)), "number" if n else "words") for n in [0, 1] * 16 + [1]]
    train, dev = write_tsv(tmp_path / "train.tsv", rows), write_tsv(tmp_path / "dev.tsv", rows[:12])
    common = ["finetune", "--model", str(model_dir), "--task", "classify", "--train", str(train), "--eval", str(dev),
              "--epochs", "2", "--eval-steps", "3", "--dtype", "float64", "--lr", "1e-3", "--quiet"]
    single, split = tmp_path / "single", tmp_path / "split"
    assert main([*common, "--output", str(single), "--batch-size", "8"]) == 0
    launcher = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", MINIBERT_NUM_THREADS="1")
    done = subprocess.run([launcher, "-n", "2", sys.executable, "-m", "minibert", *common, "--output", str(split),
                           "--batch-size", "4"], capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("done: best accuracy") == 1
    ours, reference = (MetricsLog(d / "metrics.jsonl").records() for d in (split, single))
    assert [(r["step"], r["split"]) for r in ours] == [(r["step"], r["split"]) for r in reference] and len(ours) > 4
    for a, b in zip(ours, reference):
        for key, value in b.items():
            if isinstance(value, float) and key not in ("seconds", "examples_per_s"):
                assert abs(a[key] - value) <= 1e-12 * max(abs(value), 1), (key, a, b)
    assert json.loads((split / "best" / "config.json").read_text()) == json.loads((single / "best" / "config.json").read_text())
    for sub in ("best", sorted(p.name for p in single.glob("checkpoint-*"))[-1]):
        mine, ref = (load_file(str(d / sub / "model.safetensors")) for d in (split, single))
        for name, value in ref.items():
            assert np.abs(mine[name] - value).max() <= 1e-12 * max(np.abs(value).max(), 1e-3), (sub, name)
    capsys.readouterr()
    assert main(["finetune", "--resume", "--output", str(split)]) == 2
    one_line_error(capsys, "was written by a run of 2 MPI process(es): resume it with as many (mpirun -np 2)")
