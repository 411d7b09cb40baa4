"""Fast softmax over the last axis: `layers.softmax`, one compiled pass per row.

    y_i = exp(x_i - m) / sum_j exp(x_j - m),   m = max_j x_j        (the textbook's shift)

Each row is read once for its max, once to write exp(x - m) and sum it, once to divide; the rows
are shared among the threads.  exp is elementary.py's (float32: relative error < 1 eps32; a
masked score, the dtype's minimum, gives exactly 0; a row of nothing but masked scores is uniform,
as in torch).  A NaN or +inf in a row makes the whole row NaN, as in the textbook.
"""

import numpy as np
from numba import njit, prange

from .elementary import SUMS, exp
from .gelu import rows
from .memory import empty_apart


@njit(inline="always")
def softmax_row(x, y):
    """y = softmax(x) for one row (1-D views; y may be x)."""
    m = x[0]
    for j in range(1, x.shape[0]):
        if x[j] > m:
            m = x[j]
    total = x.dtype.type(0.0)
    for j in range(x.shape[0]):
        e = exp(x[j] - m)
        y[j] = e
        total += e
    inv = x.dtype.type(1.0) / total
    for j in range(x.shape[0]):
        y[j] *= inv


@njit(inline="always")
def softmax_grad_row(dy, y, dx):
    """dx_i = y_i (dy_i - sum_j dy_j y_j) for one row (1-D views)."""
    dot = y.dtype.type(0.0)
    for j in range(y.shape[0]):
        dot += dy[j] * y[j]
    for j in range(y.shape[0]):
        dx[j] = y[j] * (dy[j] - dot)


@njit(parallel=True, cache=True, fastmath=SUMS)
def softmax_rows(x, y):
    """y = softmax(x), row by row: x, y (R, K), the rows shared among the threads."""
    for i in prange(x.shape[0]):
        softmax_row(x[i], y[i])


@njit(parallel=True, cache=True, fastmath=SUMS)
def softmax_grad_rows(dy, y, dx):
    """The backward, row by row, the rows shared among the threads."""
    for i in prange(y.shape[0]):
        softmax_grad_row(dy[i], y[i], dx[i])


# The same two on the calling thread alone, for attention's pieces, which already run one per
# thread (kernels/attention.py): a parallel kernel started from several threads at once would
# ask for threads x threads.

@njit(cache=True, fastmath=SUMS)
def softmax_rows_here(x, y):
    for i in range(x.shape[0]):
        softmax_row(x[i], y[i])


@njit(cache=True, fastmath=SUMS)
def softmax_grad_rows_here(dy, y, dx):
    for i in range(y.shape[0]):
        softmax_grad_row(dy[i], y[i], dx[i])


@njit(parallel=True, cache=True, fastmath=SUMS)
def masked_softmax_rows(x, key_bias, y):
    """y = softmax(x + bias) for x, y: (B, R, K) (R = H T: every head's query rows of sequence b),
    key_bias: (B, K), the padding mask added on the way in (the scores are not written)."""
    B, R, K = x.shape
    for n in prange(B * R):
        b, r = n // R, n % R
        row = y[b, r]
        for j in range(K):
            row[j] = x[b, r, j] + key_bias[b, j]
        softmax_row(row, row)


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
