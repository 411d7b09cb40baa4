"""Linear (fully connected) layer: y = x W^T + b.

HuggingFace's layout: W is (out, in), applied as x @ W.T.
"""


def linear_forward(x, weight, bias):
    """y = x W^T + b.    x: (..., in), W: (out, in), b: (out,) or None  ->  y: (..., out)."""
    y = x @ weight.T                                       # (..., out)
    if bias is not None:
        y = y + bias
    return y, (x, weight)


def linear_backward(dy, cache):
    """dx = dy W;  dW = dy^T x and db = sum of dy, both summed over every leading axis."""
    x, weight = cache
    dx = dy @ weight                                       # (..., in)
    dy2 = dy.reshape(-1, dy.shape[-1])                     # (N, out)
    x2 = x.reshape(-1, x.shape[-1])                        # (N, in)
    return dx, {"weight": dy2.T @ x2, "bias": dy2.sum(0)}
