"""The basic layers: linear, LayerNorm, embedding lookup, dropout, softmax.

Shapes: B batch, T sequence, C hidden, V vocabulary; `...` any leading axes.
Each layer is a pair of pure functions:

    y, cache = layer_forward(x, params..., )
    dx, grads = layer_backward(dy, cache)

Weights use HuggingFace's layouts: a Linear weight is (out, in) and is applied as x @ W.T.
"""

import math

import numpy as np

from .parallel import for_each_row_block, rows


# ---- Linear: y = x W^T + b ------------------------------------------------------------------

def linear_forward(x, weight, bias):
    """y = x W^T + b.   x: (..., in), W: (out, in), b: (out,)  ->  y: (..., out).

    The leading axes are flattened first: one (N, in) @ (in, out) product is a single BLAS call,
    where NumPy would loop over a (B, T, in) stack one (T, in) slice at a time.
    """
    y = x.reshape(-1, x.shape[-1]) @ weight.T              # (N, out)
    if bias is not None:
        y += bias
    return y.reshape(*x.shape[:-1], weight.shape[0]), (x, weight)


def linear_backward(dy, cache):
    """dx = dy W,  dW = dy^T x (summed over all leading axes),  db = sum dy."""
    x, weight = cache
    dy2 = dy.reshape(-1, dy.shape[-1])                     # (N, out)
    x2 = x.reshape(-1, x.shape[-1])                        # (N, in)
    dx = (dy2 @ weight).reshape(x.shape)                   # (..., in)
    return dx, {"weight": dy2.T @ x2, "bias": dy2.sum(0)}


# ---- LayerNorm: y = (x - mean) / sqrt(var + eps) * gamma + beta -------------------------------

def layer_norm_forward(x, weight, bias, eps, residual=None):
    """Normalise over the last axis (biased variance, as torch.nn.LayerNorm).
    With `residual`, normalises x + residual (BERT's "add & norm"), the sum made inside the
    block instead of as one more pass over memory; the gradient of the sum is the gradient of
    both terms.  Runs a block of rows at a time on every core; one block is `_layer_norm_block`."""
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
    """With g = dy * gamma:  dx = rstd (g - mean(g) - xhat mean(g xhat));
    dgamma = sum over rows of dy xhat, dbeta = sum over rows of dy."""
    xhat, rstd, weight = cache
    dx = np.empty_like(xhat)
    for_each_row_block(lambda *blocks: _layer_norm_grad_block(*blocks, weight),
                       rows(dx), rows(dy), rows(xhat), rows(rstd))
    dy2 = rows(dy)
    return dx, {"weight": np.einsum("nc,nc->c", dy2, rows(xhat)), "bias": dy2.sum(0)}


def _layer_norm_grad_block(dx, dy, xhat, rstd, weight):
    inv_c = 1.0 / dy.shape[-1]
    g = dy * weight
    np.multiply(xhat, row_dot(g, xhat) * inv_c, out=dx)    # xhat mean(g xhat)
    np.subtract(g, dx, out=dx)
    dx -= row_sum(g) * inv_c                               # mean(g)
    dx *= rstd


# Sums along each row, as (N, 1) columns.  np.einsum's loop is 2-3x faster than x.sum(-1) on
# rows of a few hundred numbers (NumPy's reduction pays a fixed cost per row), and
# row_dot(a, b) = sum(a * b) never stores the product.

def row_sum(a):
    return np.einsum("ij->i", a)[:, None]


def row_dot(a, b):
    return np.einsum("ij,ij->i", a, b)[:, None]


# ---- Embedding lookup: y = W[ids] -----------------------------------------------------------

def embedding_forward(ids, weight):
    """ids: (B, T) integers, W: (V, C)  ->  (B, T, C)."""
    return weight[ids], (ids, weight.shape)


def embedding_backward(dy, cache, padding_idx=None):
    """dW[v] = sum of dy over every position whose id is v (a scatter-add: ids repeat).

    Rows of `padding_idx` get no gradient, as torch.nn.Embedding(padding_idx=...).
    Plainly `np.add.at(dW, ids, dy)`; that adds one row at a time, so instead the rows of dy are
    sorted by id and each run of equal ids summed with one `np.add.reduceat` (5-10x faster).
    """
    ids, shape = cache
    ids = ids.reshape(-1)
    dy = dy.reshape(-1, shape[1])
    if padding_idx is not None:
        keep = ids != padding_idx
        ids, dy = ids[keep], dy[keep]
    dweight = np.zeros(shape, dtype=dy.dtype)
    if ids.size:
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])   # each run of one id
        dweight[sorted_ids[starts]] = np.add.reduceat(dy[order], starts, axis=0)
    return {"weight": dweight}


# ---- Dropout: y = x * mask / (1 - p) ----------------------------------------------------------

def dropout_forward(x, p, rng, training):
    """Zero each element with probability p and scale the rest by 1/(1-p); identity in eval.

    The generator `rng` is explicit so that runs are reproducible; the scaled mask is the cache.
    """
    if not training or p == 0.0:
        return x, None
    mask = (rng.random(x.shape, dtype=np.float32) >= p).astype(x.dtype) * (1.0 / (1.0 - p))
    return x * mask, mask


def dropout_backward(dy, mask):
    return dy if mask is None else dy * mask


# ---- Softmax over the last axis ---------------------------------------------------------------

def softmax_forward(x):
    """y_i = exp(x_i - m) / sum_j exp(x_j - m), over the last axis of x: (..., R, K).

    Any shift m gives the same y; a shift at least as large as the row's values keeps exp from
    overflowing.  The textbook m is each row's max.  We take the max of each (R, K) matrix (an
    attention head's scores): one long reduction where a max per row of 128 costs as much as the
    exp.  A row whose values all lie far below its matrix's max would then lose precision
    (exp underflows): a row whose exps sum below SOFTMAX_MIN_SUM is redone with its own max.
    A block of matrices at a time on every core; one block is `_softmax_block`.
    """
    K = x.shape[-1]
    R = x.shape[-2] if x.ndim > 1 else 1
    y = np.empty_like(x)
    for_each_row_block(lambda y, x: _softmax_block(y, x, K), y.reshape(-1, R * K), x.reshape(-1, R * K))
    return y, y


LOG2_E = 1.0 / math.log(2.0)
SOFTMAX_MIN_SUM = 1e-20      # a row whose exps sum above this kept its largest term >= 1e-24: full precision


def _softmax_block(y, x, K):
    """x, y: (G, R * K), G matrices of R rows of K."""
    np.subtract(x, x.max(-1, keepdims=True), out=y)      # shift by each matrix's max
    with np.errstate(over="ignore"):                       # a masked score (the dtype's min) -> -inf
        y *= LOG2_E                                        # exp(a) = 2^(a log2 e): NumPy's float32
    np.exp2(y, out=y)                                      # exp2 is 2x its exp; 2^-inf = 0
    y, x = y.reshape(-1, K), x.reshape(-1, K)              # rows
    total = row_sum(y)                                     # (G R, 1)
    redo = np.flatnonzero(~(total[:, 0] >= SOFTMAX_MIN_SUM))   # far below the max, or NaN
    if redo.size:
        shifted = x[redo] - x[redo].max(-1, keepdims=True)  # the textbook shift for these rows
        y[redo] = np.exp(shifted)
        total[redo] = y[redo].sum(-1, keepdims=True)
    y /= total


def softmax_backward(dy, y):
    """dx_i = y_i (dy_i - sum_j dy_j y_j)."""
    dx = np.empty_like(y)
    for_each_row_block(_softmax_grad_block, rows(dx), rows(dy), rows(y))
    return dx


def _softmax_grad_block(dx, dy, y):
    np.subtract(dy, row_dot(dy, y), out=dx)
    dx *= y
