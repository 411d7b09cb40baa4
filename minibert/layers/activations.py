"""Activation functions and their derivatives.

    gelu        GELU(x) = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2))     exact (Hendrycks & Gimpel 2016)
    gelu_tanh   0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))     the tanh approximation
                (HF's "gelu_new" and "gelu_pytorch_tanh")
    relu        max(x, 0)
    tanh        the pooler's

Constants are Python floats on purpose: a NumPy float64 scalar would turn a float32 array into
float64 (NumPy 2's promotion rules).
"""

import math

import numpy as np
from scipy.special import erf

SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu_forward(x):
    """y = x Phi(x), Phi the standard normal CDF."""
    cdf = 0.5 * (1.0 + erf(x * SQRT_HALF))
    return x * cdf, x


def gelu_backward(dy, x):
    """dy/dx = Phi(x) + x phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi) the normal density."""
    cdf = 0.5 * (1.0 + erf(x * SQRT_HALF))
    pdf = INV_SQRT_2PI * np.exp(-0.5 * x * x)
    return dy * (cdf + x * pdf), {}


def gelu_tanh_forward(x):
    """y = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)."""
    t = np.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
    return 0.5 * x * (1.0 + t), (x, t)


def gelu_tanh_backward(dy, cache):
    """dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx,  du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""
    x, t = cache
    du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x)
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du), {}


def relu_forward(x):
    """y = max(x, 0)."""
    positive = x > 0
    return x * positive, positive


def relu_backward(dy, positive):
    """dy/dx = 1 where x > 0, else 0."""
    return dy * positive, {}


def tanh_forward(x):
    y = np.tanh(x)
    return y, y


def tanh_backward(dy, y):
    """d tanh(x)/dx = 1 - tanh(x)^2."""
    return dy * (1.0 - y * y), {}


# An activation's name (config.json's `hidden_act`, and the pooler's tanh) -> (forward, backward)
ACTIVATIONS = {
    "gelu": (gelu_forward, gelu_backward),
    "gelu_new": (gelu_tanh_forward, gelu_tanh_backward),
    "gelu_pytorch_tanh": (gelu_tanh_forward, gelu_tanh_backward),
    "relu": (relu_forward, relu_backward),
    "tanh": (tanh_forward, tanh_backward),
}
