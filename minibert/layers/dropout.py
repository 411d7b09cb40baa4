"""Dropout (Srivastava et al. 2014), inverted: y = x * mask / (1 - p), identity in evaluation.

The generator `rng` is explicit, so runs are reproducible; the scaled mask is the cache.
"""

import numpy as np


def dropout_forward(x, p, rng, training):
    """Zero each element with probability p and scale the rest by 1 / (1 - p)."""
    if not training or p == 0.0:
        return x, None
    mask = dropout_mask(x.shape, p, rng, x.dtype)
    return x * mask, mask


def dropout_mask(shape, p, rng, dtype):
    """The scaled mask: 0 with probability p, else 1 / (1 - p)."""
    keep = rng.random(shape, dtype=np.float32) >= p
    return keep.astype(dtype) * (1.0 / (1.0 - p))


def dropout_backward(dy, mask):
    """dx = dy * mask (the same elements dropped, the same scale)."""
    return (dy if mask is None else dy * mask), {}
