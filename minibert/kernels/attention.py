"""Fast multi-head self-attention: `layers.attention`.

The three projections run as one product with the stacked matrix [Wq; Wk; Wv] (3C, C): one BLAS
call with three times the work keeps the cores busier than three small ones.  The scale 1/sqrt(D)
is folded into the query projection: (s Q) K^T = s (Q K^T), and scaling Wq and bq (C x C numbers)
costs less than scaling the scores (B H T T numbers, 4-16x more), in the backward too
(dWq = s dWq').  The per-head products run through `stacked_matmul` (parallel.py), whole heads
per core; P V is written straight into a (B, T, C) buffer, its heads already merged.
"""

import numpy as np

from ..layers.attention import PROJECTIONS, split_heads
from ..layers.dropout import dropout_backward, dropout_forward
from .linear import linear_backward, linear_forward
from .parallel import stacked_matmul
from .softmax import softmax_backward, softmax_forward


def merged_heads_buffer(B, T, num_heads, D, dtype):
    """An empty (B, T, C) array and its (B, H, T, D) view: per-head results written into the view
    come out with their heads merged (textbook: layers.attention.merge_heads, one more copy)."""
    merged = np.empty((B, T, num_heads, D), dtype=dtype)
    return merged.reshape(B, T, num_heads * D), merged.transpose(0, 2, 1, 3)


def self_attention_forward(x, mask_bias, params, num_heads, dropout_p, rng, training):
    """As layers.attention.self_attention_forward."""
    B, T, C = x.shape
    D = C // num_heads
    scale = float(D) ** -0.5
    w_qkv = np.concatenate([params[f"{name}.weight"] for name in PROJECTIONS])   # (3C, C)
    b_qkv = np.concatenate([params[f"{name}.bias"] for name in PROJECTIONS])     # (3C,)
    w_qkv[:C] *= scale                                                  # s Wq, s bq (in the copies)
    b_qkv[:C] *= scale
    qkv, qkv_cache = linear_forward(x, w_qkv, b_qkv)                                  # (B, T, 3C)
    q, k, v = qkv.reshape(B, T, 3, num_heads, D).transpose(2, 0, 3, 1, 4)            # 3 x (B, H, T, D)
    scores = stacked_matmul(q, k.transpose(0, 1, 3, 2))                 # (B, H, T, T), = Q K^T / sqrt(D)
    if mask_bias is not None:
        scores += mask_bias
    probs, softmax_cache = softmax_forward(scores)
    dropped, dropout_cache = dropout_forward(probs, dropout_p, rng, training)
    context, context_heads = merged_heads_buffer(B, T, num_heads, D, v.dtype)
    stacked_matmul(dropped, v, out=context_heads)                       # merge_heads(P V): (B, T, C)
    cache = dict(probs=probs, q=q, k=k, v=v, scale=scale, dropped=dropped, num_heads=num_heads,
                 qkv_cache=qkv_cache, softmax_cache=softmax_cache, dropout_cache=dropout_cache)
    return context, cache


def self_attention_backward(dcontext, cache):
    """As layers.attention.self_attention_backward."""
    q, k, v, scale, H = cache["q"], cache["k"], cache["v"], cache["scale"], cache["num_heads"]
    B, T, C = dcontext.shape
    dctx = split_heads(dcontext, H)                                     # (B, H, T, D)
    dv = stacked_matmul(cache["dropped"].transpose(0, 1, 3, 2), dctx)   # (B, H, T, D)
    dprobs, _ = dropout_backward(stacked_matmul(dctx, v.transpose(0, 1, 3, 2)), cache["dropout_cache"])
    dscores, _ = softmax_backward(dprobs, cache["softmax_cache"])       # (B, H, T, T)
    dq = stacked_matmul(dscores, k)                                     # (B, H, T, D), d/d(s Q)
    dk = stacked_matmul(dscores.transpose(0, 1, 3, 2), q)               # (B, H, T, D)
    dqkv = np.stack([dq, dk, dv], axis=2)                               # (B, H, 3, T, D)
    dqkv = dqkv.transpose(0, 3, 2, 1, 4).reshape(B, T, 3 * C)           # (B, T, 3C): [q | k | v]
    dx, g = linear_backward(dqkv, cache["qkv_cache"])
    grads = {}
    for i, name in enumerate(PROJECTIONS):
        grads[f"{name}.weight"] = g["weight"][i * C:(i + 1) * C]
        grads[f"{name}.bias"] = g["bias"][i * C:(i + 1) * C]
    grads["query.weight"] *= scale                                      # d/dWq = s d/d(s Wq)
    grads["query.bias"] *= scale
    return dx, grads
