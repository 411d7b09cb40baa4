"""Fast exact GELU: `layers.activations.gelu`, y = x Phi(x).

float32: Phi through a polynomial erfc (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7, below
float32's resolution) and exp2, about 19 cheap ufunc passes per block instead of scipy's erf;
float64: scipy's erf, as the textbook (it matches torch to the last digits).  A block of rows at
a time on every core.  Only x is kept for the backward, which recomputes Phi: two (N, I) arrays
held per layer (x here, y for the next linear), as torch holds, instead of four.
"""

import math

import numpy as np
from scipy.special import erf

from .parallel import for_each_row_block, rows

SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# A & S 7.1.26: erfc(u) = t (a1 + t (a2 + ... + t a5)) exp(-u^2), t = 1 / (1 + p u), for u >= 0.
AS_P = 0.3275911
AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
# With u = z / sqrt 2:  t = 1 / (1 + p z / sqrt 2) = T_C / (T_C + z),  T_C = sqrt 2 / p.
T_C = math.sqrt(2.0) / AS_P
HALF_LOG2_E_NEG = -0.5 / math.log(2.0)       # exp(a) = 2^(a log2 e)


def erfc_float32(z):
    """erfc(z / sqrt 2) = 2 Phi(-z) and exp(-z^2 / 2), for float32 z = |x| >= 0: one exp2 and a
    polynomial, no erf call; the tail is computed directly (1 - erf would cancel).  Each line is
    one pass of a cheap ufunc (np.minimum, np.copysign and np.reciprocal are several times slower
    than add and multiply, so they are avoided)."""
    gauss = np.square(z)                                 # exp(-z^2 / 2) = 2^(-z^2 log2(e) / 2)
    gauss *= HALF_LOG2_E_NEG
    np.exp2(gauss, out=gauss)
    t = np.add(z, T_C)                                   # t = T_C / (T_C + z)
    np.divide(T_C, t, out=t)
    poly = AS_A[4] * t                                   # Horner: t (a1 + t (a2 + t (a3 + ...)))
    for a in reversed(AS_A[:4]):
        poly += a
        poly *= t
    poly *= gauss
    return poly, gauss


def normal_cdf(x):
    """Phi(x) and exp(-x^2 / 2).  float32: with e = erfc(|x| / sqrt 2), Phi(x) = 1 - e/2 for
    x >= 0 and e/2 for x < 0, that is 0.5 + copysign(0.5 - e/2, x).  float64: scipy's erf."""
    if x.dtype != np.float32:
        return 0.5 * (1.0 + erf(x * SQRT_HALF)), np.exp(-0.5 * x * x)
    e, gauss = erfc_float32(np.abs(x))
    e *= -0.5                                            # 0.5 - e / 2
    e += 0.5
    cdf = np.copysign(e, x, out=e)
    cdf += 0.5
    return cdf, gauss


def gelu_forward(x):
    """As layers.activations.gelu_forward."""
    y = np.empty_like(x)
    for_each_row_block(_gelu_block, rows(y), rows(x))
    return y, x


def add_bias_gelu_forward(z, bias):
    """GELU(z + b) for z the fresh output of a product (linear_activation): z becomes z + b in
    place, inside each block (the backward needs z + b anyway)."""
    y = np.empty_like(z)
    for_each_row_block(lambda y, z: _gelu_block(y, z, bias), rows(y), rows(z))
    return y, z


def _gelu_block(y, x, bias=None):
    if bias is not None:
        x += bias
    if x.dtype != np.float32:
        cdf, _ = normal_cdf(x)
        np.multiply(x, cdf, out=y)
        return
    # float32, without cancellation: with z = |x| and e = erfc(z / sqrt 2),
    #   x Phi(x) = relu(x) - z e / 2 = ((x + z) - z e) / 2        (x + z is exactly 0 when x < 0)
    z = np.abs(x)
    e, _ = erfc_float32(z)
    e *= z
    np.add(x, z, out=y)
    y -= e
    y *= 0.5


def gelu_backward(dy, x):
    """As layers.activations.gelu_backward: dy (Phi(x) + x phi(x))."""
    dx = np.empty_like(x)
    for_each_row_block(_gelu_grad_block, rows(dx), rows(dy), rows(x))
    return dx, {}


def _gelu_grad_block(dx, dy, x):
    cdf, gauss = normal_cdf(x)
    gauss *= INV_SQRT_2PI
    gauss *= x
    gauss += cdf                      # Phi(x) + x phi(x)
    np.multiply(gauss, dy, out=dx)
