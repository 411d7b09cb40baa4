"""Activation functions and their derivatives.

    gelu      GELU(x) = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))           (exact, Hendrycks & Gimpel 2016)
    gelu_new  0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))             (the tanh approximation)
    relu      max(x, 0)
    tanh      used by the pooler

Each `*_forward(x)` returns `(y, cache)`; each `*_backward(dy, cache)` returns dx.
Constants are Python floats on purpose: a NumPy float64 scalar would silently promote a
float32 array to float64 (NumPy 2 promotion rules).
"""

import math

import numpy as np
from scipy.special import erf

SQRT_HALF = math.sqrt(0.5)                 # 1 / sqrt(2)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu_forward(x):
    """y = 0.5 x (1 + erf(x / sqrt 2))."""
    cdf = 0.5 * (1.0 + erf(x * SQRT_HALF))   # Phi(x), the standard normal CDF
    return x * cdf, (x, cdf)


def gelu_backward(dy, cache):
    """dy/dx = Phi(x) + x phi(x), with phi the standard normal density."""
    x, cdf = cache
    pdf = INV_SQRT_2PI * np.exp(-0.5 * x * x)
    return dy * (cdf + x * pdf)


def gelu_new_forward(x):
    """y = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)."""
    t = np.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
    return 0.5 * x * (1.0 + t), (x, t)


def gelu_new_backward(dy, cache):
    """dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx,  du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""
    x, t = cache
    du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x)
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


def relu_forward(x):
    """y = max(x, 0)."""
    positive = x > 0
    return x * positive, positive


def relu_backward(dy, positive):
    return dy * positive


def tanh_forward(x):
    y = np.tanh(x)
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
