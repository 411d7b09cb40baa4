"""Unpadded execution (minibert/models/packing.py): a right-padded batch run on its real tokens
gives the numbers of the padded path at every real token -- outputs, losses and every gradient --
on both tiers; zeros at the padded positions; and the padded path wherever packing does not apply.

Dropout is off (eval) where the two paths are compared: they draw their masks over differently
shaped arrays.  Tolerances: float64, 1e-10 relative to each tensor's largest entry (the two paths
add the same terms in another order); gradients that are zero in theory (the key bias) are
compared against the model's largest gradient instead.
"""

import numpy as np
import pytest
from helpers import tiny_config

from minibert import (BertForMaskedLM, BertForPreTraining, BertForQuestionAnswering, BertForSequenceClassification,
                      BertForTokenClassification, BertModel, DistilBertConfig, DistilBertForMaskedLM,
                      DistilBertForSequenceClassification, DistilBertModel)
from minibert.models.packing import pack_batch

RTOL = 1e-10


def right_padded(lengths, T):
    return (np.arange(T)[None, :] < np.asarray(lengths)[:, None]).astype(np.int64)


def test_packing_of_a_right_padded_batch():
    mask = right_padded([4, 2, 6, 2, 4], 6)
    packing = pack_batch(mask)
    assert packing.num_tokens == 18
    # shortest first, each run of one length one group of consecutive rows: (first row, S, L)
    assert packing.groups == ((0, 2, 2), (4, 2, 4), (12, 1, 6))
    x = np.arange(5 * 6 * 2).reshape(5, 6, 2)
    packed = packing.pack(x)
    assert packed.shape == (18, 2)
    np.testing.assert_array_equal(packed[:2], x[1, :2])               # sequence 1 (length 2) first
    np.testing.assert_array_equal(packed[12:], x[2])                  # the longest last
    np.testing.assert_array_equal(packing.position_ids[4:8], [0, 1, 2, 3])
    back = packing.unpack(packed)
    np.testing.assert_array_equal(back[mask == 1], x[mask == 1])
    assert np.all(back[mask == 0] == 0)


@pytest.mark.parametrize("mask", [
    np.ones((2, 5), dtype=np.int64),                                  # nothing padded
    np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]),                     # left padding
    np.array([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1]]),                     # a hole
    np.array([[0, 0, 0, 0, 0], [1, 1, 1, 0, 0]]),                     # an empty sequence
], ids=["unpadded", "left", "hole", "empty"])
def test_batches_that_take_the_padded_path(mask):
    assert pack_batch(mask) is None


def distil_config():
    return DistilBertConfig(vocab_size=50, dim=12, n_layers=2, n_heads=3, hidden_dim=20, max_position_embeddings=16,
                            dropout=0.0, attention_dropout=0.0, pad_token_id=0)


def inputs(seed=0):
    """Five sequences of lengths 7, 3, 5, 3, 1 padded to 7; labels only at real tokens."""
    rng = np.random.default_rng(seed)
    mask = right_padded([7, 3, 5, 3, 1], 7)
    ids = rng.integers(1, 50, mask.shape) * mask
    types = (np.arange(7)[None, :] >= np.array([[4], [2], [3], [2], [1]])).astype(np.int64) * mask
    return ids, mask, types, rng


def batches_and_labels(name, ids, mask, rng):
    B, T = ids.shape
    real = mask == 1
    token_labels = np.where(real & (rng.random((B, T)) < 0.5), rng.integers(0, 50, (B, T)), -100)
    return {
        "BertModel": {},
        "BertForPreTraining": dict(labels=token_labels, next_sentence_label=rng.integers(0, 2, B)),
        "BertForMaskedLM": dict(labels=token_labels),
        "BertForSequenceClassification": dict(labels=rng.integers(0, 3, B)),
        "BertForTokenClassification": dict(labels=np.where(real, rng.integers(0, 3, (B, T)), -100)),
        "BertForQuestionAnswering": {},
        "DistilBertModel": {},
        "DistilBertForMaskedLM": dict(labels=token_labels),
        "DistilBertForSequenceClassification": dict(labels=rng.integers(0, 3, B)),
    }[name]


MODELS = {cls.__name__: cls for cls in (BertModel, BertForPreTraining, BertForMaskedLM, BertForSequenceClassification,
                                        BertForTokenClassification, BertForQuestionAnswering, DistilBertModel,
                                        DistilBertForMaskedLM, DistilBertForSequenceClassification)}


def run(name, unpad, ids, mask, types, labels, upstream):
    """One forward and backward of model `name` (float64, eval, the same weights every time)."""
    cls = MODELS[name]
    distil = name.startswith("DistilBert")
    config = distil_config() if distil else tiny_config(vocab_size=50)
    if name.endswith("Classification") or name.endswith("QuestionAnswering"):
        config.num_labels = 2 if name.endswith("QuestionAnswering") else 3
    model = cls(config, seed=1, dtype=np.float64).eval()
    for v in model.params.values():          # non-trivial values everywhere (LayerNorm 1 and 0 hide bugs)
        v += np.random.default_rng(v.size).standard_normal(v.shape) * 0.1
    model.unpad_inputs = unpad
    args = (ids, mask) if distil else (ids, mask, types)
    out = model(*args, **labels, output_hidden_states=True)
    if name in ("BertModel", "DistilBertModel"):
        grads = model.backward(*upstream(out))
    elif name == "BertForQuestionAnswering":
        grads = None                         # its loss reads the padded positions (see below)
    else:
        grads = model.backward()
    return out, grads


def assert_close(a, b, what):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, what
    err = np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)
    assert err <= RTOL, f"{what}: relative error {err:.2e} > {RTOL:.0e}"


@pytest.mark.parametrize("name", list(MODELS))
def test_unpadded_equals_padded(name, tier):
    ids, mask, types, rng = inputs()
    labels = batches_and_labels(name, ids, mask, rng)
    real = mask == 1
    d = np.random.default_rng(5)
    d_seq = d.standard_normal(mask.shape + (12,)) * real[..., None]     # a loss that reads real tokens

    def upstream(out):
        if out.pooler_output is not None:
            return d_seq, d.standard_normal(out.pooler_output.shape)
        return (d_seq,)

    results = {}
    for unpad in (False, True):
        d = np.random.default_rng(5)                                    # the same upstream both times
        results[unpad] = run(name, unpad, ids, mask, types, labels, upstream)
    (padded, g_padded), (unpadded, g_unpadded) = results[False], results[True]
    for key in padded.keys():
        if key == "hidden_states":
            for i, (a, b) in enumerate(zip(unpadded.hidden_states, padded.hidden_states)):
                assert_close(a[real], b[real], f"hidden_states[{i}]")
                assert np.all(a[~real] == 0.0), f"hidden_states[{i}] at the padding"
        elif np.ndim(padded[key]) >= 2 and padded[key].shape[:2] == mask.shape:
            assert_close(unpadded[key][real], padded[key][real], key)              # per token
        else:
            assert_close(unpadded[key], padded[key], key)                          # loss, per sequence
    assert unpadded.keys() == padded.keys()
    if g_padded is not None:
        assert g_unpadded.keys() == g_padded.keys()
        largest = max(np.abs(g).max() for g in g_padded.values())
        for k, g in g_padded.items():
            if k.endswith("key.bias") or k.endswith("k_lin.bias"):       # zero in theory: round-off on both
                assert np.abs(g_unpadded[k]).max() <= 1e-12 * largest, k
            else:
                assert_close(g_unpadded[k], g, k)


def test_question_answering_computes_its_loss_padded():
    """transformers' QA loss takes the softmax over every position, the padded ones too, so
    BertForQuestionAnswering runs padded by default (and unpadded when asked, for predictions)."""
    config = tiny_config(vocab_size=50, num_labels=2)
    assert BertForQuestionAnswering(config).unpad_inputs is False
    assert BertForSequenceClassification(tiny_config(vocab_size=50, num_labels=2)).unpad_inputs is True


def test_attention_maps_come_from_the_padded_path():
    """output_attentions asks for (B, H, T, T) maps as transformers gives them: that forward runs padded."""
    ids, mask, types, _ = inputs()
    model = BertModel(tiny_config(vocab_size=50), dtype=np.float64).eval()
    out = model(ids, mask, types, output_attentions=True, output_hidden_states=True)
    assert out.attentions[0].shape == (5, 3, 7, 7)             # B, H, T, T
    model.unpad_inputs = False
    ref = model(ids, mask, types, output_attentions=True, output_hidden_states=True)
    np.testing.assert_array_equal(out.last_hidden_state, ref.last_hidden_state)


def test_training_with_dropout_runs_unpadded_and_learns():
    """Dropout on, packed: the loss of one fixed batch falls over a few AdamW steps."""
    from minibert import AdamW
    ids, mask, types, rng = inputs(1)
    labels = batches_and_labels("BertForPreTraining", ids, mask, rng)
    config = tiny_config(vocab_size=50, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    model = BertForPreTraining(config, seed=0, dtype=np.float64).train()
    opt = AdamW(model.params, lr=1e-2)
    losses = []
    for _ in range(20):
        losses.append(model(ids, mask, types, **labels).loss)
        opt.step(model.backward())
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0]
