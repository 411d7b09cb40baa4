"""Fast embedding lookup and gradient: `layers.embedding`, compiled.

The lookup copies one row of the table per id, the ids shared among the threads.  The gradient
is a scatter-add (an id that occurs twice gets both rows of dy): the textbook's `np.add.at` adds
one row at a time through NumPy's slowest path.  Here the table's columns are cut into one span
per thread; each thread walks every position and adds its span of dy's row into the id's row, so
no two threads write the same number and the sums run in position order, as in the textbook.
"""

import numpy as np
from numba import get_num_threads, njit, prange


@njit(parallel=True, cache=True)
def gather_rows(ids, weight, out):
    """out[n] = weight[ids[n]]."""
    for n in prange(ids.shape[0]):
        out[n, :] = weight[ids[n], :]


@njit(parallel=True, cache=True)
def scatter_add_rows(ids, dy, skip, dweight, spans):
    """dweight[ids[n]] += dy[n] for every n with ids[n] != skip; thread p owns the columns
    spans[p] .. spans[p + 1]."""
    for p in prange(spans.shape[0] - 1):
        c0, c1 = spans[p], spans[p + 1]
        for n in range(ids.shape[0]):
            v = ids[n]
            if v != skip:
                for c in range(c0, c1):
                    dweight[v, c] += dy[n, c]


def embedding_forward(ids, weight, padding_idx=None):
    """As layers.embedding.embedding_forward: ids (...), W (V, C) -> (..., C)."""
    ids = np.asarray(ids)
    flat = ids.reshape(-1).astype(np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= weight.shape[0]):
        raise IndexError(f"token id out of range: ids must lie in [0, {weight.shape[0]}), "
                         f"got {flat.min()}..{flat.max()}")
    out = np.empty((flat.size, weight.shape[1]), dtype=weight.dtype)
    gather_rows(flat, weight, out)
    return out.reshape(*ids.shape, weight.shape[1]), (ids, weight.shape, padding_idx)


def embedding_backward(dy, cache):
    """As layers.embedding.embedding_backward."""
    ids, shape, padding_idx = cache
    C = shape[1]
    dweight = np.zeros(shape, dtype=dy.dtype)
    threads = max(1, min(get_num_threads(), C // 8 or 1))         # at least 8 columns a thread
    spans = (np.arange(threads + 1) * C // threads).astype(np.int64)
    skip = -1 if padding_idx is None else padding_idx
    scatter_add_rows(np.asarray(ids).reshape(-1).astype(np.int64), np.ascontiguousarray(dy).reshape(-1, C),
                     skip, dweight, spans)
    return None, {"weight": dweight}
