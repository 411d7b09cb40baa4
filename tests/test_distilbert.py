"""DistilBERT against transformers on identical weights: outputs and every gradient, float64 and
float32, learned and sinusoidal positions, on both tiers of layers.  Tolerances as for BERT
(tests/hf_twins.py)."""

import numpy as np
import pytest
import torch
import transformers
from helpers import C, H, I, V, assert_grad_matches, rel_err
from hf_twins import TOL, TORCH_DTYPE, batch, compare_grads, twins

from minibert import (DistilBertConfig, DistilBertForMaskedLM, DistilBertForSequenceClassification,
                      DistilBertModel)

DTYPES = pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])


def config(**kw):
    fields = dict(vocab_size=V, dim=C, n_layers=2, n_heads=H, hidden_dim=I, max_position_embeddings=16,
                  dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0)
    fields.update(kw)
    return DistilBertConfig(**fields)


@DTYPES
@pytest.mark.parametrize("sinusoidal", [False, True], ids=["learned", "sinusoidal"])
def test_masked_lm_matches_transformers(dtype, sinusoidal, tier):
    cfg = config(sinusoidal_pos_embds=sinusoidal)
    ours, hf = twins(transformers.DistilBertForMaskedLM, DistilBertForMaskedLM, cfg, dtype)
    ids, mask, _, labels, _ = batch()
    out = ours(ids, mask, labels=labels, output_hidden_states=True, output_attentions=True)
    ref = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), labels=torch.tensor(labels),
             output_hidden_states=True, output_attentions=True)
    ref.loss.backward()
    tol = TOL[dtype]
    for a, b in zip(out.hidden_states, ref.hidden_states):
        assert rel_err(a, b.detach()) < tol["out"]
    for a, b in zip(out.attentions, ref.attentions):
        assert rel_err(a, b.detach()) < tol["out"]
    assert rel_err(out.logits, ref.logits.detach()) < tol["out"]
    assert rel_err(out.loss, ref.loss.item()) < tol["out"]
    grads = ours.backward()
    # transformers 5 leaves the sinusoidal table trainable (its init marks a temporary copy
    # requires_grad=False, not the parameter); DistilBERT, and transformers 4, keep it fixed.
    table_name = "distilbert.embeddings.position_embeddings.weight"
    compare_grads(grads, hf, tol["grad"], skip=(table_name,) if sinusoidal else ())
    if sinusoidal:   # the fixed table is HF's sin/cos and is not trained
        fresh = transformers.DistilBertForMaskedLM(transformers.DistilBertConfig(**cfg.to_dict()))
        table = fresh.distilbert.embeddings.position_embeddings.weight.detach().numpy()
        np.testing.assert_allclose(DistilBertForMaskedLM(cfg, dtype=np.float64).params[
            "distilbert.embeddings.position_embeddings.weight"], table, atol=1e-6)
        assert "distilbert.embeddings.position_embeddings.weight" not in grads


@DTYPES
@pytest.mark.parametrize("num_labels", [3, 1], ids=["classes", "regression"])
def test_sequence_classification_matches_transformers(dtype, num_labels, tier):
    ours, hf = twins(transformers.DistilBertForSequenceClassification, DistilBertForSequenceClassification,
                     config(num_labels=num_labels), dtype)
    ids, mask, _, _, _ = batch()
    labels = np.array([2, 0]) if num_labels == 3 else np.array([0.5, -1.0])
    out = ours(ids, mask, labels=labels)
    ref = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
             labels=torch.tensor(labels) if num_labels == 3 else torch.tensor(labels, dtype=TORCH_DTYPE[dtype]))
    ref.loss.backward()
    tol = TOL[dtype]
    assert rel_err(out.logits, ref.logits.detach()) < tol["out"]
    assert rel_err(out.loss, ref.loss.item()) < tol["out"]
    compare_grads(ours.backward(), hf, tol["grad"])


@DTYPES
@pytest.mark.parametrize("unpad", [False, True], ids=["padded", "unpadded"])
def test_bare_model_matches_transformers(dtype, tier, unpad):
    """Padded, at every position; unpadded, at the real tokens (zeros at the padded ones) for a
    loss that reads only those."""
    ours, hf = twins(transformers.DistilBertModel, DistilBertModel, config(), dtype)
    ours.unpad_inputs = unpad
    ids, mask, _, _, _ = batch()
    out = ours(ids, mask)
    ref = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state
    d = np.random.default_rng(0).standard_normal(ref.shape).astype(dtype)
    keep = np.ones(mask.shape, dtype=bool)
    if unpad:
        keep = mask == 1
        assert not keep.all() and np.all(out.last_hidden_state[~keep] == 0.0)
        d[~keep] = 0.0
    (ref * torch.tensor(d)).sum().backward()
    assert rel_err(out.last_hidden_state[keep], ref.detach().numpy()[keep]) < TOL[dtype]["out"]
    compare_grads(ours.backward(d), hf, TOL[dtype]["grad"])


def test_train_mode_passes_finite_differences():
    """Dropout everywhere (no dropout after the attention projection, as DistilBERT)."""
    cfg = config(n_layers=1, dropout=0.2, attention_dropout=0.1, seq_classif_dropout=0.3, num_labels=3)
    model = DistilBertForSequenceClassification(cfg, dtype=np.float64).train()
    for v in model.params.values():
        v += np.random.default_rng(0).standard_normal(v.shape) * 0.1
    ids, mask, _, _, _ = batch()

    def loss():
        model.rng = np.random.default_rng(5)
        return model(ids, mask, labels=[0, 2]).loss

    loss()
    grads = model.backward()
    for name in ("pre_classifier.weight", "classifier.bias", "distilbert.transformer.layer.0.attention.out_lin.weight",
                 "distilbert.transformer.layer.0.ffn.lin1.bias", "distilbert.embeddings.LayerNorm.weight"):
        assert_grad_matches(grads[name], loss, model.params[name], name)


def test_checkpoints_round_trip_with_transformers(tmp_path):
    ours, hf = twins(transformers.DistilBertForMaskedLM, DistilBertForMaskedLM, config(), np.float32)
    hf.save_pretrained(tmp_path / "hf")
    loaded, info = DistilBertForMaskedLM.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    ids, mask, _, _, _ = batch()
    np.testing.assert_allclose(loaded(ids, mask).logits, ours(ids, mask).logits, rtol=1e-6, atol=1e-6)
    ours.save_pretrained(tmp_path / "ours")
    back, hf_info = transformers.DistilBertForMaskedLM.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not hf_info["missing_keys"] and not hf_info["unexpected_keys"]
    with torch.no_grad():
        ref = back.eval()(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    real = mask == 1                          # minibert leaves the padded positions out (models/packing.py)
    np.testing.assert_allclose(ours(ids, mask).logits[real], ref[real], atol=1e-5)
    # An encoder checkpoint into the classifier: the head is new and reported.
    DistilBertModel(config()).save_pretrained(tmp_path / "enc")
    cls, info = DistilBertForSequenceClassification.from_pretrained(tmp_path / "enc", output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight", "pre_classifier.bias",
                                            "pre_classifier.weight"]


def test_config_errors_use_distilbert_names():
    with pytest.raises(ValueError, match=r"DistilBertConfig.dim \(10\) must be divisible by n_heads \(3\)"):
        DistilBertConfig(dim=10, n_heads=3)
