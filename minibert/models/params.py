"""Parameters: one flat dict keyed by HuggingFace state-dict names, and their initialisation.

A model keeps every array in `model.params`, e.g. `bert.encoder.layer.0.attention.self.query.weight`.
A layer function sees only its own slice, with the prefix taken off (`query.weight`); its
gradients come back under the same local names and are put back under the prefix.

Initialisation follows HF `BertPreTrainedModel._init_weights`: Linear and Embedding weights
~ N(0, initializer_range), biases 0, LayerNorm gamma 1 and beta 0, the padding row of the
word embeddings 0.
"""

import numpy as np


def subdict(params, prefix):
    """The entries of `params` under `prefix`, with the prefix removed."""
    n = len(prefix)
    return {k[n:]: v for k, v in params.items() if k.startswith(prefix)}


def add_grads(grads, prefix, local):
    """Accumulate local gradients into `grads` under `prefix` (gradients add, never overwrite)."""
    for k, g in local.items():
        name = prefix + k
        if name in grads:
            grads[name] += g
        else:
            grads[name] = g


def init_linear(params, name, n_out, n_in, std, rng, dtype):
    params[f"{name}.weight"] = (rng.standard_normal((n_out, n_in)) * std).astype(dtype)
    params[f"{name}.bias"] = np.zeros(n_out, dtype=dtype)


def init_layer_norm(params, name, n, dtype):
    params[f"{name}.weight"] = np.ones(n, dtype=dtype)
    params[f"{name}.bias"] = np.zeros(n, dtype=dtype)


def init_embedding(params, name, n_rows, n_cols, std, rng, dtype, padding_idx=None):
    weight = (rng.standard_normal((n_rows, n_cols)) * std).astype(dtype)
    if padding_idx is not None:
        weight[padding_idx] = 0.0
    params[f"{name}.weight"] = weight
