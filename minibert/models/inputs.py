"""Input checks: bad input gets a message naming the problem, not a NumPy traceback.

`check_inputs` turns what the user passed (lists or arrays) into int64 arrays of shape (B, T)
and fills the defaults HF uses: attention_mask all ones, token_type_ids all zeros.
"""

import numpy as np

from ..layers.cross_entropy import IGNORE_INDEX


def _as_int_array(x, name):
    x = np.asarray(x)
    if x.dtype == bool or not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {x.dtype}")
    return x.astype(np.int64, copy=False)


def _check_range(x, low, high, name, what):
    if x.size and (x.min() < low or x.max() >= high):
        bad = x[(x < low) | (x >= high)][0]
        raise ValueError(f"{name} contains {bad}, outside {what} [{low}, {high})")


def check_inputs(config, input_ids, attention_mask=None, token_type_ids=None):
    input_ids = _as_int_array(input_ids, "input_ids")
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids must have shape (batch, seq_len), got shape {input_ids.shape}")
    B, T = input_ids.shape
    if B == 0 or T == 0:
        raise ValueError(f"input_ids is empty: shape {input_ids.shape}")
    if T > config.max_position_embeddings:
        raise ValueError(f"sequence length {T} is longer than max_position_embeddings "
                         f"({config.max_position_embeddings})")
    _check_range(input_ids, 0, config.vocab_size, "input_ids", "the vocabulary")

    if attention_mask is None:
        attention_mask = np.ones((B, T), dtype=np.int64)
    else:
        attention_mask = np.asarray(attention_mask)
        if attention_mask.shape != (B, T):
            raise ValueError(f"attention_mask has shape {attention_mask.shape}, "
                             f"input_ids has shape {(B, T)}")
        if not np.isin(attention_mask, (0, 1)).all():
            raise ValueError("attention_mask must hold only 0 (padding) and 1 (real token)")
        attention_mask = attention_mask.astype(np.int64)

    if token_type_ids is None:
        token_type_ids = np.zeros((B, T), dtype=np.int64)
    else:
        token_type_ids = _as_int_array(token_type_ids, "token_type_ids")
        if token_type_ids.shape != (B, T):
            raise ValueError(f"token_type_ids has shape {token_type_ids.shape}, "
                             f"input_ids has shape {(B, T)}")
        _check_range(token_type_ids, 0, config.type_vocab_size, "token_type_ids", "type_vocab_size")
    return input_ids, attention_mask, token_type_ids


def check_labels(labels, shape, num_classes, name="labels"):
    """Labels of shape `shape`, each IGNORE_INDEX (-100, not scored) or in [0, num_classes)."""
    labels = _as_int_array(labels, name)
    if labels.shape != tuple(shape):
        raise ValueError(f"{name} has shape {labels.shape}, expected {tuple(shape)}")
    kept = labels[labels != IGNORE_INDEX]
    _check_range(kept, 0, num_classes, name, "the label range (or -100 to ignore)")
    return labels


def check_next_sentence_label(label, batch_size):
    label = _as_int_array(label, "next_sentence_label")
    if label.shape != (batch_size,):
        raise ValueError(f"next_sentence_label has shape {label.shape}, expected ({batch_size},)")
    _check_range(label, 0, 2, "next_sentence_label", "{0: is next, 1: random}")
    return label
