"""The thread pool that attention's per-head products run on (minibert/kernels/parallel.py): the
row blocks cover every row once, errors come back, and stacked_matmul equals np.matmul."""

import numpy as np
import pytest

from minibert.kernels import parallel


def test_blocks_cover_every_row_once(monkeypatch):
    monkeypatch.setattr(parallel, "BLOCK_BYTES", 3 * 8)           # 3 rows of one float64
    monkeypatch.setattr(parallel, "NUM_THREADS", 2)
    out = np.zeros((10, 1))
    sizes = []

    def fn(block, src):
        sizes.append(len(block))
        block += src + 1

    parallel.for_each_row_block(fn, out, np.arange(10.0)[:, None])
    assert sorted(sizes) == [1, 3, 3, 3]
    assert np.array_equal(out[:, 0], np.arange(10.0) + 1)


def test_errors(monkeypatch):
    with pytest.raises(ValueError, match="row counts differ"):
        parallel.for_each_row_block(lambda a, b: None, np.zeros((3, 2)), np.zeros((4, 2)))
    monkeypatch.setattr(parallel, "BLOCK_BYTES", 8)
    monkeypatch.setattr(parallel, "NUM_THREADS", 2)

    def boom(block):
        raise RuntimeError("inside a block")

    with pytest.raises(RuntimeError, match="inside a block"):             # not swallowed by the pool
        parallel.for_each_row_block(boom, np.zeros((5, 1)))


def test_stacked_matmul_equals_matmul(monkeypatch):
    """Shared among threads, each running BLAS on one thread, every product is still np.matmul's,
    transposed views included, and BLAS gets its thread count back afterwards."""
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    monkeypatch.setattr(parallel, "BLOCK_BYTES", 2 * 13 * 11 * 4)         # 2 stacks of heads a block
    monkeypatch.setattr(parallel, "NUM_THREADS", 2)
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        a = rng.standard_normal((5, 4, 13, 7)).astype(dtype)
        b = rng.standard_normal((5, 4, 11, 7)).astype(dtype).transpose(0, 1, 3, 2)   # a view
        out = parallel.stacked_matmul(a, b)
        assert out.shape == (5, 4, 13, 11) and out.dtype == dtype
        np.testing.assert_allclose(out, a @ b, rtol=1e-5 if dtype == np.float32 else 1e-13)
    assert blas_threads() == before


def test_concurrent_stacked_matmuls_take_turns(monkeypatch):
    """Each call holds BLAS to one thread and then restores the count it found; two calls from two
    threads must not interleave (the second would find 1 and restore 1 after the first restored
    the real count).  The first call is held inside; the second waits for it."""
    import threading
    import time

    from threadpoolctl import threadpool_info

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    entered, release = [], threading.Event()
    real = parallel.for_each_row_block

    def held(fn, *arrays):
        entered.append(threading.current_thread().name)
        if len(entered) == 1:
            release.wait(10)
        real(fn, *arrays)

    monkeypatch.setattr(parallel, "for_each_row_block", held)
    a, b = np.ones((2, 3, 4, 5)), np.ones((2, 3, 5, 6))
    first = threading.Thread(target=parallel.stacked_matmul, args=(a, b), name="first")
    second = threading.Thread(target=parallel.stacked_matmul, args=(a, b), name="second")
    first.start()
    while not entered:
        time.sleep(0.01)
    second.start()
    time.sleep(0.3)
    assert entered == ["first"]                  # the second call waits for the first
    release.set()
    first.join(10)
    second.join(10)
    assert entered == ["first", "second"]
    assert blas_threads() == before
