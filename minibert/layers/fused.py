"""Two pairs of steps that the fast kernels run as one, written here as the plain compositions
they must equal (and that the models call by these names in either tier).

    add_layer_norm       y = LayerNorm(x + residual)          BERT's "add & norm"
    linear_activation    y = act(x W^T + b)                   the FFN's first half, the pooler, heads

The gradient of x + residual is the gradient of each term: add_layer_norm_backward returns it once.
"""

from .activations import ACTIVATIONS
from .layer_norm import layer_norm_backward, layer_norm_forward
from .linear import linear_backward, linear_forward


def add_layer_norm_forward(x, residual, weight, bias, eps):
    """x, residual: (..., C)  ->  LayerNorm(x + residual): (..., C)."""
    return layer_norm_forward(x + residual, weight, bias, eps)


def add_layer_norm_backward(dy, cache):
    """dx: the gradient of x + residual, that is of x and of the residual alike."""
    return layer_norm_backward(dy, cache)


def linear_activation_forward(x, weight, bias, activation):
    """x: (..., in), W: (out, in)  ->  act(x W^T + b): (..., out).  `activation`: a name in ACTIVATIONS."""
    z, linear_cache = linear_forward(x, weight, bias)
    y, act_cache = ACTIVATIONS[activation][0](z)
    return y, (linear_cache, act_cache, activation)


def linear_activation_backward(dy, cache):
    linear_cache, act_cache, activation = cache
    dz, _ = ACTIVATIONS[activation][1](dy, act_cache)
    return linear_backward(dz, linear_cache)
