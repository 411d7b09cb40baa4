"""Fast LayerNorm: `layers.layer_norm` and `layers.fused.add_layer_norm`.

A block of rows at a time on every core (parallel.py), each step written into a preallocated
array, row sums through einsum; add_layer_norm sums x + residual inside the block instead of as
one more pass over memory.
"""

import numpy as np

from .parallel import for_each_row_block, row_dot, row_sum, rows


def layer_norm_forward(x, weight, bias, eps):
    """As layers.layer_norm.layer_norm_forward."""
    return _layer_norm(x, None, weight, bias, eps)


def add_layer_norm_forward(x, residual, weight, bias, eps):
    """As layers.fused.add_layer_norm_forward: LayerNorm(x + residual)."""
    return _layer_norm(x, residual, weight, bias, eps)


def _layer_norm(x, residual, weight, bias, eps):
    y, xhat = np.empty_like(x), np.empty_like(x)
    rstd = np.empty((*x.shape[:-1], 1), dtype=x.dtype)
    inputs = (rows(x),) if residual is None else (rows(x), rows(residual))
    for_each_row_block(lambda *blocks: _layer_norm_block(*blocks, weight=weight, bias=bias, eps=eps),
                       rows(y), rows(xhat), rows(rstd), *inputs)
    return y, (xhat, rstd, weight)


def _layer_norm_block(y, xhat, rstd, x, residual=None, *, weight, bias, eps):
    inv_c = 1.0 / x.shape[-1]
    if residual is not None:
        x = np.add(x, residual, out=y)                     # x + residual (y is free until the end)
    np.subtract(x, row_sum(x) * inv_c, out=xhat)           # centred
    np.multiply(row_dot(xhat, xhat), inv_c, out=rstd)      # var
    rstd += eps
    np.sqrt(rstd, out=rstd)
    np.divide(1.0, rstd, out=rstd)                         # 1 / sqrt(var + eps)
    xhat *= rstd                                           # normalised
    np.multiply(xhat, weight, out=y)
    y += bias


def layer_norm_backward(dy, cache):
    """As layers.layer_norm.layer_norm_backward."""
    xhat, rstd, weight = cache
    dx = np.empty_like(xhat)
    for_each_row_block(lambda *blocks: _layer_norm_grad_block(*blocks, weight),
                       rows(dx), rows(dy), rows(xhat), rows(rstd))
    dy2 = rows(dy)
    return dx, {"weight": np.einsum("nc,nc->c", dy2, rows(xhat)), "bias": dy2.sum(0)}


def add_layer_norm_backward(dy, cache):
    """As layers.fused.add_layer_norm_backward: the gradient of x + residual."""
    return layer_norm_backward(dy, cache)


def _layer_norm_grad_block(dx, dy, xhat, rstd, weight):
    inv_c = 1.0 / dy.shape[-1]
    g = dy * weight
    np.multiply(xhat, row_dot(g, xhat) * inv_c, out=dx)    # xhat mean(g xhat)
    np.subtract(g, dx, out=dx)
    dx -= row_sum(g) * inv_c                               # mean(g)
    dx *= rstd
