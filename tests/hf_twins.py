"""The one place tests build a matching `transformers` model and compare against it.

    ours, hf = twins(transformers.BertForPreTraining, BertForPreTraining, tiny_config(), np.float64)

A random-init transformers model (eager attention, dropout off as the config says) has every
parameter perturbed (so LayerNorm gammas are not 1, biases not 0), and minibert's model gets its
weights by name.  Tolerances (relative to the largest value of each tensor):
  float64: 1e-10 everywhere (we measure ~1e-15: the same arithmetic in a different order);
  float32: 1e-5 on outputs, 1e-4 on gradients (float32 round-off through a few layers).
A gradient that is tiny compared with the model's largest gradient is compared on a scale of
1e-3 of that largest gradient: the attention key bias has a gradient of exactly zero in theory
(softmax ignores a constant shift of a row), so both sides hold round-off noise there.
A gradient that is exactly zero in theory whatever the weights (QA's `qa_outputs.bias`: each
kept row's softmax - onehot sums to 0) is checked as such: at most ZERO_TOL of the largest
gradient on both sides, instead of one noise compared with another.
"""

import numpy as np
import torch
import transformers
from helpers import B, T, V, rel_err

from minibert import DistilBertConfig

TOL = {np.float64: dict(out=1e-10, grad=1e-10), np.float32: dict(out=1e-5, grad=1e-4)}
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}
ZERO_TOL = {np.float64: 1e-13, np.float32: 1e-6}      # ~ a few machine epsilons


def hf_config_for(config):
    """transformers' config from ours (its labels included)."""
    kind = transformers.DistilBertConfig if isinstance(config, DistilBertConfig) else transformers.BertConfig
    return kind(**config.to_dict(), attn_implementation="eager")


def hf_twin(hf_class, config, dtype, seed=0):
    """A transformers model with the same config, random weights all perturbed, in `dtype`."""
    torch.manual_seed(seed)
    model = hf_class(hf_config_for(config)).to(TORCH_DTYPE[dtype])
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def twins(hf_class, ours_class, config, dtype, seed=0):
    """(minibert model, transformers model) with the same weights, both in eval mode."""
    hf = hf_twin(hf_class, config, dtype, seed)
    ours = ours_class(config, dtype=dtype).eval()
    ours.load_state_dict({k: v.detach().numpy() for k, v in hf.state_dict().items()})
    return ours, hf


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


def assert_close(ours, ref, tol, what):
    err = rel_err(ours, ref.detach() if isinstance(ref, torch.Tensor) else ref)
    assert err < tol, f"{what}: relative error {err:.2e} >= {tol:.0e}"


def compare_grads(grads, hf, tol, skip=(), zero=()):
    """minibert's gradients against torch autograd's, for every trainable parameter of `hf` (by
    name; tied parameters appear once) but those in `skip`; same names on both sides.  Those in
    `zero` are zero in theory: both sides must be within ZERO_TOL of the largest gradient."""
    named = {k: p for k, p in hf.named_parameters() if p.requires_grad and k not in skip}
    assert set(grads) == set(named), "gradient keys differ from transformers' parameter names"
    largest = max(p.grad.abs().max().item() for p in named.values())
    for key, p in named.items():
        if key in zero:
            bound = ZERO_TOL[grads[key].dtype.type] * largest
            assert np.abs(grads[key]).max() <= bound and p.grad.abs().max().item() <= bound, key
            continue
        err = rel_err(grads[key], p.grad, floor=1e-3 * largest)
        assert err < tol, f"gradient of {key}: relative error {err:.2e}"
