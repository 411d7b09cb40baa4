"""Cross-entropy over logits with ignored targets (torch.nn.CrossEntropyLoss, mean reduction).

    loss = (1/n) sum over kept rows i of ( logsumexp(z_i) - z_i[y_i] ),   n = the number of kept rows
    dloss/dz_i = (softmax(z_i) - onehot(y_i)) / n for a kept row, 0 for an ignored one

A label of IGNORE_INDEX (-100, HF's convention) is not predicted: MLM positions that were not
masked, padding, sub-word continuations in tagging.  When every row is ignored torch returns NaN
(0/0); we return 0 with a zero gradient, so a batch without a prediction never poisons a run.
"""

import numpy as np

IGNORE_INDEX = -100


def cross_entropy_forward(logits, labels, ignore_index=IGNORE_INDEX):
    """logits: (N, K), labels: (N,) integers in [0, K) or `ignore_index`  ->  a float."""
    keep = labels != ignore_index                                         # (N,)
    n = max(int(keep.sum()), 1)
    shifted = logits - logits.max(-1, keepdims=True)                      # (N, K)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))  # log softmax
    targets = np.where(keep, labels, 0)                                   # any valid index for ignored rows
    picked = log_probs[np.arange(len(targets)), targets]                  # (N,)
    loss = -(picked * keep).sum() / n
    return float(loss), (log_probs, targets, keep, n)


def cross_entropy_backward(dloss, cache):
    """dloss: the upstream gradient of the loss (1.0 for the loss itself)  ->  dlogits (N, K)."""
    log_probs, targets, keep, n = cache
    dlogits = np.exp(log_probs)                                           # softmax: (N, K)
    dlogits[np.arange(len(targets)), targets] -= 1.0                      # - onehot
    dlogits *= (keep * (dloss / n)).astype(dlogits.dtype)[:, None]        # 0 for ignored rows
    return dlogits, {}
