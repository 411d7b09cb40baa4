"""Fast Adam / AdamW update: `layers.adam.adam_update`, one compiled pass per parameter.

Each number of the parameter, its gradient and both moments is read once and written once, the
numbers shared among the threads; no temporaries.  The textbook's m_hat / (sqrt(v_hat) + eps) is
computed as (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps): the same number, two scalars
instead of two array passes.
"""

import math

from numba import njit, prange


@njit(parallel=True, cache=True)
def adam_flat(p, g, m, v, b1, b2, eps, step_size, v_scale, l2_decay, decoupled_decay):
    """p, g, m, v: 1-D views of one parameter, its gradient and its moments, updated in place."""
    t = p.dtype.type
    c1, c2 = t(1.0 - b1), t(1.0 - b2)                # 1 - b rounded once, as the textbook's
    b1, b2, eps = t(b1), t(b2), t(eps)
    step_size, v_scale, l2, keep = t(step_size), t(v_scale), t(l2_decay), t(1.0 - decoupled_decay)
    for i in prange(p.shape[0]):
        gi = g[i] + l2 * p[i]                        # Adam's L2 decay (0 for AdamW)
        mi = b1 * m[i] + c1 * gi
        vi = b2 * v[i] + c2 * gi * gi
        m[i], v[i] = mi, vi
        p[i] = p[i] * keep - step_size * mi / (math.sqrt(vi) * v_scale + eps)


def adam_update(param, grad, exp_avg, exp_avg_sq, *, lr, betas, eps, step, weight_decay,
                decoupled, correct_bias):
    """As layers.adam.adam_update."""
    b1, b2 = betas
    if correct_bias:
        step_size, v_scale = lr / (1.0 - b1 ** step), 1.0 / math.sqrt(1.0 - b2 ** step)
    else:
        step_size, v_scale = lr, 1.0
    for name, a in (("param", param), ("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)):
        if not a.flags.c_contiguous:
            raise ValueError(f"adam_update updates {name} in place: it must be a C-contiguous array")
    l2 = weight_decay if weight_decay and not decoupled else 0.0
    decay = lr * weight_decay if weight_decay and decoupled else 0.0
    adam_flat(param.reshape(-1), grad.reshape(-1), exp_avg.reshape(-1), exp_avg_sq.reshape(-1),
              b1, b2, eps, step_size, v_scale, l2, decay)
