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
from ..layers.dropout import dropout_backward, dropout_forward, dropout_mask
from .linear import linear_backward, linear_forward
from .memory import empty_apart
from .parallel import NUM_THREADS, for_each_piece, rows, stacked_matmul
from .softmax import (masked_softmax_forward, softmax_backward, softmax_forward, softmax_grad_rows_here,
                      softmax_rows_here)


def merged_heads_buffer(B, T, num_heads, D, dtype):
    """An empty (B, T, C) array and its (B, H, T, D) view: per-head results written into the view
    come out with their heads merged (textbook: layers.attention.merge_heads, one more copy)."""
    merged = np.empty((B, T, num_heads, D), dtype=dtype)
    return merged.reshape(B, T, num_heads * D), merged.transpose(0, 2, 1, 3)


def project_qkv(x, params, num_heads):
    """[s Q | K | V] = x [s Wq; Wk; Wv]^T + [s bq; bk; bv], s = 1/sqrt(D): one product.
    x: (..., C)  ->  (..., 3C), its linear cache, and s."""
    C = x.shape[-1]
    scale = float(C // num_heads) ** -0.5
    w_qkv = np.concatenate([params[f"{name}.weight"] for name in PROJECTIONS])   # (3C, C)
    b_qkv = np.concatenate([params[f"{name}.bias"] for name in PROJECTIONS])     # (3C,)
    w_qkv[:C] *= scale                                                  # s Wq, s bq (in the copies)
    b_qkv[:C] *= scale
    qkv, qkv_cache = linear_forward(x, w_qkv, b_qkv)                   # (..., 3C)
    return qkv, qkv_cache, scale


def qkv_backward(dqkv, qkv_cache, scale):
    """dqkv: (..., 3C) = [d(sQ) | dK | dV]  ->  dx and the gradients of the three projections."""
    C = dqkv.shape[-1] // 3
    dx, g = linear_backward(dqkv, qkv_cache)
    grads = {}
    for i, name in enumerate(PROJECTIONS):
        grads[f"{name}.weight"] = g["weight"][i * C:(i + 1) * C]
        grads[f"{name}.bias"] = g["bias"][i * C:(i + 1) * C]
    grads["query.weight"] *= scale                                      # d/dWq = s d/d(s Wq)
    grads["query.bias"] *= scale
    return dx, grads


def self_attention_forward(x, mask_bias, params, num_heads, dropout_p, rng, training):
    """As layers.attention.self_attention_forward."""
    B, T, C = x.shape
    D = C // num_heads
    qkv, qkv_cache, scale = project_qkv(x, params, num_heads)                         # (B, T, 3C)
    q, k, v = qkv.reshape(B, T, 3, num_heads, D).transpose(2, 0, 3, 1, 4)            # 3 x (B, H, T, D)
    scores = stacked_matmul(q, k.transpose(0, 1, 3, 2))                 # (B, H, T, T), = Q K^T / sqrt(D)
    if mask_bias is None:
        probs, softmax_cache = softmax_forward(scores)
    else:
        probs, softmax_cache = masked_softmax_forward(scores, mask_bias)            # softmax(S + M)
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
    return qkv_backward(dqkv, cache["qkv_cache"], scale)


# ---- packed rows (models/packing.py) -------------------------------------------------------
# The groups of a packed batch are many small attention problems (one sequence of 20 tokens:
# twelve 20 x 20 score matrices).  One call per group into the row-block machinery would pay its
# fixed costs per group; instead the groups (large ones cut into one piece per thread) are shared
# among the threads, each running its pieces' whole chain -- Q K^T, softmax, dropout, P V -- with
# plain NumPy on its own core, BLAS held to one thread.  The dropout masks are drawn beforehand,
# group by group, in the order the textbook version draws them, so both give the same numbers.

def _pieces(groups):
    """(group number, first sequence, end sequence) pieces: each group cut into NUM_THREADS
    pieces of whole sequences (fewer when it has fewer), and the work each one costs."""
    pieces, costs = [], []
    for g, (first, S, L) in enumerate(groups):
        step = -(-S // NUM_THREADS)
        for s0 in range(0, S, step):
            s1 = min(S, s0 + step)
            pieces.append((g, s0, s1))
            costs.append((s1 - s0) * L * (L + 16))          # the products, plus a per-row cost
    return pieces, costs


def _group_view(a, first, L, s0, s1, num_heads, parts):
    """Rows of packed (N, parts * C) for sequences s0..s1 of a group  ->  parts x (s, H, L, D)."""
    rows = a[first + s0 * L:first + s1 * L]
    s, D = s1 - s0, a.shape[-1] // (parts * num_heads)
    return rows.reshape(s, L, parts, num_heads, D).transpose(2, 0, 3, 1, 4)


def packed_self_attention_forward(x, groups, params, num_heads, dropout_p, rng, training):
    """As layers.attention.packed_self_attention_forward: x (N, C) -> context (N, C)."""
    N, C = x.shape
    H = num_heads
    qkv, qkv_cache, scale = project_qkv(x, params, H)                  # (N, 3C): one product for all
    context = np.empty((N, C), dtype=qkv.dtype)
    probs = [np.empty((S, H, L, L), dtype=qkv.dtype) for _, S, L in groups]
    masks = None
    if training and dropout_p > 0.0:
        masks = [dropout_mask((S, H, L, L), dropout_p, rng, qkv.dtype) for _, S, L in groups]
    dropped = probs if masks is None else [empty_apart(p) for p in probs]
    pieces, costs = _pieces(groups)

    def attend(i):
        g, s0, s1 = pieces[i]
        first, _, L = groups[g]
        q, k, v = _group_view(qkv, first, L, s0, s1, H, 3)            # (s, H, L, D) each
        scores = np.matmul(q, k.transpose(0, 1, 3, 2))                   # (s, H, L, L)
        p = probs[g][s0:s1]
        softmax_rows_here(scores.reshape(-1, L), p.reshape(-1, L))
        if masks is not None:
            np.multiply(p, masks[g][s0:s1], out=dropped[g][s0:s1])
        ctx, = _group_view(context, first, L, s0, s1, H, 1)
        np.matmul(dropped[g][s0:s1], v, out=ctx)                         # (s, H, L, D), heads merged

    for_each_piece(attend, costs)
    cache = dict(groups=groups, pieces=pieces, costs=costs, probs=probs, dropped=dropped, masks=masks,
                 qkv=qkv, scale=scale, num_heads=H, qkv_cache=qkv_cache)
    return context, cache


def packed_self_attention_backward(dcontext, cache):
    """As layers.attention.packed_self_attention_backward."""
    groups, probs, dropped, masks, qkv, H = (cache[k] for k in ("groups", "probs", "dropped", "masks",
                                                                "qkv", "num_heads"))
    dqkv = np.empty_like(qkv)                                           # (N, 3C): [d(sQ) | dK | dV]
    pieces = cache["pieces"]

    def attend_backward(i):
        g, s0, s1 = pieces[i]
        first, _, L = groups[g]
        q, k, v = _group_view(qkv, first, L, s0, s1, H, 3)
        dq, dk, dv = _group_view(dqkv, first, L, s0, s1, H, 3)
        dctx, = _group_view(dcontext, first, L, s0, s1, H, 1)
        np.matmul(dropped[g][s0:s1].transpose(0, 1, 3, 2), dctx, out=dv)
        dprobs = np.matmul(dctx, v.transpose(0, 1, 3, 2))                # (s, H, L, L)
        if masks is not None:
            dprobs *= masks[g][s0:s1]
        dscores = empty_apart(dprobs)
        softmax_grad_rows_here(rows(dprobs), rows(probs[g][s0:s1]), rows(dscores))
        np.matmul(dscores, k, out=dq)
        np.matmul(dscores.transpose(0, 1, 3, 2), q, out=dk)

    for_each_piece(attend_backward, cache["costs"])
    return qkv_backward(dqkv, cache["qkv_cache"], cache["scale"])
