"""Softmax over the last axis.

    y_i = exp(x_i - m) / sum_j exp(x_j - m),   m = max_j x_j

Any shift m gives the same y; the row's max keeps exp from overflowing.
"""

import numpy as np


def softmax_forward(x):
    """x: (..., K)  ->  y: (..., K), each row summing to 1."""
    e = np.exp(x - x.max(-1, keepdims=True))               # (..., K)
    y = e / e.sum(-1, keepdims=True)
    return y, y


def softmax_backward(dy, y):
    """dx_i = y_i (dy_i - sum_j dy_j y_j)."""
    return y * (dy - (dy * y).sum(-1, keepdims=True)), {}
