"""Attention's small matrix products on every core: a pool of threads, BLAS held to one thread.

Everything elementwise in the fast tier is compiled (Numba, the other kernels).  What is left
here is attention's per-head products: many small matrices (T x D by D x T, T x T by T x D; with
T = 128, D = 32-64, a few million flops each), which BLAS splits over all the cores, its threads
spending about as long meeting as multiplying.  Instead the stack of heads (or the packed
sequences' pieces) is shared among a pool of Python threads, each running BLAS on its own core
(NumPy releases the GIL inside BLAS), BLAS held to one thread while they run.

    for_each_row_block(fn, out, x)      does      fn(out, x), a block of rows per call, on every core

MINIBERT_NUM_THREADS sets the number of threads (default: the cores this process may run on).
A compiled attention loop (no BLAS, no Python per sequence) was tried and measured 5-15x slower
than PyTorch's on these shapes: plain loops reach 10 GFLOP/s where BLAS reaches 80.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..runtime import num_threads

BLOCK_BYTES = 1 << 20          # about a megabyte of the first array per block (measured best:
                               # smaller blocks pay NumPy's fixed cost per call more often,
                               # larger ones leave the caches)


NUM_THREADS = num_threads()            # as Numba's and OpenBLAS's pools (runtime.configure_runtime)
_pool = None


def _get_pool():
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(NUM_THREADS, thread_name_prefix="minibert")
    return _pool


def for_each_row_block(fn, *arrays):
    """Call fn(*blocks) on consecutive blocks of rows (axis 0) of `arrays`, which all have the same
    number of rows.  The rows are split into one contiguous span per thread; each thread walks its
    span a block at a time (the calling thread takes the last span, so one call costs only
    NUM_THREADS - 1 hand-offs).  `fn` must only write into its own blocks (typically the first
    array is the output).  Returns nothing: results are written in place.
    """
    n = arrays[0].shape[0]
    if any(a.shape[0] != n for a in arrays):
        raise ValueError(f"row counts differ: {[a.shape[0] for a in arrays]}")
    row_bytes = max(1, arrays[0].nbytes // max(n, 1))
    rows = max(1, BLOCK_BYTES // row_bytes)                  # rows per block
    n_blocks = -(-n // rows)
    if n_blocks <= 1:
        fn(*arrays)
        return

    def walk(lo, hi):
        for i in range(lo, hi, rows):
            fn(*(a[i:min(i + rows, hi)] for a in arrays))

    threads = min(NUM_THREADS, n_blocks)
    bounds = [min(n, rows * (n_blocks * t // threads)) for t in range(threads + 1)]   # whole blocks each
    others = [_get_pool().submit(walk, bounds[t], bounds[t + 1]) for t in range(threads - 1)]
    walk(bounds[-2], bounds[-1])
    for f in others:
        f.result()                          # waits, and re-raises what a block raised


def rows(a):
    """a viewed as a 2-D array of rows: (..., n) -> (N, n).  A vector is one row."""
    return a.reshape(-1, a.shape[-1])


# Sums along each row, as (N, 1) columns.  np.einsum's loop is 2-3x faster than x.sum(-1) on
# rows of a few hundred numbers (NumPy's reduction pays a fixed cost per row), and
# row_dot(a, b) = sum(a * b) never stores the product.

def row_sum(a):
    return np.einsum("ij->i", a)[:, None]


def row_dot(a, b):
    return np.einsum("ij,ij->i", a, b)[:, None]


# Attention's per-head products are many small matrices (T x D by D x T, T x T by T x D: with
# T = 128, D = 32-64, a few million flops each).  BLAS splits each one over all the cores, and the
# threads spend about as long meeting as multiplying.  Instead the stack of heads is shared among
# our threads and BLAS is held to one thread while they run (threadpoolctl finds the BLAS that
# NumPy loaded and sets its thread count, process-wide for the duration of the call; the old
# count comes back afterwards): each core multiplies whole matrices of its own, 1.2-1.5x faster
# than np.matmul with BLAS splitting each product.

_blas = None
_blas_lock = threading.Lock()     # one stacked_matmul at a time: each restores the count it found


def _one_blas_thread():
    """A context in which the BLAS under NumPy runs each call on the calling thread only."""
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController
        _blas = ThreadpoolController().select(user_api="blas")
    return _blas.limit(limits=1)


def stacked_matmul(a, b, out=None):
    """a @ b for stacks of small matrices with the same leading axes, a: (S, ..., m, k),
    b: (S, ..., k, n) -> (S, ..., m, n), exactly `np.matmul(a, b, out=out)`, with the stack
    (axis 0) shared among the threads, each running BLAS on its own core.  Used for attention's
    per-head products."""
    if out is None:
        out = np.empty((*a.shape[:-1], b.shape[-1]), dtype=np.result_type(a, b))
    with _blas_lock, _one_blas_thread():
        for_each_row_block(lambda out, a, b: np.matmul(a, b, out=out), out, a, b)
    return out


def for_each_piece(fn, costs):
    """fn(i) for every i in range(len(costs)), the pieces shared among the threads as contiguous
    spans of about equal total cost, BLAS held to one thread while they run (as in
    `stacked_matmul`).  Each fn(i) must write only into what piece i owns."""
    n = len(costs)
    if n == 0:
        return
    threads = min(NUM_THREADS, n)
    total = np.cumsum(costs)
    bounds = [0] + [int(np.searchsorted(total, total[-1] * t / threads)) + 1 for t in range(1, threads)] + [n]
    bounds = np.maximum.accumulate(np.minimum(bounds, n)).tolist()

    def walk(lo, hi):
        for i in range(lo, hi):
            fn(i)

    with _blas_lock, _one_blas_thread():
        others = [_get_pool().submit(walk, bounds[t], bounds[t + 1]) for t in range(threads - 1)]
        walk(bounds[-2], bounds[-1])
        for f in others:
            f.result()
