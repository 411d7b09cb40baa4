"""Fast multi-head self-attention: `layers.attention`, padded and packed, one compiled loop.

The three projections run as one product with the stacked matrix [Wq; Wk; Wv] (3C, C): one BLAS
call with three times the work keeps the cores busier than three small ones.  The scale 1/sqrt(D)
is folded into the query projection: (s Q) K^T = s (Q K^T), and scaling Wq and bq (C x C numbers)
costs less than scaling the scores (in the backward too: dWq = s dWq').

Everything after the product is one compiled loop over (sequence, head) tasks: for each query
row, its scores against the sequence's keys, their softmax, dropout, and the weighted sum of the
values, written straight into the (N, C) context with the heads merged.  A padded batch is B
sequences of T rows with an additive key bias (the padding mask); a packed batch
(models/packing.py) is sequences of their own lengths with nothing to mask.  The tasks are cut
into one contiguous span per thread of about equal work (L^2 per task), so there is no Python per
sequence and no thread waits on another.  The backward recomputes the dropped probabilities from
the probabilities and the mask instead of keeping a third (.., L, L) array.

The products inside a task are small (L x D by D x L, L = a sentence's length, D = 32-64): they run
as plain loops whose inner loop runs over contiguous numbers (a key's D values, or one row of the
transposed keys), which LLVM vectorises; a BLAS call per head would cost more in calls than in
arithmetic.  Dropout masks are drawn beforehand, sequence by sequence, in the order the textbook
draws them, so both give the same numbers.
"""

import numpy as np
from numba import get_num_threads, njit, prange

from ..layers.attention import PROJECTIONS
from ..layers.dropout import dropout_mask
from .elementary import SUMS
from .linear import linear_backward, linear_forward
from .softmax import softmax_row


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


@njit(parallel=True, cache=True, fastmath=SUMS)
def attention_rows(qkv, H, starts, lengths, prob_offsets, key_bias, drop_mask, spans, context, probs):
    """qkv: (N, 3C) rows [sQ | K | V]; sequence s is rows starts[s] .. + lengths[s]; its (H, L, L)
    probabilities are probs[prob_offsets[s]:], flat, as is its dropout mask (drop_mask, or empty);
    key_bias: (sequences, L) added to every score row (or empty).  Tasks spans[p] .. spans[p+1]
    (task = s H + h) run on thread p.  Writes context (N, C) and probs."""
    C = context.shape[1]
    D = C // H
    L_max = lengths.max()
    t = qkv.dtype.type
    for p in prange(spans.shape[0] - 1):
        k_t = np.empty((D, L_max), dtype=qkv.dtype)                 # one head's keys, transposed
        acc = np.empty(D, dtype=qkv.dtype)
        for task in range(spans[p], spans[p + 1]):
            s, h = task // H, task % H
            r0, L = starts[s], lengths[s]
            base = prob_offsets[s] + h * L * L
            for j in range(L):
                for d in range(D):
                    k_t[d, j] = qkv[r0 + j, C + h * D + d]
            for i in range(L):
                row = probs[base + i * L:base + (i + 1) * L]         # the scores, then P, in place
                row[:] = t(0.0)
                for d in range(D):
                    q = qkv[r0 + i, h * D + d]
                    for j in range(L):
                        row[j] += q * k_t[d, j]
                if key_bias.size:
                    for j in range(L):
                        row[j] += key_bias[s, j]
                softmax_row(row, row)
                acc[:] = t(0.0)
                for j in range(L):
                    w = row[j]
                    if drop_mask.size:
                        w *= drop_mask[base + i * L + j]
                    for d in range(D):
                        acc[d] += w * qkv[r0 + j, 2 * C + h * D + d]
                for d in range(D):
                    context[r0 + i, h * D + d] = acc[d]


@njit(parallel=True, cache=True, fastmath=SUMS)
def attention_grad_rows(qkv, H, starts, lengths, prob_offsets, drop_mask, spans, probs, dcontext, dqkv):
    """The backward of attention_rows: dqkv (N, 3C) = [d(sQ) | dK | dV], written."""
    C = dcontext.shape[1]
    D = C // H
    L_max = lengths.max()
    t = qkv.dtype.type
    for p in prange(spans.shape[0] - 1):
        v_t = np.empty((D, L_max), dtype=qkv.dtype)                 # one head's values, transposed
        dp = np.empty(L_max, dtype=qkv.dtype)
        acc = np.empty(D, dtype=qkv.dtype)
        for task in range(spans[p], spans[p + 1]):
            s, h = task // H, task % H
            r0, L = starts[s], lengths[s]
            base = prob_offsets[s] + h * L * L
            qc, kc, vc = h * D, C + h * D, 2 * C + h * D
            for j in range(L):
                for d in range(D):
                    v_t[d, j] = qkv[r0 + j, vc + d]
                    dqkv[r0 + j, kc + d] = t(0.0)
                    dqkv[r0 + j, vc + d] = t(0.0)
            for i in range(L):
                prob = probs[base + i * L:base + (i + 1) * L]
                dp[:L] = t(0.0)                                      # dP_ij = dctx_i . v_j
                for d in range(D):
                    g = dcontext[r0 + i, h * D + d]
                    for j in range(L):
                        dp[j] += g * v_t[d, j]
                for j in range(L):                                   # dV_j += dropped_ij dctx_i
                    w = prob[j]
                    if drop_mask.size:
                        w *= drop_mask[base + i * L + j]
                        dp[j] *= drop_mask[base + i * L + j]
                    for d in range(D):
                        dqkv[r0 + j, vc + d] += w * dcontext[r0 + i, h * D + d]
                dot = t(0.0)                                         # softmax: dS = P (dP - P . dP)
                for j in range(L):
                    dot += dp[j] * prob[j]
                acc[:] = t(0.0)
                for j in range(L):
                    ds = prob[j] * (dp[j] - dot)
                    for d in range(D):                               # dQ_i += dS_ij k_j
                        acc[d] += ds * qkv[r0 + j, kc + d]
                    for d in range(D):                               # dK_j += dS_ij q_i
                        dqkv[r0 + j, kc + d] += ds * qkv[r0 + i, qc + d]
                for d in range(D):
                    dqkv[r0 + i, qc + d] = acc[d]


def work_spans(lengths, num_heads):
    """Task bounds (threads + 1,): contiguous spans of (sequence, head) tasks of about equal work,
    L^2 + L per task (the products, plus a per-row cost), one span per thread."""
    cost = np.repeat(lengths.astype(np.float64) * (lengths + 1), num_heads)
    threads = max(1, min(get_num_threads(), len(cost)))
    total = np.concatenate([[0.0], np.cumsum(cost)])
    bounds = np.searchsorted(total, total[-1] * np.arange(threads + 1) / threads)
    bounds[0], bounds[-1] = 0, len(cost)
    return np.maximum.accumulate(bounds).astype(np.int64)


def _attend(qkv, num_heads, starts, lengths, key_bias, dropout_p, rng, training, mask_shapes):
    """Shared by both layouts: the probabilities' offsets, the dropout masks (drawn per shape of
    mask_shapes, in order), the context, and the cache for the backward."""
    N, C = qkv.shape[0], qkv.shape[1] // 3
    H = num_heads
    sizes = H * lengths.astype(np.int64) ** 2
    prob_offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    probs = np.empty(int(sizes.sum()), dtype=qkv.dtype)
    drop = np.empty(0, dtype=qkv.dtype)
    if training and dropout_p > 0.0:
        drop = np.concatenate([dropout_mask(shape, dropout_p, rng, qkv.dtype).reshape(-1) for shape in mask_shapes])
    spans = work_spans(lengths, H)
    context = np.empty((N, C), dtype=qkv.dtype)
    if len(lengths):
        attention_rows(qkv, H, starts, lengths, prob_offsets, key_bias, drop, spans, context, probs)
    cache = dict(qkv=qkv, num_heads=H, starts=starts, lengths=lengths, prob_offsets=prob_offsets,
                 drop_mask=drop, spans=spans, flat_probs=probs)
    return context, cache


def _attend_backward(dcontext, cache):
    dqkv = np.zeros_like(cache["qkv"])
    if len(cache["lengths"]):
        attention_grad_rows(cache["qkv"], cache["num_heads"], cache["starts"], cache["lengths"], cache["prob_offsets"],
                            cache["drop_mask"], cache["spans"], cache["flat_probs"], np.ascontiguousarray(dcontext),
                            dqkv)
    return qkv_backward(dqkv, cache["qkv_cache"], cache["scale"])


def self_attention_forward(x, mask_bias, params, num_heads, dropout_p, rng, training):
    """As layers.attention.self_attention_forward: x (B, T, C), mask_bias (B, 1, 1, T) or None."""
    B, T, C = x.shape
    qkv, qkv_cache, scale = project_qkv(x, params, num_heads)                   # (B, T, 3C)
    key_bias = np.empty((0, 0), dtype=qkv.dtype) if mask_bias is None else \
        np.ascontiguousarray(np.broadcast_to(mask_bias, (B, 1, 1, T)).reshape(B, T), dtype=qkv.dtype)
    starts, lengths = np.arange(B, dtype=np.int64) * T, np.full(B, T, dtype=np.int64)
    context, cache = _attend(qkv.reshape(B * T, 3 * C), num_heads, starts, lengths, key_bias, dropout_p, rng,
                             training, [(B, num_heads, T, T)])
    cache.update(qkv_cache=qkv_cache, scale=scale, probs=cache["flat_probs"].reshape(B, num_heads, T, T))
    return context.reshape(B, T, C), cache


def self_attention_backward(dcontext, cache):
    """As layers.attention.self_attention_backward."""
    B, T, C = dcontext.shape
    dx, grads = _attend_backward(dcontext.reshape(B * T, C), cache)
    return dx.reshape(B, T, C), grads


def packed_self_attention_forward(x, groups, params, num_heads, dropout_p, rng, training):
    """As layers.attention.packed_self_attention_forward: x (N, C) -> context (N, C); groups:
    (first row, S, L) for each run of S sequences of L tokens."""
    qkv, qkv_cache, scale = project_qkv(x, params, num_heads)                   # (N, 3C): one product
    starts = np.array([first + s * L for first, S, L in groups for s in range(S)], dtype=np.int64)
    lengths = np.array([L for _, S, L in groups for _ in range(S)], dtype=np.int64)
    context, cache = _attend(qkv, num_heads, starts, lengths, np.empty((0, 0), dtype=qkv.dtype), dropout_p, rng,
                             training, [(S, num_heads, L, L) for _, S, L in groups])
    probs, at = [], 0                                 # each group's (S, H, L, L), views of the flat array
    for _, S, L in groups:
        probs.append(cache["flat_probs"][at:at + S * num_heads * L * L].reshape(S, num_heads, L, L))
        at += S * num_heads * L * L
    cache.update(qkv_cache=qkv_cache, scale=scale, probs=probs, groups=groups)
    return context, cache


def packed_self_attention_backward(dcontext, cache):
    """As layers.attention.packed_self_attention_backward."""
    return _attend_backward(dcontext, cache)
