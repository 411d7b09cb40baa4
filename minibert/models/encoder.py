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

from .. import ops
from .params import add_grads, subdict


def encoder_layer_forward(x, mask_bias, params, config, rng, training, attention_output_dropout=True,
                          groups=None):
    """x: (B, T, C)  ->  y (B, T, C); the attention probabilities (B, H, T, T) are in the cache,
    cache["attention"]["probs"].  `attention_output_dropout=False` leaves out the dropout after
    the attention projection (DistilBERT's layer, otherwise the same).

    Unpadded (models/packing.py): x is a batch's real tokens packed, (N, C), mask_bias is None,
    and attention runs on each of the `groups` of sequences; every other step is the same."""
    p_drop, eps = config.hidden_dropout_prob, config.layer_norm_eps
    cache = {}
    # attention block: a = LayerNorm(x + dropout(attention(x) Wo^T + bo))
    attention_args = (subdict(params, "attention.self."), config.num_attention_heads,
                      config.attention_probs_dropout_prob, rng, training)
    if groups is None:
        context, cache["attention"] = ops.self_attention_forward(x, mask_bias, *attention_args)   # (B, T, C)
    else:
        context, cache["attention"] = ops.packed_self_attention_forward(x, groups, *attention_args)  # (N, C)
    h, cache["attention_dense"] = ops.linear_forward(
        context, params["attention.output.dense.weight"], params["attention.output.dense.bias"])
    h, cache["attention_dropout"] = ops.dropout_forward(
        h, p_drop if attention_output_dropout else 0.0, rng, training)
    a, cache["attention_norm"] = ops.add_layer_norm_forward(
        h, x, params["attention.output.LayerNorm.weight"], params["attention.output.LayerNorm.bias"], eps)
    # feed-forward block: y = LayerNorm(a + dropout(act(a W1^T + b1) W2^T + b2))
    h, cache["intermediate"] = ops.linear_activation_forward(
        a, params["intermediate.dense.weight"], params["intermediate.dense.bias"], config.hidden_act)  # (B, T, I)
    h, cache["output_dense"] = ops.linear_forward(h, params["output.dense.weight"], params["output.dense.bias"])
    h, cache["output_dropout"] = ops.dropout_forward(h, p_drop, rng, training)
    y, cache["output_norm"] = ops.add_layer_norm_forward(
        h, a, params["output.LayerNorm.weight"], params["output.LayerNorm.bias"], eps)   # (B, T, C)
    return y, cache


def encoder_layer_backward(dy, cache):
    """dy: (B, T, C)  ->  dx (B, T, C) and every parameter gradient of the layer (local names)."""
    grads = {}
    # feed-forward block; the sum a + h passes its gradient to both terms
    dsum, g = ops.add_layer_norm_backward(dy, cache["output_norm"])
    add_grads(grads, "output.LayerNorm.", g)
    dh, _ = ops.dropout_backward(dsum, cache["output_dropout"])
    dh, g = ops.linear_backward(dh, cache["output_dense"])
    add_grads(grads, "output.dense.", g)
    dh, g = ops.linear_activation_backward(dh, cache["intermediate"])
    add_grads(grads, "intermediate.dense.", g)
    da = dsum + dh                                          # a feeds both the FFN and its residual
    # attention block
    dsum, g = ops.add_layer_norm_backward(da, cache["attention_norm"])
    add_grads(grads, "attention.output.LayerNorm.", g)
    dh, _ = ops.dropout_backward(dsum, cache["attention_dropout"])
    dh, g = ops.linear_backward(dh, cache["attention_dense"])
    add_grads(grads, "attention.output.dense.", g)
    if "groups" in cache["attention"]:
        dx, g = ops.packed_self_attention_backward(dh, cache["attention"])
    else:
        dx, g = ops.self_attention_backward(dh, cache["attention"])
    add_grads(grads, "attention.self.", g)
    return dsum + dx, grads                                 # x feeds attention and its residual


def encoder_forward(x, mask_bias, params, config, rng, training, groups=None):
    """Run the L layers `layer.{i}.*` (on packed rows with `groups`).  Returns the output, every
    layer's output, every layer's attention probabilities, and the caches."""
    hidden_states, attentions, caches = [], [], []
    for i in range(config.num_hidden_layers):
        x, cache = encoder_layer_forward(x, mask_bias, subdict(params, f"layer.{i}."), config, rng, training,
                                         groups=groups)
        hidden_states.append(x)
        attentions.append(cache["attention"]["probs"])
        caches.append(cache)
    return x, hidden_states, attentions, caches


def encoder_backward(dy, caches, trainable_layers=None):
    """Back through the stack, last layer first.  With `trainable_layers` N, only the top N layers
    get gradients: the layers below are frozen, no gradient is needed there, and the pass stops."""
    grads = {}
    L = len(caches)
    first = 0 if trainable_layers is None else L - trainable_layers
    for i in reversed(range(first, L)):
        dy, g = encoder_layer_backward(dy, caches[i])
        add_grads(grads, f"layer.{i}.", g)
    return dy, grads


def pooler_forward(h, params):
    """h: (B, T, C)  ->  tanh(h[:, 0] W^T + b): (B, C)."""
    pooled, cache = ops.linear_activation_forward(h[:, 0], params["dense.weight"], params["dense.bias"], "tanh")
    return pooled, (cache, h.shape)


def pooler_backward(dpooled, cache):
    """dpooled: (B, C)  ->  dh (B, T, C), non-zero only at position 0."""
    dense_cache, h_shape = cache
    dfirst, g = ops.linear_activation_backward(dpooled, dense_cache)
    dh = np.zeros(h_shape, dtype=dfirst.dtype)
    dh[:, 0] = dfirst
    return dh, {"dense.weight": g["weight"], "dense.bias": g["bias"]}
