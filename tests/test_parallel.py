"""The blocked, threaded fast kernels (minibert/kernels/parallel.py) give bitwise the same numbers
as one block over the whole array: each row sees the same operations in the same order."""

import numpy as np
import pytest

from minibert import ops
from minibert.kernels import (add_layer_norm_backward, add_layer_norm_forward, cross_entropy_backward,
                              cross_entropy_forward, gelu_backward, gelu_forward, layer_norm_backward,
                              layer_norm_forward, parallel, softmax_backward, softmax_forward)
from minibert.kernels.gelu import add_bias_gelu_forward
from minibert.training.optim import AdamW


def run_both(monkeypatch, fn):
    """fn() once as a single block (the plain computation) and once cut into many small blocks
    over two threads."""
    monkeypatch.setattr(parallel, "BLOCK_BYTES", 1 << 40)
    plain = fn()
    monkeypatch.setattr(parallel, "BLOCK_BYTES", 256)          # a few rows per block
    monkeypatch.setattr(parallel, "NUM_THREADS", 2)
    blocked = fn()
    return plain, blocked


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layers_bitwise_equal_to_one_block(monkeypatch, dtype):
    rng = np.random.default_rng(0)
    x = (3 * rng.standard_normal((4, 37, 50))).astype(dtype)       # 148 rows of 50
    dy = rng.standard_normal(x.shape).astype(dtype)
    w, b = rng.standard_normal(50).astype(dtype), rng.standard_normal(50).astype(dtype)

    def everything():
        y_gelu, cache = gelu_forward(x)
        dx_gelu, _ = gelu_backward(dy, cache)
        y_bias_gelu, _ = add_bias_gelu_forward(x.copy(), b)      # GELU(x + b), the add inside the blocks
        y_sm, cache = softmax_forward(x)
        dx_sm, _ = softmax_backward(dy, cache)
        y_ln, cache = layer_norm_forward(x, w, b, 1e-12)
        dx_ln, g_ln = layer_norm_backward(dy, cache)
        y_add_ln, cache = add_layer_norm_forward(x, dy, w, b, 1e-12)    # LayerNorm(x + dy)
        dx_add_ln, _ = add_layer_norm_backward(dy, cache)
        return [y_gelu, dx_gelu, y_bias_gelu, y_sm, dx_sm, y_ln, dx_ln, g_ln["weight"], g_ln["bias"],
                y_add_ln, dx_add_ln]

    plain, blocked = run_both(monkeypatch, everything)
    names = "gelu dgelu bias_gelu softmax dsoftmax layernorm dlayernorm dgamma dbeta add_layernorm dadd_layernorm"
    for name, p, q in zip(names.split(), plain, blocked):
        assert p.dtype == dtype and p.shape == q.shape, name
        assert np.array_equal(p, q), name


def test_cross_entropy_bitwise_equal_to_one_block(monkeypatch):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((40, 300)).astype(np.float32)
    labels = rng.integers(0, 300, 40)
    labels[::3] = -100

    def both():
        loss, cache = cross_entropy_forward(logits, labels)
        return loss, cross_entropy_backward(1.0, cache)[0]

    (loss_a, d_a), (loss_b, d_b) = run_both(monkeypatch, both)
    assert loss_a == loss_b and np.array_equal(d_a, d_b)


def test_adamw_bitwise_equal_to_one_block(monkeypatch):
    assert not ops.is_reference()
    rng = np.random.default_rng(2)
    start = {"w.weight": rng.standard_normal((300, 20)).astype(np.float32),
             "w.bias": rng.standard_normal(20).astype(np.float32)}
    grads = [{k: rng.standard_normal(v.shape).astype(np.float32) for k, v in start.items()} for _ in range(3)]

    def train():
        params = {k: v.copy() for k, v in start.items()}
        opt = AdamW(params, lr=1e-2)
        for g in grads:
            opt.step(g)
        return params

    plain, blocked = run_both(monkeypatch, train)
    for k in start:
        assert np.array_equal(plain[k], blocked[k]), k
        assert not np.array_equal(plain[k], start[k]), k


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
