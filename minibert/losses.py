"""Cross-entropy over logits, with ignored targets (as torch.nn.CrossEntropyLoss, mean reduction).

    loss = (1 / N) sum_{i : y_i != ignore} ( logsumexp(z_i) - z_i[y_i] ),   N = number of kept rows
    dloss/dz_i = (softmax(z_i) - onehot(y_i)) / N   for kept rows, 0 for ignored ones

MLM labels mark "not predicted" with -100 (HF's convention).  When every row is ignored
torch returns NaN (0/0); we return a loss of 0 with a zero gradient instead, so a batch
without a single prediction never poisons a training run.
"""

import numpy as np

IGNORE_INDEX = -100


def cross_entropy_forward(logits, labels, ignore_index=IGNORE_INDEX):
    """logits: (N, K), labels: (N,) integers in [0, K) or `ignore_index`  ->  scalar loss."""
    keep = labels != ignore_index                                  # (N,)
    n = int(keep.sum())
    shifted = logits - logits.max(-1, keepdims=True)               # (N, K)
    log_z = np.log(np.exp(shifted).sum(-1, keepdims=True))        # (N, 1)
    log_probs = shifted - log_z                                    # (N, K)
    safe_labels = np.where(keep, labels, 0)
    picked = np.take_along_axis(log_probs, safe_labels[:, None], axis=1)[:, 0]   # (N,)
    loss = -(picked * keep).sum() / max(n, 1)
    return float(loss), (log_probs, safe_labels, keep, n)


def cross_entropy_backward(cache, dloss=1.0):
    log_probs, safe_labels, keep, n = cache
    dlogits = np.exp(log_probs)                                    # softmax, (N, K)
    dlogits[np.arange(len(safe_labels)), safe_labels] -= 1.0
    dlogits *= (keep[:, None] * (dloss / max(n, 1))).astype(dlogits.dtype)
    return dlogits
