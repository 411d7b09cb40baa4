"""Embedding lookup: y = W[ids], a row of the table per id.

The gradient is a scatter-add: an id that occurs several times gets the sum of their gradients.
The row of `padding_idx` gets no gradient, as torch.nn.Embedding(padding_idx=...).
"""

import numpy as np


def embedding_forward(ids, weight, padding_idx=None):
    """ids: (B, T) integers, W: (V, C)  ->  y: (B, T, C)."""
    return weight[ids], (ids, weight.shape, padding_idx)


def embedding_backward(dy, cache):
    """dW[v] = sum of dy over every position whose id is v.  The ids have no gradient: dx is None."""
    ids, shape, padding_idx = cache
    dweight = np.zeros(shape, dtype=dy.dtype)                             # (V, C)
    np.add.at(dweight, ids.reshape(-1), dy.reshape(-1, shape[1]))        # repeated ids add up
    if padding_idx is not None:
        dweight[padding_idx] = 0.0
    return None, {"weight": dweight}
