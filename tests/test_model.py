"""Model-level behaviour: state dicts by HF name, tied weights, dropout, initialisation, training."""

import numpy as np
import pytest
import transformers
from helpers import C, V, assert_grad_matches, tiny_config

from minibert import BertForPreTraining, BertModel
from minibert.layers import dropout_forward
from minibert.training.optim import AdamW

TIED = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")


def test_state_dict_names_and_shapes_are_transformers_own():
    config = tiny_config(num_hidden_layers=2)
    hf = transformers.BertForPreTraining(transformers.BertConfig(**config.to_dict()))
    ref = {k: tuple(v.shape) for k, v in hf.state_dict().items() if k not in TIED}
    ours = {k: v.shape for k, v in BertForPreTraining(config).state_dict().items()}
    assert list(ours) == list(ref)              # same names, same order
    assert ours == ref
    hf_base = transformers.BertModel(transformers.BertConfig(**config.to_dict()))
    assert {k: v.shape for k, v in BertModel(config).state_dict().items()} == \
        {k: tuple(v.shape) for k, v in hf_base.state_dict().items()}


def test_load_state_dict_reports_problems_by_name():
    model = BertForPreTraining(tiny_config())
    sd = model.state_dict()
    del sd["bert.pooler.dense.bias"]
    sd["bert.encoder.layer.9.output.dense.weight"] = np.zeros((3, 3))
    sd["cls.seq_relationship.weight"] = np.zeros((3, C))
    with pytest.raises(KeyError) as err:
        model.load_state_dict(sd)
    text = str(err.value)
    assert "missing keys: bert.pooler.dense.bias" in text
    assert "unexpected keys: bert.encoder.layer.9.output.dense.weight" in text
    assert "shape mismatch for cls.seq_relationship.weight: got (3, 12), model has (2, 12)" in text

    before = model.params["bert.embeddings.LayerNorm.weight"].copy()
    sd["bert.embeddings.LayerNorm.weight"] = before + 1.0
    report = model.load_state_dict(sd, strict=False)
    assert report.missing_keys == ["bert.pooler.dense.bias", "cls.seq_relationship.weight"]
    assert report.unexpected_keys == ["bert.encoder.layer.9.output.dense.weight"]
    np.testing.assert_array_equal(model.params["bert.embeddings.LayerNorm.weight"], before + 1.0)


def test_load_state_dict_casts_and_strict_failure_changes_nothing():
    model = BertForPreTraining(tiny_config())
    sd = {k: v.astype(np.float64) + 1.0 for k, v in model.state_dict().items()}
    model.load_state_dict(sd)
    assert all(v.dtype == np.float32 for v in model.params.values())
    snapshot = model.state_dict()
    del sd["bert.pooler.dense.bias"]
    with pytest.raises(KeyError):
        model.load_state_dict({k: v + 5.0 for k, v in sd.items()})
    for k, v in snapshot.items():
        np.testing.assert_array_equal(model.params[k], v)


def test_decoder_is_tied_to_the_word_embeddings():
    model = BertForPreTraining(tiny_config(), seed=0).eval()
    ids = np.array([[2, 5, 7, 3]])
    before = model(ids).prediction_logits
    # Not a constant: the transformed hidden state sums to ~0 over the hidden axis (LayerNorm with
    # its initial weight 1 and bias 0), so adding a constant to the row would barely move logit 9.
    model.params["bert.embeddings.word_embeddings.weight"][9] += np.linspace(-1.0, 1.0, C)
    after = model(ids).prediction_logits
    assert not np.allclose(before[..., 9], after[..., 9])
    assert "cls.predictions.decoder.weight" not in model.params
    # A checkpoint holding only the alias of the tied bias still loads it.
    sd = model.state_dict()
    sd["cls.predictions.decoder.bias"] = sd.pop("cls.predictions.bias") + 2.0
    model.load_state_dict(sd)
    np.testing.assert_array_equal(model.params["cls.predictions.bias"], sd["cls.predictions.decoder.bias"])


def test_initialisation_follows_transformers():
    config = tiny_config(vocab_size=400, hidden_size=48, num_attention_heads=4, initializer_range=0.05)
    p = BertForPreTraining(config, seed=0).params
    w = p["bert.encoder.layer.0.intermediate.dense.weight"]
    assert abs(w.std() - 0.05) < 0.005 and abs(w.mean()) < 0.005
    assert np.all(p["bert.embeddings.word_embeddings.weight"][config.pad_token_id] == 0.0)
    assert np.all(p["bert.encoder.layer.1.output.LayerNorm.weight"] == 1.0)
    assert np.all(p["bert.encoder.layer.1.output.dense.bias"] == 0.0)
    assert np.all(p["cls.predictions.bias"] == 0.0)
    same = BertForPreTraining(config, seed=0).params
    other = BertForPreTraining(config, seed=1).params
    assert all(np.array_equal(p[k], same[k]) for k in p)
    assert not np.array_equal(p["cls.seq_relationship.weight"], other["cls.seq_relationship.weight"])


def test_dropout_scales_and_zeroes_at_rate_p():
    x = np.ones((400, 500), dtype=np.float32)
    y, mask = dropout_forward(x, 0.25, np.random.default_rng(0), training=True)
    kept = y != 0
    assert abs(1.0 - kept.mean() - 0.25) < 0.005           # 200k draws: std of the rate ~0.001
    np.testing.assert_allclose(y[kept], 1.0 / 0.75, rtol=1e-6)
    assert y.dtype == np.float32
    y_eval, mask_eval = dropout_forward(x, 0.25, np.random.default_rng(0), training=False)
    assert y_eval is x and mask_eval is None


def test_dropout_in_the_model_is_seeded_and_off_in_eval():
    config = tiny_config(hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.2)
    ids = np.array([[2, 5, 7, 3, 9], [2, 9, 3, 11, 3]])
    a = BertForPreTraining(config, seed=7).train()(ids).prediction_logits
    b = BertForPreTraining(config, seed=7).train()(ids).prediction_logits
    c = BertForPreTraining(config, seed=8).train()(ids).prediction_logits
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    model = BertForPreTraining(config, seed=7).eval()
    np.testing.assert_array_equal(model(ids).prediction_logits, model(ids).prediction_logits)
    assert not np.allclose(model(ids).prediction_logits, a)


def test_whole_model_in_train_mode_passes_finite_differences():
    """Dropout on, float64: the model's backward (which reuses the forward's masks) against finite
    differences with the dropout generator re-seeded for every evaluation."""
    config = tiny_config(num_hidden_layers=1, hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.2)
    model = BertForPreTraining(config, seed=0, dtype=np.float64).train()
    rng = np.random.default_rng(0)
    for v in model.params.values():
        v += rng.standard_normal(v.shape) * 0.1
    ids = np.array([[2, 5, 7, 3, 9, 3], [2, 9, 3, 11, 0, 0]])
    mask = (ids != 0).astype(int)
    types = np.array([[0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 0, 0]])
    labels = np.full_like(ids, -100)
    labels[0, 2], labels[1, 1] = 7, 9
    nsl = np.array([1, 0])

    def loss():
        model.rng = np.random.default_rng(42)
        return model(ids, mask, types, labels=labels, next_sentence_label=nsl).loss

    loss()
    grads = model.backward()
    for name in ("bert.embeddings.token_type_embeddings.weight",
                 "bert.encoder.layer.0.attention.self.value.weight",
                 "bert.encoder.layer.0.intermediate.dense.bias",
                 "bert.encoder.layer.0.output.LayerNorm.weight",
                 "bert.pooler.dense.weight", "cls.predictions.transform.dense.weight",
                 "cls.predictions.bias", "cls.seq_relationship.weight"):
        assert_grad_matches(grads[name], loss, model.params[name], name)


def test_float32_stays_float32_everywhere():
    model = BertForPreTraining(tiny_config(), seed=0)
    ids = np.array([[2, 5, 7, 3], [2, 9, 3, 0]])
    out = model(ids, attention_mask=(ids != 0).astype(int), labels=ids, next_sentence_label=[0, 1],
                output_hidden_states=True, output_attentions=True)
    arrays = [out.prediction_logits, out.seq_relationship_logits, *out.hidden_states, *out.attentions]
    assert all(a.dtype == np.float32 for a in arrays)
    assert all(g.dtype == np.float32 for g in model.backward().values())


def test_overfits_one_batch_with_adamw():
    """A tiny model trained with our AdamW on one fixed batch drives MLM + NSP loss down by 90%."""
    config = tiny_config(vocab_size=50, hidden_size=32, num_attention_heads=4, intermediate_size=64)
    model = BertForPreTraining(config, seed=0)
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 50, (4, 12))
    ids[:, 0], ids[:, 6], ids[:, 11] = 2, 3, 3
    types = np.zeros_like(ids)
    types[:, 7:] = 1
    labels = np.full_like(ids, -100)
    labels[:, [2, 4, 8, 9]] = ids[:, [2, 4, 8, 9]]
    ids[:, [2, 4, 8, 9]] = 4                                   # [MASK]
    nsl = np.array([0, 1, 1, 0])
    optimizer = AdamW(model.params, lr=3e-3, weight_decay=0.01)
    losses = []
    for _ in range(300):
        losses.append(model(ids, token_type_ids=types, labels=labels, next_sentence_label=nsl).loss)
        optimizer.step(model.backward())
    assert losses[-1] < 0.1 * losses[0], f"loss {losses[0]:.3f} -> {losses[-1]:.3f}"


def test_torch_is_not_imported_by_minibert():
    import subprocess
    import sys
    code = ("import importlib, pkgutil, sys, minibert\n"
            "for m in pkgutil.walk_packages(minibert.__path__, 'minibert.'): importlib.import_module(m.name)\n"
            "[getattr(minibert, name) for name in minibert.__all__]\n"
            "print(sorted(set(sys.modules) & {'torch', 'transformers', 'matplotlib'}))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"


def test_predicting_only_masked_positions_gives_the_same_loss_and_gradients():
    model = BertForPreTraining(tiny_config(), seed=0, dtype=np.float64)
    ids = np.array([[2, 5, 7, 3, 9, 3], [2, 9, 3, 11, 0, 0]])
    labels = np.full_like(ids, -100)
    labels[0, 2], labels[0, 4], labels[1, 1] = 7, 9, 9
    kwargs = dict(attention_mask=(ids != 0).astype(int), labels=labels, next_sentence_label=[0, 1])
    full = model(ids, **kwargs)
    full_grads = model.backward()
    masked = model(ids, predict_masked_only=True, **kwargs)
    masked_grads = model.backward()
    assert masked.prediction_logits.shape == (3, V)
    np.testing.assert_allclose(masked.prediction_logits,
                               full.prediction_logits[[0, 0, 1], [2, 4, 1]], rtol=1e-12)
    assert masked.loss == pytest.approx(full.loss, rel=1e-12)
    for k in full_grads:
        np.testing.assert_allclose(masked_grads[k], full_grads[k], rtol=1e-9, atol=1e-15, err_msg=k)
    with pytest.raises(ValueError, match="needs labels"):
        model(ids, predict_masked_only=True)
