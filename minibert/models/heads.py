"""The pretraining heads (Devlin et al. 2019, section 3.1; HF `BertPreTrainingHeads`).

Masked LM (`cls.predictions.*`):
    t = LayerNorm(act(h W_t^T + b_t))                 transform, (..., C)
    logits = t E^T + b                                decoder, (..., V)
  E is the word-embedding matrix itself (weights tied): the head reads it as `decoder.weight` and
  its gradient comes back under that name, to be added to the word embeddings' own.

Next sentence prediction (`cls.seq_relationship.*`):
    logits = pooled W^T + b                           (B, 2); label 0 = B follows A, 1 = random
"""

from .. import ops
from .params import add_grads


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
