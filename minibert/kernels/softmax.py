"""Fast softmax over the last axis: `layers.softmax`, one compiled pass per row.

    y_i = exp(x_i - m) / sum_j exp(x_j - m),   m = max_j x_j        (the textbook's shift)

Each row is copied into the output (with the padding mask added, for attention), then worked on
there alone: its max, exp(y - m) and their sum, the division.  exp is elementary.py's (float32:
relative error < 1 eps32; a masked score, the dtype's minimum, gives exactly 0; a row of nothing but
masked scores is uniform, as in torch).  A NaN or +inf in a row makes the whole row NaN, as in the
textbook.

How the loops are written matters as much as what they compute (measured on a 2-core Intel Xeon,
(32, 12, 128, 128) scores: 5.0 ms as first written, 2.8 ms now):
- the max keeps 8 running maxima, so 8 comparisons are in flight at once, not one chain;
- the exp pass reads and writes the same array: with two arrays that may overlap LLVM vectorises
  behind a run-time overlap check, and a row softmaxed in place fails that check;
- the parallel kernels hand each thread a span of rows to a plain (one-thread) function, which
  LLVM optimises as it is; `error_model="numpy"` keeps a division from raising (a branch per number
  that stops the vectorising).
"""

import numpy as np
from numba import njit, prange

from .elementary import SUMS, exp
from .gelu import rows
from .memory import empty_apart

PIECES = 64            # spans of rows per parallel call, shared among the threads


@njit(inline="always")
def larger(a, b):
    return a if a > b else b


@njit(inline="always")
def row_max(r):
    """max(r) for a 1-D r with 8 running maxima (a NaN is passed over: the exp pass spreads it)."""
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = r[0]
    K = r.shape[0]
    J = K - K % 8
    for j in range(0, J, 8):
        m0, m1, m2, m3 = larger(r[j], m0), larger(r[j + 1], m1), larger(r[j + 2], m2), larger(r[j + 3], m3)
        m4, m5, m6, m7 = larger(r[j + 4], m4), larger(r[j + 5], m5), larger(r[j + 6], m6), larger(r[j + 7], m7)
    m = larger(larger(larger(m0, m1), larger(m2, m3)), larger(larger(m4, m5), larger(m6, m7)))
    for j in range(J, K):
        m = larger(r[j], m)
    return m


@njit(inline="always")
def softmax_in_place(y):
    """y <- softmax(y) for one row (a 1-D view)."""
    m = row_max(y)
    total = y.dtype.type(0.0)
    for j in range(y.shape[0]):
        e = exp(y[j] - m)
        y[j] = e
        total += e
    inv = y.dtype.type(1.0) / total
    for j in range(y.shape[0]):
        y[j] *= inv


@njit(inline="always")
def softmax_grad_row(dy, y, dx):
    """dx_i = y_i (dy_i - sum_j dy_j y_j) for one row (1-D views)."""
    dot = y.dtype.type(0.0)
    for j in range(y.shape[0]):
        dot += dy[j] * y[j]
    for j in range(y.shape[0]):
        dx[j] = y[j] * (dy[j] - dot)


# One thread: a span of rows.  Attention's packed pieces call these directly, as they already run
# one per thread (kernels/attention.py).

@njit(cache=True, fastmath=SUMS, error_model="numpy")
def softmax_rows_here(x, y):
    """y = softmax(x), x, y: (R, K)."""
    for i in range(x.shape[0]):
        row, scores = y[i], x[i]
        for j in range(row.shape[0]):
            row[j] = scores[j]
        softmax_in_place(row)


@njit(cache=True, fastmath=SUMS, error_model="numpy")
def softmax_grad_rows_here(dy, y, dx):
    """The backward, dy, y, dx: (R, K)."""
    for i in range(y.shape[0]):
        softmax_grad_row(dy[i], y[i], dx[i])


@njit(cache=True, fastmath=SUMS, error_model="numpy")
def masked_softmax_rows_here(x, key_bias, y, start, stop):
    """y = softmax(x + bias) for the rows n in [start, stop) of x, y: (B, R, K), row n being
    (n // R, n % R); key_bias: (B, K)."""
    R = x.shape[1]
    for n in range(start, stop):
        b, r = n // R, n % R
        row, scores, bias = y[b, r], x[b, r], key_bias[b]
        for j in range(row.shape[0]):
            row[j] = scores[j] + bias[j]
        softmax_in_place(row)


# Every thread: the rows cut into PIECES spans.

@njit(parallel=True, cache=True)
def softmax_rows(x, y):
    """y = softmax(x), row by row: x, y (R, K)."""
    R = x.shape[0]
    P = min(R, PIECES)
    for p in prange(P):
        softmax_rows_here(x[p * R // P:(p + 1) * R // P], y[p * R // P:(p + 1) * R // P])


@njit(parallel=True, cache=True)
def softmax_grad_rows(dy, y, dx):
    """The backward, row by row."""
    R = y.shape[0]
    P = min(R, PIECES)
    for p in prange(P):
        lo, hi = p * R // P, (p + 1) * R // P
        softmax_grad_rows_here(dy[lo:hi], y[lo:hi], dx[lo:hi])


@njit(parallel=True, cache=True)
def masked_softmax_rows(x, key_bias, y):
    """y = softmax(x + bias) for x, y: (B, R, K) (R = H T: every head's query rows of sequence b),
    key_bias: (B, K), the padding mask added on the way in (the scores are not written)."""
    N = x.shape[0] * x.shape[1]
    P = min(N, PIECES)
    for p in prange(P):
        masked_softmax_rows_here(x, key_bias, y, p * N // P, (p + 1) * N // P)


def softmax_forward(x):
    """As layers.softmax.softmax_forward, x: (..., K)."""
    y = empty_apart(x)
    softmax_rows(rows(np.ascontiguousarray(x)), rows(y))
    return y, y


def masked_softmax_forward(scores, mask_bias):
    """softmax(scores + mask_bias) in one pass, scores: (B, H, T, K), mask_bias: (B, 1, 1, K) as
    layers.attention.attention_mask_bias gives it (the textbook adds it, then takes the softmax)."""
    B, H, T, K = scores.shape
    y = empty_apart(scores)
    key_bias = np.ascontiguousarray(np.broadcast_to(mask_bias, (B, 1, 1, K)).reshape(B, K), dtype=scores.dtype)
    masked_softmax_rows(np.ascontiguousarray(scores).reshape(B, H * T, K), key_bias, y.reshape(B, H * T, K))
    return y, y


def softmax_backward(dy, y):
    """As layers.softmax.softmax_backward."""
    dx = empty_apart(y)
    softmax_grad_rows(rows(np.ascontiguousarray(dy)), rows(y), rows(dx))
    return dx, {}
