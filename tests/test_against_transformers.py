"""The whole model against HuggingFace transformers on identical weights, on the fast kernels and
on the textbook layers (the `tier` fixture): every hidden state, every attention map, pooler
output, MLM and NSP logits, the loss, and the gradient of every parameter against torch autograd.
Tolerances and how the twin is built: tests/hf_twins.py."""

import numpy as np
import pytest
import torch
import transformers
from helpers import tiny_config
from hf_twins import TOL, assert_close, batch, compare_grads, to_torch, twins

from minibert import BertForPreTraining, BertModel, kernels, layers

CONFIGS = {
    "gelu-1layer": dict(hidden_act="gelu", num_hidden_layers=1),
    "gelu-3layers": dict(hidden_act="gelu", num_hidden_layers=3),
    "relu-2layers": dict(hidden_act="relu", num_hidden_layers=2),
    "gelu_new-2layers": dict(hidden_act="gelu_new", num_hidden_layers=2),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_pretraining_model_matches_transformers(name, dtype, tier):
    config = tiny_config(**CONFIGS[name])
    ours, hf = twins(transformers.BertForPreTraining, BertForPreTraining, config, dtype)
    ids, mask, types, labels, nsl = batch()
    out = ours(ids, attention_mask=mask, token_type_ids=types, labels=labels,
               next_sentence_label=nsl, output_hidden_states=True, output_attentions=True)
    t_ids, t_mask, t_types, t_labels, t_nsl = to_torch(ids, mask, types, labels, nsl)
    ref = hf(input_ids=t_ids, attention_mask=t_mask, token_type_ids=t_types, labels=t_labels,
             next_sentence_label=t_nsl, output_hidden_states=True, output_attentions=True)
    ref.loss.backward()
    grads = ours.backward()

    tol = TOL[dtype]
    assert out.prediction_logits.dtype == dtype
    assert len(out.hidden_states) == len(ref.hidden_states) == config.num_hidden_layers + 1
    assert len(out.attentions) == len(ref.attentions) == config.num_hidden_layers
    for i, (a, b) in enumerate(zip(out.hidden_states, ref.hidden_states)):
        assert_close(a, b, tol["out"], f"hidden_states[{i}]")
    for i, (a, b) in enumerate(zip(out.attentions, ref.attentions)):
        assert_close(a, b, tol["out"], f"attentions[{i}]")
    assert_close(out.prediction_logits, ref.prediction_logits, tol["out"], "prediction_logits")
    assert_close(out.seq_relationship_logits, ref.seq_relationship_logits, tol["out"], "seq_relationship_logits")
    assert_close(out.loss, ref.loss.item(), tol["out"], "loss")
    compare_grads(grads, hf, tol["grad"])
    assert all(g.dtype == dtype for g in grads.values())


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("unpad", [False, True], ids=["padded", "unpadded"])
def test_bert_model_matches_transformers(dtype, tier, unpad):
    """The bare encoder: last_hidden_state and pooler_output, and gradients for a loss on both.
    Padded, at every position; unpadded (models/packing.py), at the real tokens, with zeros at
    the padded ones, and a loss that reads only real tokens."""
    ours, hf = twins(transformers.BertModel, BertModel, tiny_config(num_hidden_layers=2), dtype, seed=3)
    ours.unpad_inputs = unpad
    ids, mask, types, _, _ = batch(seed=4)
    out = ours(ids, attention_mask=mask, token_type_ids=types)
    ref = hf(*to_torch(ids, mask, types))
    rng = np.random.default_rng(0)
    d_seq = rng.standard_normal(out.last_hidden_state.shape).astype(dtype)
    d_pool = rng.standard_normal(out.pooler_output.shape).astype(dtype)
    real = mask == 1
    if unpad:
        assert not real.all()                                # the batch has padding to leave out
        d_seq[~real] = 0.0
        assert np.all(out.last_hidden_state[~real] == 0.0)
    (ref.last_hidden_state * torch.tensor(d_seq)).sum().add(
        (ref.pooler_output * torch.tensor(d_pool)).sum()).backward()
    grads = ours.backward(d_seq, d_pool)
    tol = TOL[dtype]
    if unpad:
        assert_close(out.last_hidden_state[real], ref.last_hidden_state[torch.tensor(real)], tol["out"],
                     "last_hidden_state")
    else:
        assert_close(out.last_hidden_state, ref.last_hidden_state, tol["out"], "last_hidden_state")
    assert_close(out.pooler_output, ref.pooler_output, tol["out"], "pooler_output")
    compare_grads(grads, hf, tol["grad"])


@pytest.mark.parametrize("gelu", [layers, kernels], ids=["reference", "fast"])
def test_gelu_matches_torch_exact_gelu(gelu):
    x = np.linspace(-8, 8, 2001)
    ours, _ = gelu.gelu_forward(x)
    ref = torch.nn.functional.gelu(torch.tensor(x), approximate="none").numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-14, atol=1e-300)
    # float32: the fast kernel's forward uses a rational erf (Eigen's, |error| < 3 eps32) for speed,
    # its backward a polynomial erfc (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).  With float32
    # rounding the forward stays under 2 eps32 * max(|x|, 1) of the float64 truth; torch's own
    # float32 GELU is off by up to 2.9 eps32 * |x| on this grid.
    x32 = np.linspace(-20, 20, 400001).astype(np.float32)
    ours32, cache = gelu.gelu_forward(x32)
    assert ours32.dtype == np.float32
    t64 = torch.tensor(x32.astype(np.float64), requires_grad=True)
    truth = torch.nn.functional.gelu(t64)
    truth.sum().backward()
    scale = np.finfo(np.float32).eps * np.maximum(np.abs(x32), 1.0)
    assert np.all(np.abs(ours32 - truth.detach().numpy()) <= 2 * scale)
    # The derivative: Phi(x) + x phi(x), within the same kind of bound.
    d32, _ = gelu.gelu_backward(np.ones_like(x32), cache)
    assert d32.dtype == np.float32
    assert np.all(np.abs(d32 - t64.grad.numpy()) <= 4 * scale)
