"""Multi-head self-attention (Vaswani et al. 2017, section 3.2; HF `BertSelfAttention`).

Shapes: B batch, T sequence, C hidden, H heads, D = C // H head size.

    Q = x Wq^T + bq,  K = x Wk^T + bk,  V = x Wv^T + bv          (B, T, C) each, split into H heads
    S = Q K^T / sqrt(D) + M                                     (B, H, T, T)
    P = softmax(S)         (over the key axis; dropout on P in training)
    context = P V                                               (B, H, T, D) -> (B, T, C)

M is the additive padding mask: 0 where the key is a real token and the dtype's most
negative number where it is padding, so padded keys get exactly zero probability.

Parameters `p` are keyed by HF's local names: `query.weight`, `query.bias`, `key.*`, `value.*`.
"""

import numpy as np

from .layers import (dropout_backward, dropout_forward, linear_backward, linear_forward,
                     softmax_backward, softmax_forward)
from .parallel import stacked_matmul


def attention_mask_bias(attention_mask, dtype):
    """(B, T) of 1 = attend / 0 = padding  ->  additive bias (B, 1, 1, T) for the scores, or None
    when nothing is padded (adding zeros would change no score)."""
    if attention_mask.all():
        return None
    keep = attention_mask[:, None, None, :].astype(dtype)
    return (1.0 - keep) * np.finfo(dtype).min


def split_heads(x, num_heads):
    B, T, C = x.shape
    return x.reshape(B, T, num_heads, C // num_heads).transpose(0, 2, 1, 3)   # (B, H, T, D)


def merged_heads_buffer(B, T, num_heads, D, dtype):
    """An empty (B, T, C) array and its (B, H, T, D) view: per-head results written into the view
    come out with their heads already merged, the inverse of split_heads.  (Plainly, with the
    per-head results in x: x.transpose(0, 2, 1, 3).reshape(B, T, C), one more copy.)"""
    merged = np.empty((B, T, num_heads, D), dtype=dtype)
    return merged.reshape(B, T, num_heads * D), merged.transpose(0, 2, 1, 3)


def self_attention_forward(x, mask_bias, p, num_heads, dropout_p, rng, training):
    """x: (B, T, C), mask_bias: (B, 1, 1, T) or None  ->  context (B, T, C), probabilities (B, H, T, T).

    The three projections run as one product with the stacked matrix [Wq; Wk; Wv] (3C, C): one
    BLAS call with three times the work keeps the cores busier than three small ones.  The scale
    1/sqrt(D) is folded into the query projection: (s Q) K^T = s (Q K^T), and scaling Wq and bq
    (C x C numbers) is cheaper than scaling the scores (B H T T numbers, 4-16x more), in the
    backward too (dWq = s dWq').  Plainly:

        q = x @ Wq.T + bq;  k = x @ Wk.T + bk;  v = x @ Wv.T + bv
        scores = q @ k.T / sqrt(D)

    The per-head products (scores, context) are `a @ b` over the (B, H) stack, run by
    `stacked_matmul` (parallel.py) to keep every core busy with these small matrices.
    """
    B, T, C = x.shape
    D = C // num_heads
    scale = float(D) ** -0.5
    w_qkv = np.concatenate([p["query.weight"], p["key.weight"], p["value.weight"]])   # (3C, C)
    b_qkv = np.concatenate([p["query.bias"], p["key.bias"], p["value.bias"]])         # (3C,)
    w_qkv[:C] *= scale                                                  # s Wq, s bq (in the copies)
    b_qkv[:C] *= scale
    qkv, qkv_cache = linear_forward(x, w_qkv, b_qkv)                                  # (B, T, 3C)
    q, k, v = qkv.reshape(B, T, 3, num_heads, D).transpose(2, 0, 3, 1, 4)            # 3 x (B, H, T, D); q scaled
    scores = stacked_matmul(q, k.transpose(0, 1, 3, 2))                 # (B, H, T, T), = Q K^T / sqrt(D)
    if mask_bias is not None:
        scores += mask_bias
    probs, sm_cache = softmax_forward(scores)
    probs_dropped, drop_mask = dropout_forward(probs, dropout_p, rng, training)
    context, context_heads = merged_heads_buffer(B, T, num_heads, D, v.dtype)
    stacked_matmul(probs_dropped, v, out=context_heads)                 # merge_heads(P V): (B, T, C)
    cache = (qkv_cache, q, k, v, scale, sm_cache, probs_dropped, drop_mask)
    return context, probs, cache


def self_attention_backward(dcontext, cache, num_heads):
    """dcontext: (B, T, C)  ->  dx (B, T, C) and the gradients of the Q, K, V projections."""
    qkv_cache, q, k, v, scale, sm_cache, probs_dropped, drop_mask = cache
    B, T, C = dcontext.shape
    dctx = split_heads(dcontext, num_heads)                             # (B, H, T, D)
    dv = stacked_matmul(probs_dropped.transpose(0, 1, 3, 2), dctx)      # (B, H, T, D)
    dprobs = dropout_backward(stacked_matmul(dctx, v.transpose(0, 1, 3, 2)), drop_mask)  # (B, H, T, T)
    dscores = softmax_backward(dprobs, sm_cache)                        # (B, H, T, T)
    dq = stacked_matmul(dscores, k)                                     # (B, H, T, D)
    dk = stacked_matmul(dscores.transpose(0, 1, 3, 2), q)               # (B, H, T, D)
    dqkv = np.stack([dq, dk, dv], axis=2)                               # (B, H, 3, T, D)
    dqkv = dqkv.transpose(0, 3, 2, 1, 4).reshape(B, T, 3 * C)           # (B, T, 3C): [q | k | v]
    dx, g = linear_backward(dqkv, qkv_cache)
    grads = {}
    for i, name in enumerate(("query", "key", "value")):
        grads[f"{name}.weight"] = g["weight"][i * C:(i + 1) * C]
        grads[f"{name}.bias"] = g["bias"][i * C:(i + 1) * C]
    grads["query.weight"] *= scale                                      # d/dWq = s d/d(s Wq)
    grads["query.bias"] *= scale
    return dx, grads
