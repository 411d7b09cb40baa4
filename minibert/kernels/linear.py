"""Fast linear layers: `layers.linear` and `layers.fused.linear_activation`.

The leading axes are flattened first: one (N, in) @ (in, out) product is a single BLAS call,
where NumPy would loop over a (B, T, in) stack one (T, in) slice at a time.  The bias is added
in place into the product's fresh output, or, before GELU, inside GELU's own compiled pass (one
pass over the (N, out) numbers less).
"""

from ..layers.activations import ACTIVATIONS
from .gelu import add_bias_gelu_forward, add_bias_gelu_tanh_forward, gelu_backward, gelu_tanh_backward

# activation name -> (forward of z + b that writes z + b into z, backward): the compiled ones
FUSED = {
    "gelu": (add_bias_gelu_forward, gelu_backward),
    "gelu_new": (add_bias_gelu_tanh_forward, gelu_tanh_backward),
    "gelu_pytorch_tanh": (add_bias_gelu_tanh_forward, gelu_tanh_backward),
}


def linear_forward(x, weight, bias):
    """As layers.linear.linear_forward: y = x W^T + b."""
    y = x.reshape(-1, x.shape[-1]) @ weight.T              # (N, out)
    if bias is not None:
        y += bias
    return y.reshape(*x.shape[:-1], weight.shape[0]), (x, weight)


def linear_backward(dy, cache):
    """As layers.linear.linear_backward."""
    x, weight = cache
    dy2 = dy.reshape(-1, dy.shape[-1])                     # (N, out)
    x2 = x.reshape(-1, x.shape[-1])                        # (N, in)
    dx = (dy2 @ weight).reshape(x.shape)                   # (..., in)
    return dx, {"weight": dy2.T @ x2, "bias": dy2.sum(0)}


def linear_activation_forward(x, weight, bias, activation):
    """As layers.fused.linear_activation_forward: act(x W^T + b)."""
    z, linear_cache = linear_forward(x, weight, None)      # x W^T: (..., out), ours to overwrite
    if activation in FUSED:
        y, act_cache = FUSED[activation][0](z, bias)       # z += b inside GELU's pass
    else:
        z += bias
        y, act_cache = ACTIVATIONS[activation][0](z)
    return y, (linear_cache, act_cache, activation)


def linear_activation_backward(dy, cache):
    """As layers.fused.linear_activation_backward (db = the sum of dz, from linear_backward)."""
    linear_cache, act_cache, activation = cache
    act_backward = (FUSED.get(activation) or ACTIVATIONS[activation])[1]
    dz, _ = act_backward(dy, act_cache)
    return linear_backward(dz, linear_cache)
