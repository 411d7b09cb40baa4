"""Fast softmax over the last axis: `layers.softmax`.

Any shift m gives the same softmax; a shift at least as large as the row's values keeps exp from
overflowing.  The textbook m is each row's max.  Here m is the max of each (R, K) matrix (an
attention head's scores): one long reduction, where a max per row of 128 costs as much as the
exp.  A row whose values all lie far below its matrix's max would then lose precision (exp
underflows): a row whose exps sum below SOFTMAX_MIN_SUM is redone with its own max.  exp(a) is
computed as 2^(a log2 e): NumPy's float32 exp2 is twice as fast as its exp.  A block of matrices
at a time on every core.
"""

import math

import numpy as np

from .parallel import for_each_row_block, row_dot, row_sum, rows

LOG2_E = 1.0 / math.log(2.0)
SOFTMAX_MIN_SUM = 1e-20      # a row whose exps sum above this kept its largest term >= 1e-24: full precision


def softmax_forward(x):
    """As layers.softmax.softmax_forward, for x: (..., R, K)."""
    K = x.shape[-1]
    R = x.shape[-2] if x.ndim > 1 else 1
    y = np.empty_like(x)
    for_each_row_block(lambda y, x: softmax_rows(y, x, K), y.reshape(-1, R * K), x.reshape(-1, R * K))
    return y, y


def softmax_rows(y, x, K):
    """x, y: (G, R * K), G matrices of R rows of K."""
    np.subtract(x, x.max(-1, keepdims=True), out=y)      # shift by each matrix's max
    with np.errstate(over="ignore"):                       # a masked score (the dtype's min) -> -inf
        y *= LOG2_E
    np.exp2(y, out=y)                                      # 2^-inf = 0
    y, x = y.reshape(-1, K), x.reshape(-1, K)              # rows
    total = row_sum(y)                                     # (G R, 1)
    redo = np.flatnonzero(~(total[:, 0] >= SOFTMAX_MIN_SUM))   # far below the max, or NaN
    if redo.size:
        shifted = x[redo] - x[redo].max(-1, keepdims=True)  # the textbook shift for these rows
        y[redo] = np.exp(shifted)
        total[redo] = y[redo].sum(-1, keepdims=True)
    y /= total


def softmax_backward(dy, y):
    """As layers.softmax.softmax_backward: dx_i = y_i (dy_i - sum_j dy_j y_j)."""
    dx = np.empty_like(y)
    for_each_row_block(softmax_grad_rows, rows(dx), rows(dy), rows(y))
    return dx, {}


def softmax_grad_rows(dx, dy, y):
    np.subtract(dy, row_dot(dy, y), out=dx)
    dx *= y
