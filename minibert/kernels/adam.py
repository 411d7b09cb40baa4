"""Fast Adam / AdamW update: `layers.adam.adam_update`, a block at a time on every core with
every temporary written into one scratch array per block (no parameter-sized temporaries).

The textbook's m_hat / (sqrt(v_hat) + eps) is computed as (lr / (1 - b1^t)) m / (sqrt(v) /
sqrt(1 - b2^t) + eps): the same number, two scalars instead of two array passes.
"""

import math
from functools import partial

import numpy as np

from .parallel import for_each_row_block, rows


def adam_update(param, grad, exp_avg, exp_avg_sq, *, lr, betas, eps, step, weight_decay,
                decoupled, correct_bias):
    """As layers.adam.adam_update."""
    b1, b2 = betas
    if correct_bias:
        step_size, v_scale = lr / (1.0 - b1 ** step), 1.0 / math.sqrt(1.0 - b2 ** step)
    else:
        step_size, v_scale = lr, 1.0
    if weight_decay and not decoupled:
        grad = grad + weight_decay * param                 # L2: decay through the moments
    decay = lr * weight_decay if weight_decay and decoupled else 0.0
    update = partial(_adam_block, b1=b1, b2=b2, eps=eps, step_size=step_size, v_scale=v_scale,
                     decoupled_decay=decay)
    for_each_row_block(update, rows(param), rows(grad), rows(exp_avg), rows(exp_avg_sq))


def _adam_block(p, g, m, v, b1, b2, eps, step_size, v_scale, decoupled_decay):
    tmp = np.empty_like(p)
    if decoupled_decay:
        p *= 1.0 - decoupled_decay                   # decoupled: decay the weight itself
    m *= b1
    np.multiply(g, 1.0 - b1, out=tmp)
    m += tmp
    v *= b2
    np.multiply(g, g, out=tmp)
    tmp *= 1.0 - b2
    v += tmp
    np.sqrt(v, out=tmp)
    tmp *= v_scale
    tmp += eps
    np.divide(m, tmp, out=tmp)
    tmp *= step_size
    p -= tmp
