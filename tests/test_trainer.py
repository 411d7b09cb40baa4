"""The pretraining loop: learning, exact resume, checkpoints transformers reads, NaN and Ctrl-C
handling, and the command line's errors."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
import transformers
from helpers import tiny_config

from minibert import BertForPreTraining
from minibert.cli import main
from minibert.data.pretraining import read_documents
from minibert.tools.fill_mask import fill_mask
from minibert.training.pretrain import DEFAULT_CORPUS, PretrainArgs, TrainingError, checkpoint_dirs, pretrain


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    """The first 40 chapters of the shipped corpus (Genesis and part of Exodus)."""
    path = tmp_path_factory.mktemp("corpus") / "small.txt"
    docs = read_documents(DEFAULT_CORPUS)[:40]
    path.write_text("\n\n".join("\n".join(d) for d in docs) + "\n")
    return path


@pytest.fixture(scope="module")
def small_tokenizer(small_corpus, tmp_path_factory):
    """One vocabulary for runs that must agree exactly (WordPiece training is not deterministic)."""
    from minibert.tokenization import BertTokenizer
    path = tmp_path_factory.mktemp("tokenizer")
    BertTokenizer.train([small_corpus], vocab_size=400, show_progress=False).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def model_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "config.json"
    tiny_config(hidden_size=32, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1).to_json_file(path)
    return path


def args_for(corpus, config, out, **kw):
    base = dict(corpus=str(corpus), output_dir=str(out), config_file=str(config), vocab_size=400,
                max_seq_length=32, batch_size=8, max_steps=24, learning_rate=3e-3, warmup_steps=4,
                eval_fraction=0.1, eval_every=8, save_every=8, log_every=1, max_eval_examples=64)
    base.update(kw)
    return PretrainArgs(**base)


def losses(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in records if r["split"] == "train"]


def test_loss_decreases_and_the_run_directory_is_complete(small_corpus, model_config, tmp_path):
    out = tmp_path / "run"
    # unigram_bias_init off: the MLM head then starts at a uniform guess, a loss we can state
    result = pretrain(args_for(small_corpus, model_config, out, max_steps=60, unigram_bias_init=False),
                      progress=False)
    steps = losses(out)
    assert [s for s, _ in steps] == list(range(1, 61))
    first, last = np.mean([v for _, v in steps[:5]]), np.mean([v for _, v in steps[-5:]])
    # It starts at a uniform guess, ln 400 + ln 2 = 6.68; 60 steps take it half a nat below that.
    assert abs(first - (np.log(400) + np.log(2))) < 0.1 and last < first - 0.5, (first, last)
    assert {"args.json", "metrics.jsonl", "curve.png", "model"} <= set(os.listdir(out))
    assert [p.name for p in checkpoint_dirs(out)] == ["checkpoint-0000056", "checkpoint-0000060"]
    evals = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    assert [e["step"] for e in evals] == [8, 16, 24, 32, 40, 48, 56, 60]
    assert {"mlm_accuracy", "nsp_accuracy", "mlm_baseline_accuracy", "loss"} <= set(evals[-1])
    assert result.last_eval == evals[-1]
    png = (out / "curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


class _Crash(Exception):
    pass


def _stop_at(step, at):
    if step == at:
        raise _Crash(f"simulated crash after step {at}")


def test_mlm_bias_starts_at_log_unigram_frequencies(small_corpus, small_tokenizer, model_config, tmp_path):
    """The first update runs at learning rate 0 (warmup), so after it the bias is still its start:
    log of the add-one-smoothed token frequencies of the training split; zero when switched off."""
    from minibert.data.pretraining import split_documents, tokenize_documents
    from minibert.tokenization import BertTokenizer
    seen = []                                     # the bias after the one update of each run

    def grab(step, model, record):
        seen.append(model.params["cls.predictions.bias"].copy())

    for on in (True, False):
        args = args_for(small_corpus, model_config, tmp_path / str(on), tokenizer=str(small_tokenizer),
                        max_steps=1, unigram_bias_init=on)
        pretrain(args, progress=False, on_step=grab)
    train_docs, _ = split_documents(read_documents(str(small_corpus)), args.eval_fraction, args.seed)
    tokenizer = BertTokenizer.from_pretrained(small_tokenizer)
    freq = np.ones(tokenizer.vocab_size)
    for doc in tokenize_documents(train_docs, tokenizer):
        for sentence in doc:
            np.add.at(freq, sentence, 1)
    np.testing.assert_allclose(seen[0], np.log(freq / freq.sum()), rtol=1e-6)
    assert np.all(seen[1] == 0.0)


def test_resume_continues_exactly(small_corpus, small_tokenizer, model_config, tmp_path):
    full = tmp_path / "full"
    pretrain(args_for(small_corpus, model_config, full, tokenizer=str(small_tokenizer)), progress=False)
    part = tmp_path / "part"
    with pytest.raises(_Crash):
        pretrain(args_for(small_corpus, model_config, part, tokenizer=str(small_tokenizer)),
                 progress=False, on_step=lambda step, model, record: _stop_at(step, 13))
    # The run died after step 13; the last checkpoint is step 8.  Resume redoes 9..24.
    assert checkpoint_dirs(part)[-1].name == "checkpoint-0000008"
    pretrain(PretrainArgs(output_dir=str(part)), resume=True, progress=False)
    ours, reference = losses(part), losses(full)
    assert [s for s, _ in ours] == list(range(1, 25))           # steps 14.. logged once, not twice
    np.testing.assert_array_equal([v for _, v in ours], [v for _, v in reference])
    for a, b in zip(sorted((part / "model").iterdir()), sorted((full / "model").iterdir())):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_crash_leaves_the_last_checkpoint(small_corpus, model_config, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(_Crash):
        pretrain(args_for(small_corpus, model_config, out), progress=False,
                 on_step=lambda step, model, record: _stop_at(step, 13))
    assert [p.name for p in checkpoint_dirs(out)] == ["checkpoint-0000008"]
    assert not [p for p in out.iterdir() if p.name.startswith(".checkpoint-")]   # no half-written ones


def test_checkpoint_loads_in_transformers_with_the_same_predictions(small_corpus, model_config, tmp_path):
    out = tmp_path / "run"
    pretrain(args_for(small_corpus, model_config, out, max_steps=16), progress=False)
    ours = BertForPreTraining.from_pretrained(out / "model")
    hf = transformers.BertForPreTraining.from_pretrained(out / "model", attn_implementation="eager").eval()
    enc = ours.tokenizer(["In the beginning God created the [MASK] and the earth."])
    logits = ours(enc.input_ids, enc.attention_mask, enc.token_type_ids).prediction_logits
    with torch.no_grad():
        ref = hf(**{k: torch.tensor(v) for k, v in enc.items()}).prediction_logits.numpy()
    np.testing.assert_allclose(logits, ref, atol=1e-5 * np.abs(ref).max())
    assert (logits.argmax(-1) == ref.argmax(-1)).all()
    hf_tok = transformers.AutoTokenizer.from_pretrained(out / "model")
    assert hf_tok("In the beginning")["input_ids"] == ours.tokenizer("In the beginning").input_ids[0].tolist()


def test_nan_loss_stops_with_the_previous_checkpoint_intact(small_corpus, model_config, tmp_path):
    out = tmp_path / "run"

    def poison(step, model, record):
        if step == 10:
            model.params["bert.encoder.layer.0.output.dense.weight"][0, 0] = np.nan

    with pytest.raises(TrainingError, match=r"loss is nan at step 11: stopped; the last good checkpoint "
                                            r"is .*checkpoint-0000008"):
        pretrain(args_for(small_corpus, model_config, out), progress=False, on_step=poison)
    good = BertForPreTraining.from_pretrained(checkpoint_dirs(out)[-1])
    assert all(np.isfinite(v).all() for v in good.params.values())
    assert not (out / "model").exists()


def test_ctrl_c_saves_and_resume_finishes(small_corpus, model_config, tmp_path):
    out = tmp_path / "run"

    def interrupt(step, model, record):
        if step == 5:
            os.kill(os.getpid(), signal.SIGINT)

    result = pretrain(args_for(small_corpus, model_config, out), progress=False, on_step=interrupt)
    assert result.interrupted and result.step == 5
    assert checkpoint_dirs(out)[-1].name == "checkpoint-0000005"
    finished = pretrain(PretrainArgs(output_dir=str(out)), resume=True, progress=False)
    assert finished.step == 24 and (out / "model" / "model.safetensors").is_file()


def test_fill_mask_on_a_trained_model(small_corpus, model_config, tmp_path, capsys):
    out = tmp_path / "run"
    pretrain(args_for(small_corpus, model_config, out, max_steps=40), progress=False)
    model = BertForPreTraining.from_pretrained(out / "model")
    (candidates,) = fill_mask(model, "And God said, Let there be [MASK].", top_k=3)
    assert len(candidates) == 3 and candidates[0][1] >= candidates[1][1] >= candidates[2][1]
    assert 0.0 < sum(p for _, p in candidates) <= 1.0
    assert main(["fill-mask", "--model", str(out / "model"), "the [MASK] of God", "--top-k", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("the [MASK] of God\n[MASK]:\n") and len(printed.splitlines()) == 4
    assert main(["fill-mask", "--model", str(out / "model"), "no mask here"]) == 2
    assert "the text has no [MASK] token" in capsys.readouterr().err


@pytest.mark.parametrize("setup, message", [
    ("missing", "corpus not found"),
    ("empty", "is empty"),
    ("single", "single document"),
    ("seq", "max_seq_length 100 is longer than the model's max_position_embeddings (64)"),
    ("unwritable", "is not writable"),
    ("exists", "already holds a run: pass --resume"),
])
def test_cli_errors_are_one_line(setup, message, small_corpus, model_config, tmp_path, capsys):
    corpus, out, extra = small_corpus, tmp_path / "run", []
    if setup == "missing":
        corpus = tmp_path / "none.txt"
    elif setup == "empty":
        corpus = tmp_path / "empty.txt"
        corpus.write_text("\n")
    elif setup == "single":
        corpus = tmp_path / "one.txt"
        corpus.write_text("One sentence.\nAnother sentence.\n")
    elif setup == "seq":
        extra = ["--max-seq-length", "100"]
    elif setup == "unwritable":
        out = tmp_path / "file"
        out.write_text("a file, not a directory")
        out = out / "run"
    elif setup == "exists":
        out.mkdir()
        (out / "metrics.jsonl").write_text("")
    code = main(["pretrain", "--corpus", str(corpus), "--output", str(out), "--config", str(model_config),
                 "--steps", "2", "--quiet", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("minibert: error: ") and message in err and len(err.strip().splitlines()) == 1


def test_help_everywhere():
    for argv in (["--help"], ["pretrain", "--help"], ["fill-mask", "--help"]):
        done = subprocess.run([sys.executable, "-m", "minibert", *argv], capture_output=True, text=True)
        assert done.returncode == 0 and "usage: minibert" in done.stdout
