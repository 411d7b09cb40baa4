"""The pretraining heads (Devlin et al. 2019, section 3.1; HF `BertPreTrainingHeads`).

Masked LM (`cls.predictions.*`):
    t = LayerNorm(act(h W_t^T + b_t))                 transform, (..., C)
    logits = t E^T + b                                decoder, (..., V)
  E is the word-embedding matrix itself (weights tied): the head reads it as `decoder.weight` and
  its gradient comes back under that name, to be added to the word embeddings' own.

The masked-LM loss: cross-entropy of the logits at the labelled positions (label -100: none).
  With `predict_masked_only` the head runs only at those N positions, (N, C) -> (N, V): the same
  loss without the (B, T, V) projection at every position, wasted work in pretraining.

Next sentence prediction (`cls.seq_relationship.*`):
    logits = pooled W^T + b                           (B, 2); label 0 = B follows A, 1 = random
"""

import numpy as np

from .. import ops
from ..layers.cross_entropy import IGNORE_INDEX
from .params import add_grads, init_layer_norm, init_linear, subdict


def init_mlm_head(params, config, rng, dtype):
    """`cls.predictions.*` in HF's order; the decoder matrix is the word embeddings (tied)."""
    C, std = config.hidden_size, config.initializer_range
    params["cls.predictions.bias"] = np.zeros(config.vocab_size, dtype=dtype)
    init_linear(params, "cls.predictions.transform.dense", C, C, std, rng, dtype)
    init_layer_norm(params, "cls.predictions.transform.LayerNorm", C, dtype)


def mlm_head_params(params):
    """The MLM head's parameters by its local names, the tied decoder matrix included."""
    return {**subdict(params, "cls.predictions."),
            "decoder.weight": params["bert.embeddings.word_embeddings.weight"]}


def mlm_head_forward(h, params, config):
    """h: (..., C), params: `transform.*`, `bias` and `decoder.weight` (V, C)  ->  logits (..., V)."""
    t, dense_cache = ops.linear_activation_forward(h, params["transform.dense.weight"],
                                                   params["transform.dense.bias"], config.hidden_act)
    t, ln_cache = ops.layer_norm_forward(t, params["transform.LayerNorm.weight"],
                                         params["transform.LayerNorm.bias"], config.layer_norm_eps)
    logits, decoder_cache = ops.linear_forward(t, params["decoder.weight"], params["bias"])
    return logits, (dense_cache, ln_cache, decoder_cache)


def mlm_head_backward(dlogits, cache):
    """Returns dh and the head's gradients (local names, `decoder.weight` among them)."""
    dense_cache, ln_cache, decoder_cache = cache
    grads = {}
    dt, g = ops.linear_backward(dlogits, decoder_cache)
    grads["decoder.weight"], grads["bias"] = g["weight"], g["bias"]
    dt, g = ops.layer_norm_backward(dt, ln_cache)
    add_grads(grads, "transform.LayerNorm.", g)
    dh, g = ops.linear_activation_backward(dt, dense_cache)
    add_grads(grads, "transform.dense.", g)
    return dh, grads


def nsp_head_forward(pooled, params):
    """pooled: (B, C)  ->  is-next / random logits (B, 2)."""
    return ops.linear_forward(pooled, params["weight"], params["bias"])


def nsp_head_backward(dlogits, cache):
    return ops.linear_backward(dlogits, cache)


def masked_lm_forward(h, labels, params, config, predict_masked_only=False):
    """h (B, T, C), labels (B, T) or None  ->  logits (B, T, V) or (N, V), loss or None, cache."""
    positions = None
    h_shape = h.shape
    if predict_masked_only:
        if labels is None:
            raise ValueError("predict_masked_only=True needs labels (the masked positions)")
        positions = np.flatnonzero(labels.reshape(-1) != IGNORE_INDEX)                 # (N,)
        h = h.reshape(-1, config.hidden_size)[positions]                               # (N, C)
        labels = labels.reshape(-1)[positions]
    logits, head_cache = mlm_head_forward(h, params, config)                          # (B, T, V) or (N, V)
    loss = loss_cache = None
    if labels is not None:
        loss, loss_cache = ops.cross_entropy_forward(logits.reshape(-1, config.vocab_size), labels.reshape(-1))
    return logits, loss, (head_cache, loss_cache, positions, h_shape)


def masked_lm_backward(cache, dloss=1.0):
    """-> dh (B, T, C) (zero at the positions without a label when only those were predicted) and
    the head's gradients (local names, `decoder.weight` among them).  `dloss` is d(objective)/d(loss)."""
    head_cache, loss_cache, positions, h_shape = cache
    dlogits, _ = ops.cross_entropy_backward(dloss, loss_cache)                         # (B*T or N, V)
    if positions is None:
        dh, grads = mlm_head_backward(dlogits.reshape(*h_shape[:2], -1), head_cache)   # (B, T, C)
        return dh, grads
    dh_kept, grads = mlm_head_backward(dlogits, head_cache)                            # (N, C)
    dh = np.zeros(h_shape, dtype=dh_kept.dtype)
    dh.reshape(-1, h_shape[-1])[positions] = dh_kept                                    # scatter back
    return dh, grads
