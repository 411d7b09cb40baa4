"""Fast cross-entropy: `layers.cross_entropy`, the log-softmax and its gradient a block of rows at
a time on every core (an MLM batch's logits are (N, V): tens of megabytes)."""

import numpy as np

from ..layers.cross_entropy import IGNORE_INDEX
from .parallel import for_each_row_block


def cross_entropy_forward(logits, labels, ignore_index=IGNORE_INDEX):
    """As layers.cross_entropy.cross_entropy_forward."""
    keep = labels != ignore_index                                  # (N,)
    n = max(int(keep.sum()), 1)
    log_probs = np.empty_like(logits)                              # (N, K)
    for_each_row_block(_log_softmax_block, log_probs, logits)
    targets = np.where(keep, labels, 0)
    picked = np.take_along_axis(log_probs, targets[:, None], axis=1)[:, 0]   # (N,)
    loss = -(picked * keep).sum() / n
    return float(loss), (log_probs, targets, keep, n)


def _log_softmax_block(log_probs, z):
    """log softmax(z) = (z - max z) - log sum exp(z - max z), row by row."""
    np.subtract(z, z.max(-1, keepdims=True), out=log_probs)
    log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))


def cross_entropy_backward(dloss, cache):
    """As layers.cross_entropy.cross_entropy_backward."""
    log_probs, targets, keep, n = cache
    row_scale = (keep * (dloss / n)).astype(log_probs.dtype)[:, None]     # (N, 1): 0 when ignored
    dlogits = np.empty_like(log_probs)
    for_each_row_block(_scaled_softmax_block, dlogits, log_probs, row_scale)
    dlogits[np.arange(len(targets)), targets] -= row_scale[:, 0]
    return dlogits, {}


def _scaled_softmax_block(out, log_probs, row_scale):
    np.exp(log_probs, out=out)
    out *= row_scale
