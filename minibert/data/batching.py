"""Padding token sequences of different lengths into (B, T) arrays: the one padding helper that
the tokenizer, pretraining and fine-tuning all use.

    input_ids        the ids, then pad_token_id                     (B, T)
    token_type_ids   the segment ids, then 0
    attention_mask   1 on real tokens, 0 on padding
    labels           per-token labels, then IGNORE_INDEX (not scored)   only when given
"""

import numpy as np

from ..layers.cross_entropy import IGNORE_INDEX


def pad_batch(features, pad_token_id=0, length=None):
    """features: dicts with `input_ids` and optionally `token_type_ids` and per-token `labels`
    (lists of integers).  Padded at the end to the longest sequence, or to `length` when longer."""
    B = len(features)
    T = max(len(f["input_ids"]) for f in features)
    if length is not None:
        T = max(T, length)
    batch = {"input_ids": np.full((B, T), pad_token_id, dtype=np.int64),
             "token_type_ids": np.zeros((B, T), dtype=np.int64),
             "attention_mask": np.zeros((B, T), dtype=np.int64)}
    with_labels = all(isinstance(f.get("labels"), (list, tuple, np.ndarray)) for f in features)
    if with_labels:
        batch["labels"] = np.full((B, T), IGNORE_INDEX, dtype=np.int64)
    for i, f in enumerate(features):
        n = len(f["input_ids"])
        batch["input_ids"][i, :n] = f["input_ids"]
        batch["attention_mask"][i, :n] = 1
        if f.get("token_type_ids") is not None:
            batch["token_type_ids"][i, :n] = f["token_type_ids"]
        if with_labels:
            batch["labels"][i, :n] = f["labels"]
    return batch
