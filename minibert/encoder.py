"""The Transformer encoder layer, the stack of them, and the pooler (HF `BertLayer`, `BertPooler`).

One encoder layer, post-LayerNorm as in BERT (Vaswani et al. 2017, section 3.1):

    a = LayerNorm(x + dropout(SelfAttention(x) Wo^T + bo))                    attention block
    y = LayerNorm(a + dropout(act(a W1^T + b1) W2^T + b2))                    feed-forward block

Parameters (local names, as in HF):
    attention.self.{query,key,value}.{weight,bias}
    attention.output.dense.{weight,bias}   attention.output.LayerNorm.{weight,bias}
    intermediate.dense.{weight,bias}       (C -> I)
    output.dense.{weight,bias}             (I -> C)    output.LayerNorm.{weight,bias}

Pooler: pooled = tanh(h[:, 0] W^T + b), the [CLS] vector through `pooler.dense`.
"""

import numpy as np

from .activations import ACT2FN, tanh_backward, tanh_forward
from .attention import self_attention_backward, self_attention_forward
from .layers import (dropout_backward, dropout_forward, layer_norm_backward, layer_norm_forward,
                     linear_backward, linear_forward)
from .params import add_grads, subdict


def add_norm_forward(h, residual, p, config, rng, training, dropout_p):
    """LayerNorm(residual + dropout(h W^T + b)): the projection that closes each block.
    `p` holds `dense.*` and `LayerNorm.*` (HF `BertSelfOutput` / `BertOutput`)."""
    h, dense_cache = linear_forward(h, p["dense.weight"], p["dense.bias"])
    h, drop_mask = dropout_forward(h, dropout_p, rng, training)
    y, ln_cache = layer_norm_forward(h, p["LayerNorm.weight"], p["LayerNorm.bias"],
                                     config.layer_norm_eps, residual=residual)
    return y, (dense_cache, drop_mask, ln_cache)


def add_norm_backward(dy, cache):
    """Returns d(h), d(residual) and the grads of `dense` and `LayerNorm`."""
    dense_cache, drop_mask, ln_cache = cache
    dsum, ln_grads = layer_norm_backward(dy, ln_cache)
    dh, dense_grads = linear_backward(dropout_backward(dsum, drop_mask), dense_cache)
    grads = {}
    add_grads(grads, "dense.", dense_grads)
    add_grads(grads, "LayerNorm.", ln_grads)
    return dh, dsum, grads


def encoder_layer_forward(x, mask_bias, p, config, rng, training, attention_output_dropout=True):
    """x: (B, T, C)  ->  y (B, T, C), attention probabilities (B, H, T, T).
    `attention_output_dropout=False` leaves out the dropout after the attention projection
    (DistilBERT's layer, which is otherwise the same)."""
    act_forward, _ = ACT2FN[config.hidden_act]
    p_drop = config.hidden_dropout_prob
    context, probs, att_cache = self_attention_forward(
        x, mask_bias, subdict(p, "attention.self."), config.num_attention_heads,
        config.attention_probs_dropout_prob, rng, training)
    a, att_out_cache = add_norm_forward(context, x, subdict(p, "attention.output."), config, rng,
                                        training, p_drop if attention_output_dropout else 0.0)  # (B, T, C)
    h, inter_cache = linear_forward(a, p["intermediate.dense.weight"], None)        # a W1^T
    h, act_cache = act_forward(h, bias=p["intermediate.dense.bias"])                # act(a W1^T + b1): (B, T, I)
    y, out_cache = add_norm_forward(h, a, subdict(p, "output."), config, rng, training, p_drop)
    cache = (att_cache, att_out_cache, inter_cache, act_cache, out_cache, config)
    return y, probs, cache


def encoder_layer_backward(dy, cache):
    """dy: (B, T, C)  ->  dx (B, T, C) and every parameter gradient of the layer (local names)."""
    att_cache, att_out_cache, inter_cache, act_cache, out_cache, config = cache
    _, act_backward = ACT2FN[config.hidden_act]
    grads = {}
    dh, da, g = add_norm_backward(dy, out_cache)
    add_grads(grads, "output.", g)
    dh, g = linear_backward(act_backward(dh, act_cache), inter_cache)
    add_grads(grads, "intermediate.dense.", g)
    da = da + dh                                           # a feeds both the FFN and its residual
    dcontext, dx, g = add_norm_backward(da, att_out_cache)
    add_grads(grads, "attention.output.", g)
    dx_att, g = self_attention_backward(dcontext, att_cache, config.num_attention_heads)
    add_grads(grads, "attention.self.", g)
    return dx + dx_att, grads


def encoder_forward(x, mask_bias, p, config, rng, training):
    """Run the L layers `layer.{i}.*`.  Returns the output, every layer's output, every layer's
    attention probabilities, and the caches."""
    hidden_states, attentions, caches = [], [], []
    for i in range(config.num_hidden_layers):
        x, probs, cache = encoder_layer_forward(x, mask_bias, subdict(p, f"layer.{i}."),
                                                config, rng, training)
        hidden_states.append(x)
        attentions.append(probs)
        caches.append(cache)
    return x, hidden_states, attentions, caches


def encoder_backward(dy, caches, first_layer=0):
    """Back through the stack, last layer first, down to `first_layer` (the layers below it are
    frozen: no gradient is needed there, so the pass stops)."""
    grads = {}
    for i in reversed(range(first_layer, len(caches))):
        dy, g = encoder_layer_backward(dy, caches[i])
        add_grads(grads, f"layer.{i}.", g)
    return dy, grads


def pooler_forward(h, p):
    """h: (B, T, C)  ->  tanh(h[:, 0] W^T + b): (B, C)."""
    z, dense_cache = linear_forward(h[:, 0], p["dense.weight"], p["dense.bias"])
    pooled, tanh_cache = tanh_forward(z)
    return pooled, (dense_cache, tanh_cache, h.shape)


def pooler_backward(dpooled, cache):
    """dpooled: (B, C)  ->  dh (B, T, C), non-zero only at position 0."""
    dense_cache, tanh_cache, h_shape = cache
    dfirst, g = linear_backward(tanh_backward(dpooled, tanh_cache), dense_cache)
    dh = np.zeros(h_shape, dtype=dfirst.dtype)
    dh[:, 0] = dfirst
    return dh, {"dense.weight": g["weight"], "dense.bias": g["bias"]}
