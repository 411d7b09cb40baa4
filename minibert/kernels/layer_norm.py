"""Fast LayerNorm: `layers.layer_norm` and `layers.fused.add_layer_norm`, one compiled pass per row.

Each row (C numbers, in cache) is read once for its mean, once for its variance (two passes, as
the textbook: the one-pass formula cancels), once to write xhat and y; add_layer_norm sums
x + residual on the way in.  The rows are shared among the threads (`prange`).  The backward's
weight and bias gradients are sums over rows: each thread sums its own span of rows into its own
partial, and the partials are added at the end (deterministic for a given thread count).
"""

import numpy as np
from numba import get_num_threads, njit, prange

from .elementary import SUMS
from .gelu import rows
from .memory import empty_apart


@njit(parallel=True, cache=True, fastmath=SUMS)
def layer_norm_rows(x, residual, weight, bias, eps, y, xhat, rstd):
    """x, residual (or empty): (N, C).  y, xhat: (N, C), rstd: (N,), written."""
    N, C = x.shape
    t = x.dtype.type
    inv_c = t(1.0 / C)
    for i in prange(N):
        if residual.size:
            for j in range(C):
                y[i, j] = x[i, j] + residual[i, j]
        else:
            for j in range(C):
                y[i, j] = x[i, j]
        total = t(0.0)
        for j in range(C):
            total += y[i, j]
        mean = total * inv_c
        var = t(0.0)
        for j in range(C):
            d = y[i, j] - mean
            xhat[i, j] = d
            var += d * d
        r = t(1.0) / np.sqrt(var * inv_c + t(eps))
        rstd[i] = r
        for j in range(C):
            h = xhat[i, j] * r
            xhat[i, j] = h
            y[i, j] = h * weight[j] + bias[j]


@njit(parallel=True, cache=True, fastmath=SUMS)
def layer_norm_grad_rows(dy, xhat, rstd, weight, dx, dweight_parts, dbias_parts):
    """dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy weight; the per-thread partial sums of
    dy xhat and dy over rows into dweight_parts, dbias_parts: (P, C)."""
    N, C = dy.shape
    P = dweight_parts.shape[0]
    t = dy.dtype.type
    inv_c = t(1.0 / C)
    for p in prange(P):
        dweight_parts[p, :] = t(0.0)
        dbias_parts[p, :] = t(0.0)
        for i in range(N * p // P, N * (p + 1) // P):
            sum_g, sum_gx = t(0.0), t(0.0)
            for j in range(C):
                g = dy[i, j] * weight[j]
                sum_g += g
                sum_gx += g * xhat[i, j]
                dweight_parts[p, j] += dy[i, j] * xhat[i, j]
                dbias_parts[p, j] += dy[i, j]
            mean_g, mean_gx = sum_g * inv_c, sum_gx * inv_c
            for j in range(C):
                dx[i, j] = rstd[i] * (dy[i, j] * weight[j] - mean_g - xhat[i, j] * mean_gx)


def layer_norm_forward(x, weight, bias, eps):
    """As layers.layer_norm.layer_norm_forward."""
    return _layer_norm(x, None, weight, bias, eps)


def add_layer_norm_forward(x, residual, weight, bias, eps):
    """As layers.fused.add_layer_norm_forward: LayerNorm(x + residual)."""
    return _layer_norm(x, residual, weight, bias, eps)


def _layer_norm(x, residual, weight, bias, eps):
    y, xhat = empty_apart(x, 1), empty_apart(x, 2)
    rstd = np.empty((*x.shape[:-1], 1), dtype=x.dtype)
    residual = np.empty((0, 0), dtype=x.dtype) if residual is None else rows(residual)
    layer_norm_rows(rows(x), residual, weight, bias, eps, rows(y), rows(xhat), rstd.reshape(-1))
    return y, (xhat, rstd, weight)


def layer_norm_backward(dy, cache):
    """As layers.layer_norm.layer_norm_backward."""
    xhat, rstd, weight = cache
    dx = empty_apart(xhat)
    C = xhat.shape[-1]
    parts = max(1, min(get_num_threads(), rows(xhat).shape[0]))
    dweight, dbias = np.empty((parts, C), dtype=xhat.dtype), np.empty((parts, C), dtype=xhat.dtype)
    layer_norm_grad_rows(rows(np.ascontiguousarray(dy)), rows(xhat), rstd.reshape(-1), weight, rows(dx),
                         dweight, dbias)
    return dx, {"weight": dweight.sum(0), "bias": dbias.sum(0)}


def add_layer_norm_backward(dy, cache):
    """As layers.fused.add_layer_norm_backward: the gradient of x + residual."""
    return layer_norm_backward(dy, cache)
