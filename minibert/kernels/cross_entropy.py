"""Fast cross-entropy: `layers.cross_entropy`, the log-softmax and its gradient in one compiled
pass per row (an MLM batch's logits are (N, V): tens of megabytes).

The compiled pass takes each row's max (softmax.py's 8 running maxima: a NaN is passed over there,
and spreads through the exps instead, so a row with a NaN is NaN throughout, as in the textbook),
writes z - max, sums its exps (elementary.py's exp) and subtracts the log of the sum; the
backward writes exp(log p) scaled by the row's weight, less the weight at the target, in one pass.
"""

import math

import numpy as np
from numba import njit, prange

from ..layers.cross_entropy import IGNORE_INDEX
from .elementary import SUMS, exp
from .memory import empty_apart
from .softmax import row_max


@njit(parallel=True, cache=True, fastmath=SUMS, error_model="numpy")
def log_softmax_rows(z, log_probs):
    """log softmax(z) = (z - max z) - log sum exp(z - max z), row by row."""
    for i in prange(z.shape[0]):
        m = row_max(z[i])
        total = z.dtype.type(0.0)
        for j in range(z.shape[1]):
            shifted = z[i, j] - m
            log_probs[i, j] = shifted
            total += exp(shifted)
        log_total = z.dtype.type(math.log(total))
        for j in range(z.shape[1]):
            log_probs[i, j] -= log_total


@njit(parallel=True, cache=True, error_model="numpy")
def softmax_minus_onehot_rows(log_probs, targets, row_scale, dlogits):
    """dlogits_i = row_scale_i (softmax(z_i) - onehot(target_i))."""
    for i in prange(log_probs.shape[0]):
        for j in range(log_probs.shape[1]):
            dlogits[i, j] = exp(log_probs[i, j]) * row_scale[i]
        dlogits[i, targets[i]] -= row_scale[i]


def cross_entropy_forward(logits, labels, ignore_index=IGNORE_INDEX):
    """As layers.cross_entropy.cross_entropy_forward."""
    keep = labels != ignore_index                                  # (N,)
    n = max(int(keep.sum()), 1)
    logits = np.ascontiguousarray(logits)
    log_probs = empty_apart(logits)                                # (N, K)
    log_softmax_rows(logits, log_probs)
    targets = np.where(keep, labels, 0)
    picked = np.take_along_axis(log_probs, targets[:, None], axis=1)[:, 0]   # (N,)
    loss = -(picked * keep).sum() / n
    return float(loss), (log_probs, targets, keep, n)


def cross_entropy_backward(dloss, cache):
    """As layers.cross_entropy.cross_entropy_backward."""
    log_probs, targets, keep, n = cache
    row_scale = (keep * (dloss / n)).astype(log_probs.dtype)       # (N,): 0 when ignored
    dlogits = empty_apart(log_probs)
    softmax_minus_onehot_rows(log_probs, targets, row_scale, dlogits)
    return dlogits, {}
