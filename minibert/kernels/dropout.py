"""Fast dropout: `layers.dropout`, the same draws, one compiled pass, a mask of bytes.

The generator draws exactly what the textbook draws (`rng.random(shape, float32) >= p`), so both
tiers drop the same elements.  Then one pass writes y = x * keep / (1 - p).  The cache keeps the
boolean `keep` (1 byte a number) instead of the scaled float mask (4 or 8 bytes): for each
dropout a training step holds until its backward.
"""

import numpy as np
from numba import njit, prange

from .memory import empty_apart


@njit(parallel=True, cache=True)
def scale_kept(x, keep, scale, out):
    """out = x * scale where keep, else 0; flat arrays."""
    s = x.dtype.type(scale)
    for i in prange(x.shape[0]):
        out[i] = x[i] * s if keep[i] else x.dtype.type(0.0)


def dropout_forward(x, p, rng, training):
    """As layers.dropout.dropout_forward."""
    if not training or p == 0.0:
        return x, None
    keep = rng.random(x.shape, dtype=np.float32) >= p
    y = empty_apart(x)
    scale = 1.0 / (1.0 - p)
    scale_kept(np.ascontiguousarray(x).reshape(-1), keep.reshape(-1), scale, y.reshape(-1))
    return y, (keep, scale)


def dropout_backward(dy, mask):
    """As layers.dropout.dropout_backward: dx = dy * keep / (1 - p)."""
    if mask is None:
        return dy, {}
    keep, scale = mask                               # the cache: the kept elements and 1 / (1 - p)
    dx = empty_apart(dy)
    scale_kept(np.ascontiguousarray(dy).reshape(-1), keep.reshape(-1), scale, dx.reshape(-1))
    return dx, {}
