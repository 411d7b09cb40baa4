"""Activation functions and their derivatives.

    gelu      GELU(x) = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))           (exact, Hendrycks & Gimpel 2016)
    gelu_new  0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))             (the tanh approximation)
    relu      max(x, 0)
    tanh      used by the pooler

Each `*_forward(x)` returns `(y, cache)`; each `*_backward(dy, cache)` returns dx.
`*_forward(x, bias)` computes act(x + bias) for the linear layer before it (called without its
bias): x, that layer's fresh output, becomes x + bias in place, which the backward needs anyway.
For GELU the add happens inside each block of rows, saving a pass over (B, T, I) numbers; the
gradient of the bias is the sum of dx over the rows, which `linear_backward` returns.
Constants are Python floats on purpose: a NumPy float64 scalar would silently promote a
float32 array to float64 (NumPy 2 promotion rules).
"""

import math

import numpy as np
from scipy.special import erf

from .parallel import for_each_row_block, rows

SQRT_HALF = math.sqrt(0.5)                 # 1 / sqrt(2)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


# Abramowitz & Stegun 7.1.26: erfc(u) = t (a1 + t (a2 + ... + t a5)) exp(-u^2), t = 1 / (1 + p u),
# for u >= 0, with |error| < 1.5e-7: below float32's resolution (eps = 1.2e-7).
AS_P = 0.3275911
AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
# With u = z / sqrt 2:  t = 1 / (1 + p z / sqrt 2) = T_C / (T_C + z),  T_C = sqrt 2 / p.
T_C = math.sqrt(2.0) / AS_P
HALF_LOG2_E_NEG = -0.5 / math.log(2.0)       # exp(a) = 2^(a log2 e)


def erfc_float32(z):
    """erfc(z / sqrt 2) = 2 Phi(-z) and exp(-z^2 / 2), for float32 z = |x| >= 0: one exp2 and a
    polynomial, no erf call; the tail is computed directly (1 - erf would cancel).
    Each line is one pass of a cheap ufunc (np.minimum, np.copysign and np.reciprocal are several
    times slower than add and multiply, so they are avoided)."""
    gauss = np.square(z)                                 # exp(-z^2 / 2) = 2^(-z^2 log2(e) / 2)
    gauss *= HALF_LOG2_E_NEG
    np.exp2(gauss, out=gauss)                            # (NumPy's float32 exp2 is 2x its exp)
    t = np.add(z, T_C)                                   # t = T_C / (T_C + z)
    np.divide(T_C, t, out=t)
    poly = AS_A[4] * t                                   # Horner: t (a1 + t (a2 + t (a3 + ...)))
    for a in reversed(AS_A[:4]):
        poly += a
        poly *= t
    poly *= gauss
    return poly, gauss


def normal_cdf_float32(x):
    """Phi(x) and exp(-x^2 / 2) for float32 x, fast.  With e = erfc(|x| / sqrt 2), e / 2 = Phi(-|x|):
    Phi(x) = 1 - e / 2 for x >= 0 and e / 2 for x < 0, that is  0.5 + copysign(0.5 - e / 2, x).
    The exact version is `0.5 * (1 + scipy.special.erf(x / sqrt 2))`, used for float64."""
    e, gauss = erfc_float32(np.abs(x))
    e *= -0.5                                            # 0.5 - e / 2
    e += 0.5
    cdf = np.copysign(e, x, out=e)
    cdf += 0.5
    return cdf, gauss


def normal_cdf(x):
    """Phi(x) and exp(-x^2 / 2): fast for float32, exact (scipy's erf) for float64, where it
    matches torch's exact GELU to the last digits."""
    if x.dtype == np.float32:
        return normal_cdf_float32(x)
    return 0.5 * (1.0 + erf(x * SQRT_HALF)), np.exp(-0.5 * x * x)


def gelu_forward(x, bias=None):
    """y = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)).  Only x is kept for the backward, which
    recomputes Phi: two arrays of (B, T, I) held per layer (x here, y for the next linear), as
    torch holds, instead of four.  Computed a block of rows at a time on every core (parallel.py);
    for one block it is simply  x += bias;  y = x * normal_cdf(x)."""
    y = np.empty_like(x)
    for_each_row_block(lambda y, x: _gelu_block(y, x, bias), rows(y), rows(x))
    return y, x


def _gelu_block(y, x, bias=None):
    add_bias(x, bias)
    if x.dtype != np.float32:
        cdf, _ = normal_cdf(x)
        np.multiply(x, cdf, out=y)
        return
    # float32, fast and without cancellation: with z = |x| and e = erfc(z / sqrt 2),
    #   x Phi(x) = relu(x) - z e / 2 = ((x + z) - z e) / 2        (x + z is exactly 0 when x < 0)
    z = np.abs(x)
    e, _ = erfc_float32(z)
    e *= z
    np.add(x, z, out=y)
    y -= e
    y *= 0.5


def gelu_backward(dy, x):
    """dy/dx = Phi(x) + x phi(x), with phi(x) = exp(-x^2 / 2) / sqrt(2 pi) the normal density."""
    dx = np.empty_like(x)
    for_each_row_block(_gelu_grad_block, rows(dx), rows(dy), rows(x))
    return dx


def _gelu_grad_block(dx, dy, x):
    cdf, gauss = normal_cdf(x)
    gauss *= INV_SQRT_2PI
    gauss *= x
    gauss += cdf                      # Phi(x) + x phi(x)
    np.multiply(gauss, dy, out=dx)


def gelu_new_forward(x, bias=None):
    """y = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)."""
    x = add_bias(x, bias)
    t = np.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
    return 0.5 * x * (1.0 + t), (x, t)


def gelu_new_backward(dy, cache):
    """dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx,  du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""
    x, t = cache
    du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x)
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


def relu_forward(x, bias=None):
    """y = max(x, 0)."""
    x = add_bias(x, bias)
    positive = x > 0
    return x * positive, positive


def relu_backward(dy, positive):
    return dy * positive


def add_bias(x, bias):
    """x += bias (in place), when there is one."""
    if bias is not None:
        x += bias
    return x


def tanh_forward(x, bias=None):
    y = np.tanh(add_bias(x, bias))
    return y, y


def tanh_backward(dy, y):
    """d tanh(x)/dx = 1 - tanh(x)^2."""
    return dy * (1.0 - y * y)


# hidden_act name (as in config.json) -> (forward, backward)
ACT2FN = {
    "gelu": (gelu_forward, gelu_backward),
    "relu": (relu_forward, relu_backward),
    "gelu_new": (gelu_new_forward, gelu_new_backward),
    "gelu_pytorch_tanh": (gelu_new_forward, gelu_new_backward),
}
