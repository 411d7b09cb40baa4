"""The whole model against HuggingFace transformers on identical weights.

A random-init `transformers` model (eager attention, dropout off) has every parameter perturbed
(so LayerNorm gammas are not 1, biases not 0), its weights are copied into minibert by name,
and both run the same padded batch with both segment ids.  Compared: every hidden state, every
attention map, pooler output, MLM and NSP logits, the loss, and the gradient of every parameter
against torch autograd.

Tolerances (relative to the largest value of each tensor):
  float64: 1e-10 everywhere (we measure ~1e-15: the same arithmetic in a different order);
  float32: 1e-5 on outputs, 1e-4 on gradients (float32 round-off through a few layers).
A gradient that is tiny compared with the model's largest gradient is compared on a scale of
1e-3 of that largest gradient: the attention key bias has a gradient of exactly zero in theory
(softmax ignores a constant shift of a row), so both sides hold round-off noise there.
"""

import numpy as np
import pytest
import torch
import transformers
from helpers import B, T, V, rel_err, tiny_config

from minibert import BertForPreTraining, BertModel

TOL = {np.float64: dict(out=1e-10, grad=1e-10), np.float32: dict(out=1e-5, grad=1e-4)}
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}


def hf_twin(hf_class, config, dtype, seed=0):
    """A transformers model with the same config, random weights all perturbed, in `dtype`."""
    torch.manual_seed(seed)
    hf_config = transformers.BertConfig(**config.to_dict(), attn_implementation="eager")
    model = hf_class(hf_config).to(TORCH_DTYPE[dtype])
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.eval()
    return model


def batch(seed=0):
    """A batch with padding and both segments: sequence 1 is padded after position 5."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, V, (B, T + 2))
    mask = np.ones_like(ids)
    mask[1, 5:] = 0
    ids[1, 5:] = 0                                     # [PAD]
    types = np.zeros_like(ids)
    types[0, 3:] = 1
    types[1, 2:5] = 1
    labels = np.full_like(ids, -100)
    chosen = rng.random(ids.shape) < 0.4
    chosen[0, 1] = True
    labels[chosen] = ids[chosen]
    labels[1, 5:] = -100
    next_sentence_label = np.array([0, 1])
    return ids, mask, types, labels, next_sentence_label


def to_torch(*arrays):
    return [torch.tensor(a) for a in arrays]


CONFIGS = {
    "gelu-1layer": dict(hidden_act="gelu", num_hidden_layers=1),
    "gelu-3layers": dict(hidden_act="gelu", num_hidden_layers=3),
    "relu-2layers": dict(hidden_act="relu", num_hidden_layers=2),
    "gelu_new-2layers": dict(hidden_act="gelu_new", num_hidden_layers=2),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_pretraining_model_matches_transformers(name, dtype):
    config = tiny_config(**CONFIGS[name])
    hf = hf_twin(transformers.BertForPreTraining, config, dtype)
    ours = BertForPreTraining(config, seed=1, dtype=dtype).eval()
    ours.load_state_dict({k: v.detach().numpy() for k, v in hf.state_dict().items()})

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
        assert rel_err(a, b.detach()) < tol["out"], f"hidden_states[{i}]"
    for i, (a, b) in enumerate(zip(out.attentions, ref.attentions)):
        assert rel_err(a, b.detach()) < tol["out"], f"attentions[{i}]"
    assert rel_err(out.prediction_logits, ref.prediction_logits.detach()) < tol["out"]
    assert rel_err(out.seq_relationship_logits, ref.seq_relationship_logits.detach()) < tol["out"]
    assert rel_err(out.loss, ref.loss.item()) < tol["out"]

    named = dict(hf.named_parameters())              # tied parameters appear once, by first name
    assert set(grads) == set(named), "gradient keys differ from transformers' parameter names"
    largest = max(p.grad.abs().max().item() for p in named.values())
    for key, p in named.items():
        err = rel_err(grads[key], p.grad, floor=1e-3 * largest)
        assert err < tol["grad"], f"gradient of {key}: relative error {err:.2e}"
        assert grads[key].dtype == dtype, key


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_bert_model_matches_transformers(dtype):
    """The bare encoder: last_hidden_state and pooler_output, and gradients for a loss on both."""
    config = tiny_config(num_hidden_layers=2)
    hf = hf_twin(transformers.BertModel, config, dtype, seed=3)
    ours = BertModel(config, dtype=dtype).eval()
    ours.load_state_dict({k: v.detach().numpy() for k, v in hf.state_dict().items()})
    ids, mask, types, _, _ = batch(seed=4)

    out = ours(ids, attention_mask=mask, token_type_ids=types)
    ref = hf(*to_torch(ids, mask, types))
    rng = np.random.default_rng(0)
    d_seq = rng.standard_normal(out.last_hidden_state.shape).astype(dtype)
    d_pool = rng.standard_normal(out.pooler_output.shape).astype(dtype)
    (ref.last_hidden_state * torch.tensor(d_seq)).sum().add(
        (ref.pooler_output * torch.tensor(d_pool)).sum()).backward()
    grads = ours.backward(d_seq, d_pool)

    tol = TOL[dtype]
    assert rel_err(out.last_hidden_state, ref.last_hidden_state.detach()) < tol["out"]
    assert rel_err(out.pooler_output, ref.pooler_output.detach()) < tol["out"]
    named = dict(hf.named_parameters())
    assert set(grads) == set(named)
    largest = max(p.grad.abs().max().item() for p in named.values())
    for key, p in named.items():
        assert rel_err(grads[key], p.grad, floor=1e-3 * largest) < tol["grad"], key


def test_gelu_matches_torch_exact_gelu():
    from minibert.activations import gelu_forward
    x = np.linspace(-8, 8, 2001)
    ours, _ = gelu_forward(x)
    ref = torch.nn.functional.gelu(torch.tensor(x), approximate="none").numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-14, atol=1e-300)
    # float32 uses a polynomial erfc (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7) for speed.
    # Its error plus float32 rounding stays under 2 eps32 * max(|x|, 1) of the float64 truth;
    # torch's own float32 GELU is off by up to 2.9 eps32 * |x| on this grid.
    x32 = np.linspace(-20, 20, 400001).astype(np.float32)
    ours32, cache = gelu_forward(x32)
    assert ours32.dtype == np.float32
    t64 = torch.tensor(x32.astype(np.float64), requires_grad=True)
    truth = torch.nn.functional.gelu(t64)
    truth.sum().backward()
    scale = np.finfo(np.float32).eps * np.maximum(np.abs(x32), 1.0)
    assert np.all(np.abs(ours32 - truth.detach().numpy()) <= 2 * scale)
    # The derivative: Phi(x) + x phi(x), within the same kind of bound.
    from minibert.activations import gelu_backward
    d32 = gelu_backward(np.ones_like(x32), cache)
    assert d32.dtype == np.float32
    assert np.all(np.abs(d32 - t64.grad.numpy()) <= 4 * scale)
