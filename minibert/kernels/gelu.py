"""Fast GELU, exact and tanh: `layers.activations.gelu_*` and `gelu_tanh_*`, one compiled pass.

    exact   y = x Phi(x) = x (1 + erf(x / sqrt 2)) / 2,      dy/dx = Phi(x) + x phi(x)
    tanh    y = x (1 + tanh(u)) / 2,  u = sqrt(2/pi) (x + 0.044715 x^3)

Each kernel adds the bias of the product before it (linear_activation: z = x W^T, then z + b,
kept for the backward) and computes GELU in the same pass over the rows, the rows shared among
the threads (`prange`).  float32 uses elementary.py's vectorised functions: the forward its
rational erf (no exp: |error in x Phi(x)| < 2 eps32 max(|x|, 1)), the backward its normal CDF,
which brings the Gaussian phi with it, and tanh; float64 the C library's erf, as the textbook.  Only
x (= z + b) is kept for the backward, which recomputes Phi: two (N, I) arrays held
per layer (x here, y for the next linear), as torch holds.
"""

import math

import numpy as np
from numba import njit, prange

from .elementary import erf, normal_cdf, tanh
from .memory import empty_apart

FMA = {"contract"}          # a * b + c as one fused multiply-add: faster, and one rounding fewer
SQRT_HALF = math.sqrt(0.5)             # 1 / sqrt 2 as the textbook rounds it
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
TANH_CUBIC = 0.044715


@njit(inline="always")
def add_bias(z, bias, i, j):
    """z[i, j] + bias[j], written back into z (an empty bias: z[i, j] as it is)."""
    x = z[i, j]
    if bias.size:
        x += bias[j]
        z[i, j] = x
    return x


@njit(parallel=True, cache=True, fastmath=FMA, error_model="numpy")
def bias_gelu_rows(z, bias, y):
    """z: (N, I), bias: (I,) or empty.  z <- z + bias in place; y <- x (1 + erf(x / sqrt 2)) / 2."""
    t = z.dtype.type
    half, one, c = t(0.5), t(1.0), t(SQRT_HALF)
    for i in prange(z.shape[0]):
        for j in range(z.shape[1]):
            x = add_bias(z, bias, i, j)
            y[i, j] = half * x * (one + erf(x * c))


@njit(parallel=True, cache=True, fastmath=FMA, error_model="numpy")
def gelu_grad_rows(dy, x, dx):
    """dx = dy (Phi(x) + x phi(x)), phi(x) = exp(-x^2 / 2) / sqrt(2 pi)."""
    c = x.dtype.type(INV_SQRT_2PI)
    for i in prange(x.shape[0]):
        for j in range(x.shape[1]):
            v = x[i, j]
            cdf, gauss = normal_cdf(v)
            dx[i, j] = dy[i, j] * (cdf + v * c * gauss)


@njit(parallel=True, cache=True, fastmath=FMA, error_model="numpy")
def bias_gelu_tanh_rows(z, bias, y, th):
    """As bias_gelu_rows, the tanh form; th <- tanh(u) for the backward."""
    t = z.dtype.type
    half, one, a, k = t(0.5), t(1.0), t(SQRT_2_OVER_PI), t(TANH_CUBIC)
    for i in prange(z.shape[0]):
        for j in range(z.shape[1]):
            x = add_bias(z, bias, i, j)
            tu = tanh(a * (x + k * x * x * x))
            th[i, j] = tu
            y[i, j] = half * x * (one + tu)


@njit(parallel=True, cache=True, fastmath=FMA, error_model="numpy")
def gelu_tanh_grad_rows(dy, x, th, dx):
    """dx = dy (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2))."""
    t = x.dtype.type
    half, one, a, k3 = t(0.5), t(1.0), t(SQRT_2_OVER_PI), t(3.0 * TANH_CUBIC)
    for i in prange(x.shape[0]):
        for j in range(x.shape[1]):
            v, tu = x[i, j], th[i, j]
            du = a * (one + k3 * v * v)
            dx[i, j] = dy[i, j] * (half * (one + tu) + half * v * (one - tu * tu) * du)


def rows(a):
    """a viewed as a 2-D array of rows: (..., n) -> (N, n).  A vector is one row."""
    return a.reshape(-1, a.shape[-1])


def _no_bias(x):
    return np.empty(0, dtype=x.dtype)


def gelu_forward(x):
    """As layers.activations.gelu_forward."""
    y = empty_apart(x)
    bias_gelu_rows(rows(x), _no_bias(x), rows(y))
    return y, x


def add_bias_gelu_forward(z, bias):
    """GELU(z + b) for z the fresh output of a product (linear_activation): z becomes z + b in
    place, in the same pass (the backward needs z + b)."""
    y = empty_apart(z)
    bias_gelu_rows(rows(z), bias, rows(y))
    return y, z


def gelu_backward(dy, x):
    """As layers.activations.gelu_backward."""
    dx = empty_apart(x)
    gelu_grad_rows(rows(np.ascontiguousarray(dy)), rows(x), rows(dx))
    return dx, {}


def gelu_tanh_forward(x):
    """As layers.activations.gelu_tanh_forward."""
    return add_bias_gelu_tanh_forward(x, None)


def add_bias_gelu_tanh_forward(z, bias):
    """The tanh GELU of z + b, z + b written into z (None: no bias, z unchanged)."""
    y, th = empty_apart(z, 1), empty_apart(z, 2)
    bias_gelu_tanh_rows(rows(z), _no_bias(z) if bias is None else bias, rows(y), rows(th))
    return y, (z, th)


def gelu_tanh_backward(dy, cache):
    """As layers.activations.gelu_tanh_backward."""
    x, th = cache
    dx = empty_apart(x)
    gelu_tanh_grad_rows(rows(np.ascontiguousarray(dy)), rows(x), rows(th), rows(dx))
    return dx, {}
