"""The task heads against transformers on identical weights: logits, loss and every gradient.

On the fast kernels and on the textbook layers (`tier`); tolerances as for the whole model
(tests/hf_twins.py).
"""

import numpy as np
import pytest
import torch
import transformers
from helpers import B, assert_grad_matches, rel_err, tiny_config
from hf_twins import TOL, batch, compare_grads, to_torch, twins

from minibert import (BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification,
                      BertModel)

DTYPES = pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])


def twin(hf_class, ours_class, dtype, num_labels, **config_kw):
    return twins(hf_class, ours_class, tiny_config(num_labels=num_labels, **config_kw), dtype)


@DTYPES
@pytest.mark.parametrize("num_labels", [3, 1], ids=["classes", "regression"])
def test_sequence_classification(dtype, num_labels, tier):
    ours, hf = twin(transformers.BertForSequenceClassification, BertForSequenceClassification,
                    dtype, num_labels)
    ids, mask, types, _, _ = batch()                              # pairs: both segment ids, padding
    labels = np.array([2, 0]) if num_labels == 3 else np.array([0.7, -1.3])
    out = ours(ids, mask, types, labels=labels)
    t_labels = torch.tensor(labels) if num_labels == 3 else torch.tensor(labels, dtype=hf.dtype)
    ref = hf(*to_torch(ids, mask, types), labels=t_labels)
    ref.loss.backward()
    tol = TOL[dtype]
    assert out.logits.shape == (B, num_labels)
    assert rel_err(out.logits, ref.logits.detach()) < tol["out"]
    assert rel_err(out.loss, ref.loss.item()) < tol["out"]
    compare_grads(ours.backward(), hf, tol["grad"])


@DTYPES
def test_token_classification_ignores_minus_100(dtype, tier):
    ours, hf = twin(transformers.BertForTokenClassification, BertForTokenClassification, dtype, 5)
    ids, mask, types, _, _ = batch()
    labels = np.random.default_rng(0).integers(0, 5, ids.shape)
    labels[mask == 0] = -100
    labels[0, [0, 3]] = -100                                      # e.g. [CLS] and a "##" piece
    out = ours(ids, mask, types, labels=labels)
    ref = hf(*to_torch(ids, mask, types), labels=torch.tensor(labels))
    ref.loss.backward()
    tol = TOL[dtype]
    assert out.logits.shape == ids.shape + (5,)
    real = mask == 1                                              # minibert runs only the real tokens
    assert rel_err(out.logits[real], ref.logits.detach().numpy()[real]) < tol["out"]
    assert rel_err(out.loss, ref.loss.item()) < tol["out"]
    compare_grads(ours.backward(), hf, tol["grad"])


@DTYPES
def test_question_answering_with_positions_outside_the_sequence(dtype, tier):
    ours, hf = twin(transformers.BertForQuestionAnswering, BertForQuestionAnswering, dtype, 2)
    ids, mask, types, _, _ = batch()
    T = ids.shape[1]
    start, end = np.array([3, T + 5]), np.array([5, 2])          # T + 5: clipped to T, ignored
    out = ours(ids, mask, types, start_positions=start, end_positions=end)
    ref = hf(*to_torch(ids, mask, types), start_positions=torch.tensor(start),
             end_positions=torch.tensor(end))
    ref.loss.backward()
    tol = TOL[dtype]
    assert rel_err(out.start_logits, ref.start_logits.detach()) < tol["out"]
    assert rel_err(out.end_logits, ref.end_logits.detach()) < tol["out"]
    assert rel_err(out.loss, ref.loss.item()) < tol["out"]
    compare_grads(ours.backward(), hf, tol["grad"], zero=("qa_outputs.bias",))


def test_frozen_encoder_and_top_layers():
    config = tiny_config(num_hidden_layers=3)
    model = BertForSequenceClassification(config, dtype=np.float64).train()
    ids, mask, types, _, _ = batch()
    model(ids, mask, types, labels=[1, 0])
    everything = model.backward()
    model.freeze(0)
    head_only = model.backward()
    assert set(head_only) == {"classifier.weight", "classifier.bias"}
    model.freeze(1)
    top = model.backward()
    assert "bert.encoder.layer.2.output.dense.weight" in top and "bert.pooler.dense.weight" in top
    assert not any(k.startswith(("bert.encoder.layer.1.", "bert.embeddings.")) for k in top)
    for k, g in top.items():                                      # the same numbers where computed
        np.testing.assert_array_equal(g, everything[k])
    with pytest.raises(ValueError, match="trainable_layers must be in"):
        model.freeze(4)


def test_heads_pass_finite_differences_with_dropout():
    """The heads' own backward (dropout on the classifier input included) in float64."""
    def config(num_labels=2):
        return tiny_config(num_hidden_layers=1, hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.1,
                           num_labels=num_labels)
    ids, mask, types, _, _ = batch()
    for model, kwargs, names in (
        (BertForSequenceClassification(config(3), dtype=np.float64), dict(labels=[2, 1]),
         ["classifier.weight", "bert.pooler.dense.bias"]),
        (BertForTokenClassification(config(4), dtype=np.float64),
         dict(labels=np.where(mask == 1, ids % 4, -100)), ["classifier.weight", "classifier.bias"]),
        (BertForQuestionAnswering(config(), dtype=np.float64), dict(start_positions=[1, 2], end_positions=[3, 9]),
         ["qa_outputs.weight", "bert.encoder.layer.0.output.dense.bias"]),
    ):
        model.train()

        def loss():
            model.rng = np.random.default_rng(1)
            return model(ids, mask, types, **kwargs).loss

        loss()
        grads = model.backward()
        for name in names:
            assert_grad_matches(grads[name], loss, model.params[name], f"{type(model).__name__} {name}")


def test_save_and_load_task_checkpoints(tmp_path):
    config = tiny_config()
    encoder = BertModel(config)
    encoder.save_pretrained(tmp_path / "encoder")
    model, info = BertForTokenClassification.from_pretrained(tmp_path / "encoder", num_labels=5,
                                                            output_loading_info=True)
    assert info["missing_keys"] == ["classifier.weight", "classifier.bias"]   # fresh head, reported
    assert model.config.id2label == {i: f"LABEL_{i}" for i in range(5)}
    model.config.id2label = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}
    model.save_pretrained(tmp_path / "ner")
    again = BertForTokenClassification.from_pretrained(tmp_path / "ner")
    assert again.num_labels == 5 and again.id2label[1] == "B-PER"
    hf = transformers.BertForTokenClassification.from_pretrained(tmp_path / "ner", attn_implementation="eager").eval()
    assert hf.config.id2label[3] == "B-LOC"
    ids = np.array([[2, 5, 7, 3]])
    with torch.no_grad():
        ref = hf(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(again(ids).logits, ref, atol=1e-5)
    qa = BertForQuestionAnswering.from_pretrained(tmp_path / "encoder")
    assert qa.params["qa_outputs.weight"].shape == (2, config.hidden_size)
    with pytest.raises(ValueError, match="num_labels must be a positive integer"):
        BertForSequenceClassification.from_pretrained(tmp_path / "encoder", num_labels=0)
