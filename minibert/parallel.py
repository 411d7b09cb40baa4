"""Elementwise work on every core, one block of rows at a time.

The matrix products of BERT already run on every core (BLAS is multi-threaded).  Everything
between them -- GELU, softmax, LayerNorm, the loss -- is a chain of NumPy ufuncs, and NumPy runs
each ufunc on one core, over the whole array, before the next one starts.  At BERT-base size a
GELU input is 50 MB: each of its ~20 ufuncs streams 50 MB through memory.  Two changes make that
work 2-3x faster on 2 cores, without changing a single number:

  1. blocks: cut the rows into blocks of about 1 MiB and run the whole chain of ufuncs on one
     block before going on to the next, so that the block's temporaries stay in the core's cache;
  2. threads: NumPy lets go of the GIL inside a ufunc, so blocks handed to a pool of threads run
     on all the cores at once.

Each row goes through the same operations in the same order as it would over the whole array, so
the results are bitwise identical to the plain version (a test checks this).  The plain version
of each layer stays readable: the layer's math is a function of one block, and

    for_each_row_block(fn, out, x)      does      fn(out, x)

only faster.  MINIBERT_NUM_THREADS sets the number of threads (default: the cores this process may
run on); 1 keeps the blocks and drops the threads.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

BLOCK_BYTES = 1 << 20          # about a megabyte of the first array per block: fits in L2


def _num_threads():
    env = os.environ.get("MINIBERT_NUM_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:               # not Linux
        return max(1, os.cpu_count() or 1)


NUM_THREADS = _num_threads()
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


# OpenBLAS runs a product on one thread when m n k <= 65536 * 4 (interface/gemm.c:
# SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD), and on all of them above.  An attention head's
# product (T = 128 rows, D = 64) lies just above: its threads spend more time meeting than
# multiplying.  Cut to at most this size, the pieces run on one core each, side by side.
ONE_CORE_PRODUCT = 65536 * 4


def stacked_matmul(a, b):
    """a @ b for stacks of small matrices with the same leading axes, a: (S, ..., m, k),
    b: (S, ..., k, n) -> (S, ..., m, n), as np.matmul; the stack (axis 0) is shared among the
    threads, and each thread multiplies its matrices a few rows of `a` at a time
    (`ONE_CORE_PRODUCT`), so that BLAS keeps each product on the thread's own core.  Used for
    attention's per-head products."""
    m, k = a.shape[-2:]
    n = b.shape[-1]
    out = np.empty((*a.shape[:-1], n), dtype=np.result_type(a, b))
    r = max(1, ONE_CORE_PRODUCT // max(1, k * n))            # rows of a per product

    def block(out, a, b):
        for i in range(0, m, r):
            np.matmul(a[..., i:i + r, :], b, out=out[..., i:i + r, :])

    for_each_row_block(block, out, a, b)
    return out
