"""BertForMaskedLM against transformers (outputs and every gradient, both tiers, float64 and
float32), loading it from every kind of BERT checkpoint, and the fill-mask function against
transformers' own fill-mask pipeline."""

import json
import logging

import numpy as np
import pytest
import torch
import transformers
from helpers import tiny_config
from hf_twins import TOL, assert_close, batch, compare_grads, to_torch, twins

from minibert import BertForMaskedLM, BertForPreTraining, BertModel, BertTokenizer
from minibert.tools.fill_mask import fill_mask

DTYPES = pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])


@DTYPES
@pytest.mark.parametrize("act", ["gelu", "relu"])
def test_masked_lm_matches_transformers(dtype, act, tier):
    config = tiny_config(hidden_act=act, num_hidden_layers=2)
    ours, hf = twins(transformers.BertForMaskedLM, BertForMaskedLM, config, dtype)
    assert not any(k.startswith("bert.pooler") for k in ours.params)        # no pooler, as transformers
    ids, mask, types, labels, _ = batch()
    out = ours(ids, mask, types, labels=labels, output_hidden_states=True, output_attentions=True)
    ref = hf(*to_torch(ids, mask, types), labels=torch.tensor(labels), output_hidden_states=True,
             output_attentions=True)
    ref.loss.backward()
    tol = TOL[dtype]
    assert out.logits.dtype == dtype and out.logits.shape == tuple(ref.logits.shape)
    assert_close(out.logits, ref.logits, tol["out"], "logits")
    assert_close(out.loss, ref.loss.item(), tol["out"], "loss")
    for i, (a, b) in enumerate(zip(out.hidden_states, ref.hidden_states)):
        assert_close(a, b, tol["out"], f"hidden_states[{i}]")
    compare_grads(ours.backward(), hf, tol["grad"])


@DTYPES
def test_masked_only_prediction_gives_the_same_loss_and_gradients(dtype):
    config = tiny_config()
    model = BertForMaskedLM(config, dtype=dtype, seed=1)
    ids, mask, types, labels, _ = batch()
    full = model(ids, mask, types, labels=labels)
    g_full = model.backward()
    kept = model(ids, mask, types, labels=labels, predict_masked_only=True)
    g_kept = model.backward()
    assert kept.logits.shape == ((labels != -100).sum(), config.vocab_size)
    # Relative to the largest logit: the two products have different row counts, and BLAS may round
    # them differently, by a fraction of the terms' size, not of a result that happens to be near 0.
    np.testing.assert_allclose(kept.logits, full.logits[labels != -100], rtol=TOL[dtype]["out"],
                               atol=TOL[dtype]["out"] * np.abs(full.logits).max())
    assert abs(kept.loss - full.loss) <= TOL[dtype]["out"] * abs(full.loss)
    for k in g_full:
        np.testing.assert_allclose(g_kept[k], g_full[k], rtol=TOL[dtype]["grad"], atol=1e-7, err_msg=k)


def test_outputs_read_as_transformers_outputs():
    model = BertForMaskedLM(tiny_config())
    ids, mask, types, labels, _ = batch()
    out = model(ids, mask, types, labels=labels)
    assert out["logits"] is out.logits and out[0] == out.loss and out[1] is out.logits
    assert out.keys() == ["loss", "logits"] and "hidden_states" not in out and len(out) == 2
    assert out.to_tuple() == (out.loss, out.logits) and list(out) == ["loss", "logits"]
    no_loss = model(ids, mask, types)
    assert no_loss[0] is no_loss.logits                    # without labels the logits come first
    with pytest.raises(KeyError, match="'loss'.*fields set: logits"):
        no_loss["loss"]
    enc = BertModel(tiny_config())(ids, mask, types)
    last, pooled = enc.to_tuple()
    assert last is enc["last_hidden_state"] and pooled is enc.pooler_output


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Our BertForPreTraining, and transformers' BertForPreTraining, BertForMaskedLM and BertModel."""
    root = tmp_path_factory.mktemp("mlm-checkpoints")
    config = tiny_config()
    BertForPreTraining(config, seed=5).save_pretrained(root / "ours-pretraining")
    torch.manual_seed(0)
    hf_config = transformers.BertConfig(**config.to_dict())
    for cls in (transformers.BertForPreTraining, transformers.BertForMaskedLM, transformers.BertModel):
        cls(hf_config).save_pretrained(root / cls.__name__)
    return root


@pytest.mark.parametrize("source,missing", [
    ("ours-pretraining", []),
    ("BertForPreTraining", []),
    ("BertForMaskedLM", []),
    ("BertModel", ["cls.predictions.bias", "cls.predictions.transform.dense.weight",
                   "cls.predictions.transform.dense.bias", "cls.predictions.transform.LayerNorm.weight",
                   "cls.predictions.transform.LayerNorm.bias"]),
])
def test_masked_lm_loads_every_bert_checkpoint(checkpoints, source, missing, caplog):
    with caplog.at_level(logging.WARNING, logger="minibert"):
        ours, info = BertForMaskedLM.from_pretrained(checkpoints / source, dtype=np.float64,
                                                     output_loading_info=True)
    assert info["missing_keys"] == missing                   # a missing head is initialised and reported
    if missing:
        assert "newly initialised: cls.predictions.bias" in caplog.text
    hf = transformers.BertForMaskedLM.from_pretrained(checkpoints / source).double().eval()
    ids = np.array([[2, 7, 4, 9, 3]])
    logits = ours(ids).logits
    if not missing:                                          # the same weights: the same logits
        with torch.no_grad():
            ref = hf(torch.tensor(ids)).logits.numpy()
        np.testing.assert_allclose(logits, ref, rtol=1e-10, atol=1e-12)
    # ours saved, read back by transformers as a masked LM with nothing missing
    ours.save_pretrained(checkpoints / f"mlm-from-{source}")
    again, report = transformers.BertForMaskedLM.from_pretrained(checkpoints / f"mlm-from-{source}",
                                                                 output_loading_info=True)
    assert report["missing_keys"] == [] or set(report["missing_keys"]) <= {"cls.predictions.decoder.weight"}
    with torch.no_grad():
        np.testing.assert_allclose(again.double().eval()(torch.tensor(ids)).logits.numpy(), logits,
                                   rtol=1e-5, atol=1e-6)


def test_pretraining_model_loads_a_masked_lm_checkpoint(checkpoints):
    model, info = BertForPreTraining.from_pretrained(checkpoints / "BertForMaskedLM", output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["bert.pooler.dense.bias", "bert.pooler.dense.weight",
                                            "cls.seq_relationship.bias", "cls.seq_relationship.weight"]


# ---- fill-mask, against transformers' pipeline -------------------------------------------------

@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory):
    """A tiny masked LM with a real vocabulary, saved with its tokenizer."""
    words = ("the lord is my shepherd i shall not want he maketh me to lie down in green pastures "
             "and god said let there be light and there was light in the beginning god created the "
             "heaven and the earth").split()
    texts = [" ".join(words[i:i + 9]) for i in range(len(words) - 9)] * 4
    tok = BertTokenizer.train_from_texts(texts, vocab_size=120, show_progress=False)
    config = tiny_config(vocab_size=tok.vocab_size, max_position_embeddings=32)
    model = BertForMaskedLM(config, seed=3)
    for v in model.params.values():
        v += np.random.default_rng(0).standard_normal(v.shape).astype(v.dtype) * 0.5
    model.tokenizer = tok
    path = tmp_path_factory.mktemp("fill") / "mlm"
    model.save_pretrained(path)
    return path


def _round(result):
    """Scores to 9 digits (both sides compute in float64; the pipeline runs one text at a time,
    we pad a batch)."""
    if isinstance(result, dict):
        return {k: round(v, 9) if isinstance(v, float) else v for k, v in result.items()}
    return [_round(r) for r in result]


@pytest.mark.parametrize("inputs", [
    "the lord is my [MASK] .",                                     # one sentence, one mask
    "in the [MASK] god created the [MASK] .",                       # several masks
    ["and god said let there be [MASK] .", "he maketh me to [MASK] down"],   # several sentences
])
def test_fill_mask_returns_what_the_transformers_pipeline_returns(mlm_dir, inputs):
    model = BertForMaskedLM.from_pretrained(mlm_dir, dtype=np.float64)
    pipe = transformers.pipeline("fill-mask", model=str(mlm_dir), tokenizer=str(mlm_dir), device="cpu",
                                 dtype=torch.float64)
    ours = fill_mask(model, inputs, top_k=3)
    ref = pipe(inputs, top_k=3)
    assert _round(ours) == _round(ref)


@pytest.mark.parametrize("inputs", ["the lord is my [MASK] .", "in the [MASK] god created the [MASK] .",
                                    ["and god said let there be [MASK] .", "he maketh me to [MASK] down"]])
def test_fill_mask_targets_as_the_pipeline(mlm_dir, inputs, caplog):
    """targets=: only those words scored (softmax over the whole vocabulary), top-k capped at their
    number, a word outside the vocabulary scored by its first WordPiece with a warning."""
    model = BertForMaskedLM.from_pretrained(mlm_dir, dtype=np.float64)
    pipe = transformers.pipeline("fill-mask", model=str(mlm_dir), tokenizer=str(mlm_dir), device="cpu",
                                 dtype=torch.float64)
    targets = ["shepherd", "light", "earth", "lie", "beginningless"]
    assert "beginningless" not in model.tokenizer.get_vocab()
    with caplog.at_level("WARNING", logger="minibert"):
        ours = fill_mask(model, inputs, top_k=10, targets=targets)
    assert "'beginningless' is not in the model's vocabulary: scored by its first WordPiece" in caplog.text
    assert _round(ours) == _round(pipe(inputs, top_k=10, targets=targets))
    with pytest.raises(ValueError, match="none of the targets"):
        fill_mask(model, inputs, targets=["\u0301"])


def test_fill_mask_targets_from_the_command_line(mlm_dir, capsys):
    from minibert.cli import main
    assert main(["fill-mask", "--model", str(mlm_dir), "the lord is my [MASK] .", "--targets", "light, shepherd",
                 "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert sorted(c["token_str"] for c in printed) == ["light", "shepherd"]
    assert main(["fill-mask", "--model", str(mlm_dir), "the [MASK]", "--targets", " , "]) == 2
    assert "names no word" in capsys.readouterr().err


def test_fill_mask_errors(mlm_dir):
    model = BertForMaskedLM.from_pretrained(mlm_dir)
    with pytest.raises(ValueError, match="no \\[MASK\\] token"):
        fill_mask(model, "the lord is my shepherd")
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        fill_mask(model, "the [MASK]", top_k=0)
    with pytest.raises(ValueError, match="tokens long; the model takes at most 32"):
        fill_mask(model, "the [MASK] " + "lord " * 40)
    with pytest.raises(TypeError, match="masked-LM head"):
        fill_mask(BertModel(model.config), "the [MASK]", tokenizer=model.tokenizer)
