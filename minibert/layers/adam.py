"""One Adam / AdamW update of one parameter, in place (Kingma & Ba 2015; Loshchilov & Hutter 2019).

At step t = 1, 2, ... with gradient g:

    g = g + wd p                              Adam's L2 decay (not decoupled), as torch.optim.Adam
    m = b1 m + (1 - b1) g                     first moment
    v = b2 v + (1 - b2) g^2                   second moment
    m_hat = m / (1 - b1^t),  v_hat = v / (1 - b2^t)      bias correction (BERT's original has none)
    p = p - lr wd p                           AdamW's decoupled decay, as torch.optim.AdamW
    p = p - lr m_hat / (sqrt(v_hat) + eps)
"""

import numpy as np


def adam_update(param, grad, exp_avg, exp_avg_sq, *, lr, betas, eps, step, weight_decay,
                decoupled, correct_bias):
    """Update `param`, `exp_avg` (m) and `exp_avg_sq` (v) in place."""
    b1, b2 = betas
    if weight_decay and not decoupled:
        grad = grad + weight_decay * param
    exp_avg[...] = b1 * exp_avg + (1.0 - b1) * grad
    exp_avg_sq[...] = b2 * exp_avg_sq + (1.0 - b2) * grad * grad
    m_hat, v_hat = exp_avg, exp_avg_sq
    if correct_bias:
        m_hat = exp_avg / (1.0 - b1 ** step)
        v_hat = exp_avg_sq / (1.0 - b2 ** step)
    if weight_decay and decoupled:
        param -= lr * weight_decay * param
    param -= lr * m_hat / (np.sqrt(v_hat) + eps)
