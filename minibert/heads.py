"""The pretraining heads (Devlin et al. 2019, section 3.1; HF `BertPreTrainingHeads`).

Masked LM (`cls.predictions.*`):
    t = LayerNorm(act(h W_t^T + b_t))                 transform, (B, T, C)
    logits = t E^T + b                                decoder, (B, T, V)
  E is the word-embedding matrix itself (weights tied), b its own bias `cls.predictions.bias`.

Next sentence prediction (`cls.seq_relationship.*`):
    logits = pooled W^T + b                           (B, 2); label 0 = B follows A, 1 = random
"""

from .activations import ACT2FN
from .layers import layer_norm_backward, layer_norm_forward, linear_backward, linear_forward
from .params import add_grads


def mlm_head_forward(h, p, word_embeddings, config):
    """h: (..., C), p: `transform.*` and `bias`, word_embeddings: (V, C)  ->  logits (..., V)."""
    act_forward, _ = ACT2FN[config.hidden_act]
    t, dense_cache = linear_forward(h, p["transform.dense.weight"], p["transform.dense.bias"])
    t, act_cache = act_forward(t)
    t, ln_cache = layer_norm_forward(t, p["transform.LayerNorm.weight"],
                                     p["transform.LayerNorm.bias"], config.layer_norm_eps)
    logits, decoder_cache = linear_forward(t, word_embeddings, p["bias"])
    return logits, (dense_cache, act_cache, ln_cache, decoder_cache, config.hidden_act)


def mlm_head_backward(dlogits, cache):
    """Returns dh, the head's own gradients (local names) and the gradient of the tied
    word-embedding matrix from the decoder (to be added to the embedding's own)."""
    dense_cache, act_cache, ln_cache, decoder_cache, hidden_act = cache
    _, act_backward = ACT2FN[hidden_act]
    grads = {}
    dt, g = linear_backward(dlogits, decoder_cache)
    grads["bias"] = g["bias"]
    d_word_embeddings = g["weight"]
    dt, g = layer_norm_backward(dt, ln_cache)
    add_grads(grads, "transform.LayerNorm.", g)
    dh, g = linear_backward(act_backward(dt, act_cache), dense_cache)
    add_grads(grads, "transform.dense.", g)
    return dh, grads, d_word_embeddings
