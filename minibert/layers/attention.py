"""Multi-head self-attention (Vaswani et al. 2017, section 3.2; HF `BertSelfAttention`).

    Q = x Wq^T + bq,  K = x Wk^T + bk,  V = x Wv^T + bv       (B, T, C) each, split into H heads of D
    S = Q K^T / sqrt(D) + M                                   (B, H, T, T)
    P = softmax(S)                  over the keys; dropout on P in training
    context = P V                                             (B, H, T, D), heads merged: (B, T, C)

M is the additive padding mask: 0 where the key is a real token and the dtype's most negative
number where it is padding, so a padded key gets exactly zero probability.
Parameters are keyed by HF's local names: `query.weight`, `query.bias`, `key.*`, `value.*`.
"""

import math

import numpy as np

from .dropout import dropout_backward, dropout_forward
from .linear import linear_backward, linear_forward
from .softmax import softmax_backward, softmax_forward

PROJECTIONS = ("query", "key", "value")


def attention_mask_bias(attention_mask, dtype):
    """(B, T) of 1 = attend / 0 = padding  ->  additive bias M (B, 1, 1, T), or None when nothing
    is padded (adding zeros would change no score)."""
    if attention_mask.all():
        return None
    keep = attention_mask[:, None, None, :].astype(dtype)
    return (1.0 - keep) * np.finfo(dtype).min


def split_heads(x, num_heads):
    B, T, C = x.shape
    return x.reshape(B, T, num_heads, C // num_heads).transpose(0, 2, 1, 3)   # (B, H, T, D)


def merge_heads(x):
    B, H, T, D = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, H * D)                      # (B, T, C)


def self_attention_forward(x, mask_bias, params, num_heads, dropout_p, rng, training):
    """x: (B, T, C), mask_bias: (B, 1, 1, T) or None  ->  context (B, T, C).
    The cache holds the attention probabilities P under "probs" (B, H, T, T)."""
    heads, linear_caches = [], []
    for name in PROJECTIONS:
        y, c = linear_forward(x, params[f"{name}.weight"], params[f"{name}.bias"])   # (B, T, C)
        heads.append(split_heads(y, num_heads))                                       # (B, H, T, D)
        linear_caches.append(c)
    q, k, v = heads
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = (q @ k.transpose(0, 1, 3, 2)) * scale                    # (B, H, T, T)
    if mask_bias is not None:
        scores = scores + mask_bias
    probs, softmax_cache = softmax_forward(scores)
    dropped, dropout_cache = dropout_forward(probs, dropout_p, rng, training)
    context = merge_heads(dropped @ v)                                 # (B, T, C)
    cache = dict(probs=probs, q=q, k=k, v=v, scale=scale, dropped=dropped, num_heads=num_heads,
                 linear_caches=linear_caches, softmax_cache=softmax_cache, dropout_cache=dropout_cache)
    return context, cache


def self_attention_backward(dcontext, cache):
    """dcontext: (B, T, C)  ->  dx (B, T, C) and the gradients of the Q, K, V projections."""
    q, k, v, scale = cache["q"], cache["k"], cache["v"], cache["scale"]
    dctx = split_heads(dcontext, cache["num_heads"])                   # (B, H, T, D)
    dv = cache["dropped"].transpose(0, 1, 3, 2) @ dctx                 # (B, H, T, D)
    ddropped = dctx @ v.transpose(0, 1, 3, 2)                          # (B, H, T, T)
    dprobs, _ = dropout_backward(ddropped, cache["dropout_cache"])
    dscores, _ = softmax_backward(dprobs, cache["softmax_cache"])
    dscores = dscores * scale
    dq = dscores @ k                                                   # (B, H, T, D)
    dk = dscores.transpose(0, 1, 3, 2) @ q                             # (B, H, T, D)
    dx, grads = 0.0, {}
    for name, d, c in zip(PROJECTIONS, (dq, dk, dv), cache["linear_caches"]):
        dx_part, g = linear_backward(merge_heads(d), c)                # (B, T, C)
        dx = dx + dx_part
        grads[f"{name}.weight"], grads[f"{name}.bias"] = g["weight"], g["bias"]
    return dx, grads


def packed_self_attention_forward(x, groups, params, num_heads, dropout_p, rng, training):
    """Attention over packed rows, no padding anywhere (models/packing.py).  x: (N, C), the real
    tokens of a batch; groups: (first row, S, L) for each run of S sequences of L tokens, which are
    rows first .. first + S L.  Each group is an (S, L, C) batch with nothing to mask, and goes
    through self_attention_forward as it is.  ->  context (N, C); the cache holds each group's
    probabilities (S, H, L, L) under "probs"."""
    C = x.shape[-1]
    contexts, caches = [], []
    for first, S, L in groups:
        context, cache = self_attention_forward(x[first:first + S * L].reshape(S, L, C), None, params,
                                                num_heads, dropout_p, rng, training)      # (S, L, C)
        contexts.append(context.reshape(S * L, C))
        caches.append(cache)
    return np.concatenate(contexts), dict(groups=groups, caches=caches, probs=[c["probs"] for c in caches])


def packed_self_attention_backward(dcontext, cache):
    """dcontext: (N, C)  ->  dx (N, C) and the projections' gradients, summed over the groups."""
    C = dcontext.shape[-1]
    dxs, grads = [], {}
    for (first, S, L), group_cache in zip(cache["groups"], cache["caches"]):
        dx, g = self_attention_backward(dcontext[first:first + S * L].reshape(S, L, C), group_cache)
        dxs.append(dx.reshape(S * L, C))
        for name, value in g.items():
            grads[name] = grads[name] + value if name in grads else value
    return np.concatenate(dxs), grads
