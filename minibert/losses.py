"""Cross-entropy over logits, with ignored targets (as torch.nn.CrossEntropyLoss, mean reduction).

    loss = (1 / N) sum_{i : y_i != ignore} ( logsumexp(z_i) - z_i[y_i] ),   N = number of kept rows
    dloss/dz_i = (softmax(z_i) - onehot(y_i)) / N   for kept rows, 0 for ignored ones

MLM labels mark "not predicted" with -100 (HF's convention).  When every row is ignored
torch returns NaN (0/0); we return a loss of 0 with a zero gradient instead, so a batch
without a single prediction never poisons a training run.
"""

import numpy as np

from .parallel import for_each_row_block

IGNORE_INDEX = -100


def cross_entropy_forward(logits, labels, ignore_index=IGNORE_INDEX):
    """logits: (N, K), labels: (N,) integers in [0, K) or `ignore_index`  ->  scalar loss."""
    keep = labels != ignore_index                                  # (N,)
    n = int(keep.sum())
    log_probs = np.empty_like(logits)                              # (N, K)
    for_each_row_block(_log_softmax_block, log_probs, logits)
    safe_labels = np.where(keep, labels, 0)
    picked = np.take_along_axis(log_probs, safe_labels[:, None], axis=1)[:, 0]   # (N,)
    loss = -(picked * keep).sum() / max(n, 1)
    return float(loss), (log_probs, safe_labels, keep, n)


def _log_softmax_block(log_probs, z):
    """log softmax(z) = (z - max z) - log sum exp(z - max z), row by row."""
    np.subtract(z, z.max(-1, keepdims=True), out=log_probs)
    log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))


def cross_entropy_backward(cache, dloss=1.0):
    log_probs, safe_labels, keep, n = cache
    # each row: (softmax - onehot) * dloss / n, or 0 when ignored
    row_scale = (keep * (dloss / max(n, 1))).astype(log_probs.dtype)[:, None]     # (N, 1)
    dlogits = np.empty_like(log_probs)
    for_each_row_block(_scaled_softmax_block, dlogits, log_probs, row_scale)
    dlogits[np.arange(len(safe_labels)), safe_labels] -= row_scale[:, 0]
    return dlogits


def _scaled_softmax_block(out, log_probs, row_scale):
    np.exp(log_probs, out=out)
    out *= row_scale
