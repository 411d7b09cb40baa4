"""Layer normalisation (Ba et al. 2016), over the last axis, as torch.nn.LayerNorm.

    mean = (1/C) sum_c x_c,   var = (1/C) sum_c (x_c - mean)^2        (the biased variance)
    xhat = (x - mean) / sqrt(var + eps)
    y = xhat * gamma + beta                                            gamma: `weight`, beta: `bias`
"""

import numpy as np


def layer_norm_forward(x, weight, bias, eps):
    """x: (..., C)  ->  y: (..., C)."""
    mean = x.mean(-1, keepdims=True)                       # (..., 1)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)        # (..., 1)
    rstd = 1.0 / np.sqrt(var + eps)                        # (..., 1)
    xhat = (x - mean) * rstd                               # (..., C)
    return xhat * weight + bias, (xhat, rstd, weight)


def layer_norm_backward(dy, cache):
    """With g = dy * gamma:  dx = rstd (g - mean(g) - xhat mean(g xhat));
    dgamma = sum over rows of dy xhat,  dbeta = sum over rows of dy."""
    xhat, rstd, weight = cache
    g = dy * weight                                        # (..., C)
    dx = rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    C = dy.shape[-1]
    dy2, xhat2 = dy.reshape(-1, C), xhat.reshape(-1, C)    # (N, C)
    return dx, {"weight": (dy2 * xhat2).sum(0), "bias": dy2.sum(0)}
