"""Dropout (Srivastava et al. 2014), inverted: y = x * mask / (1 - p), identity in evaluation.

The generator `rng` is explicit, so runs are reproducible; the scaled mask is the cache.
"""

import numpy as np


def dropout_forward(x, p, rng, training):
    """Zero each element with probability p and scale the rest by 1 / (1 - p)."""
    if not training or p == 0.0:
        return x, None
    keep = rng.random(x.shape, dtype=np.float32) >= p                 # same shape as x
    mask = keep.astype(x.dtype) * (1.0 / (1.0 - p))
    return x * mask, mask


def dropout_backward(dy, mask):
    """dx = dy * mask (the same elements dropped, the same scale)."""
    return (dy if mask is None else dy * mask), {}
