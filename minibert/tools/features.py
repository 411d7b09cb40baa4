"""Feature extraction: BERT as a frozen encoder (Devlin et al. 2019, section 5.3).

Sentence embeddings (B, C), named as sentence-transformers' pooling modes:
    cls                   h[:, 0], the [CLS] vector of the last layer
    mean                  sum_t m_t h_t / sum_t m_t, the mean over real tokens (m is the attention
                          mask): what sentence-transformers models such as all-MiniLM-L6-v2 were
                          trained with
    max                   max_t h_t over real tokens, per feature
    mean_sqrt_len_tokens  sum_t m_t h_t / sqrt(sum_t m_t)
  Several modes given as a tuple are concatenated, (B, k C).
Token embeddings, for each text an array over its real tokens (including [CLS] and [SEP]):
    layer=-1        the last layer (T_i, C); any index into the L + 1 hidden states works
                    (0 is the embedding output)
    layer="last4"   the last four layers concatenated (T_i, 4C), the paper's best feature-based
                    NER setting (table 7)
    layer="all"     every hidden state (L + 1, T_i, C)

Texts are batched (sorted by length so a batch pads little) with a progress bar for long lists.
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from ..models.bert import BertModel


def cls_pooling(last_hidden_state, attention_mask=None):
    """(B, T, C) -> (B, C): the vector at position 0, [CLS]."""
    return last_hidden_state[:, 0]


def mean_pooling(hidden_state, attention_mask):
    """(B, T, C), (B, T) -> (B, C): the mean of the real tokens' vectors."""
    m = attention_mask[:, :, None].astype(hidden_state.dtype)           # (B, T, 1)
    return (hidden_state * m).sum(1) / np.maximum(m.sum(1), 1e-9)


def max_pooling(hidden_state, attention_mask):
    """(B, T, C), (B, T) -> (B, C): each feature's largest value over the real tokens."""
    return np.where(attention_mask[:, :, None] == 1, hidden_state, -np.inf).max(1)


def mean_sqrt_len_pooling(hidden_state, attention_mask):
    """(B, T, C), (B, T) -> (B, C): the sum of the real tokens' vectors over sqrt(their number)."""
    m = attention_mask[:, :, None].astype(hidden_state.dtype)           # (B, T, 1)
    return (hidden_state * m).sum(1) / np.sqrt(np.maximum(m.sum(1), 1e-9))


def l2_normalize(x, eps=1e-12):
    """x / ||x|| along the last axis (so a dot product is a cosine similarity)."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


POOLING = {"cls": cls_pooling, "mean": mean_pooling, "max": max_pooling,
           "mean_sqrt_len_tokens": mean_sqrt_len_pooling}


def _check_model(model, tokenizer):
    if not isinstance(model, BertModel):
        raise TypeError(f"feature extraction needs a BertModel, got {type(model).__name__}; load the "
                        f"checkpoint with BertModel.from_pretrained(path)")
    tokenizer = tokenizer if tokenizer is not None else model.tokenizer
    if tokenizer is None:
        raise ValueError("the model has no tokenizer: pass tokenizer=BertTokenizer.from_pretrained(...)")
    return tokenizer


def _batches(model, tokenizer, texts, text_pairs, batch_size, max_length, progress, desc, layer=-1):
    """Yield (indices, encoding, output) batch by batch; the output has every hidden state unless
    `layer` is the last one, which last_hidden_state holds (see `_hidden_state`)."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings; wrap a single text in a list")
    if text_pairs is not None and len(text_pairs) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(text_pairs)} text pairs")
    if max_length is None:
        max_length = min(tokenizer.model_max_length, model.config.max_position_embeddings)
    order = np.argsort([-len(t) for t in texts], kind="stable")           # long texts first
    starts = range(0, len(texts), batch_size)
    show = progress if progress is not None else len(starts) > 8
    model.eval()
    for start in tqdm(starts, desc=desc, unit="batch", disable=not show):
        idx = order[start:start + batch_size]
        pairs = None if text_pairs is None else [text_pairs[i] for i in idx]
        enc = tokenizer([texts[i] for i in idx], pairs, padding=True, truncation=True,
                        max_length=max_length)
        last = layer in (-1, model.config.num_hidden_layers)
        out = model(enc.input_ids, enc.attention_mask, enc.token_type_ids, output_hidden_states=not last)
        yield idx, enc, out


def _hidden_state(out, layer):
    """Hidden state `layer` of an output from `_batches`: (B, T, C)."""
    return out.last_hidden_state if out.hidden_states is None else out.hidden_states[layer]


def sentence_embeddings(model, texts, tokenizer=None, pooling="mean", normalize=False, layer=-1,
                        text_pairs=None, batch_size=32, max_length=None, progress=None):
    """One vector per text (or text pair): (N, C), or (N, k C) for a tuple of k pooling modes.
    `pooling` is a mode of the module docstring or a tuple of them; `layer` picks the hidden state
    to pool (-1 the last); `normalize` scales each vector to unit length."""
    tokenizer = _check_model(model, tokenizer)
    modes = (pooling,) if isinstance(pooling, str) else tuple(pooling)
    unknown = [m for m in modes if m not in POOLING]
    if unknown or not modes:
        raise ValueError(f"pooling must be one of {sorted(POOLING)} or a tuple of them, got {pooling!r}")
    result = np.zeros((len(texts), len(modes) * model.config.hidden_size), dtype=model.dtype)
    for idx, enc, out in _batches(model, tokenizer, texts, text_pairs, batch_size, max_length,
                                  progress, "embedding", layer):
        h = _hidden_state(out, layer)                                          # (B, T, C)
        result[idx] = np.concatenate([POOLING[m](h, enc.attention_mask) for m in modes], axis=-1)
    return l2_normalize(result) if normalize else result


def token_embeddings(model, texts, tokenizer=None, layer=-1, text_pairs=None, batch_size=32,
                     max_length=None, progress=None, return_tokens=False):
    """For each text, its real tokens' vectors (see the module docstring for `layer`).
    With `return_tokens`, also each text's WordPiece tokens."""
    tokenizer = _check_model(model, tokenizer)
    n_states = model.config.num_hidden_layers + 1
    if not (layer in ("last4", "all") or (isinstance(layer, int) and -n_states <= layer < n_states)):
        raise ValueError(f"layer must be an index into the {n_states} hidden states, 'last4' or 'all'; "
                         f"got {layer!r}")
    if layer == "last4" and n_states < 5:
        raise ValueError(f"'last4' needs at least 4 layers; the model has {n_states - 1}")
    vectors, tokens = [None] * len(texts), [None] * len(texts)
    for idx, enc, out in _batches(model, tokenizer, texts, text_pairs, batch_size, max_length,
                                  progress, "embedding", layer):
        if layer == "all":
            stacked = np.stack(out.hidden_states)                          # (L + 1, B, T, C)
        elif layer == "last4":
            stacked = np.concatenate(out.hidden_states[-4:], axis=-1)[None]   # (1, B, T, 4C)
        else:
            stacked = _hidden_state(out, layer)[None]                      # (1, B, T, C)
        for row, i in enumerate(idx):
            n = int(enc.attention_mask[row].sum())
            v = stacked[:, row, :n]
            vectors[i] = v if layer == "all" else v[0]
            tokens[i] = tokenizer.convert_ids_to_tokens(enc.input_ids[row, :n])
    return (vectors, tokens) if return_tokens else vectors
