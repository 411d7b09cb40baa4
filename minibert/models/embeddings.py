"""BERT's input representation (Devlin et al. 2019, section 3, figure 2; HF `BertEmbeddings`).

    E = LayerNorm(word[input_ids] + position[0..T-1] + token_type[token_type_ids]);  dropout(E)

Parameters (local names): `word_embeddings.weight` (V, C), `position_embeddings.weight` (P, C),
`token_type_embeddings.weight` (S, C; absent in DistilBERT), `LayerNorm.weight`, `LayerNorm.bias`.
"""

import numpy as np

from .. import ops


def embeddings_forward(input_ids, token_type_ids, params, config, rng, training, position_ids=None):
    """input_ids, token_type_ids: (B, T) integers  ->  (B, T, C).  Packed (models/packing.py):
    input_ids, token_type_ids and position_ids (N,)  ->  (N, C)."""
    if position_ids is None:                              # padded: positions 0 .. T-1 in every row
        position_ids = np.arange(input_ids.shape[1])[None, :]                               # (1, T)
    words, word_cache = ops.embedding_forward(input_ids, params["word_embeddings.weight"],
                                              padding_idx=config.pad_token_id)          # (B, T, C)
    positions, position_cache = ops.embedding_forward(position_ids,
                                                      params["position_embeddings.weight"])   # (1, T, C)
    type_cache = None
    if "token_type_embeddings.weight" in params:           # DistilBERT has no segment embeddings
        types, type_cache = ops.embedding_forward(token_type_ids, params["token_type_embeddings.weight"])
        words = words + types                              # (B, T, C), in HF's order of the sums
    x = words + positions
    x, ln_cache = ops.layer_norm_forward(x, params["LayerNorm.weight"], params["LayerNorm.bias"],
                                         config.layer_norm_eps)
    x, dropout_cache = ops.dropout_forward(x, config.hidden_dropout_prob, rng, training)
    return x, (word_cache, position_cache, type_cache, ln_cache, dropout_cache)


def embeddings_backward(dy, cache):
    """dy: (B, T, C) or packed (N, C)  ->  (None: ids have no gradient, the gradients of the tables and the LayerNorm)."""
    word_cache, position_cache, type_cache, ln_cache, dropout_cache = cache
    dx, _ = ops.dropout_backward(dy, dropout_cache)
    dx, ln_grads = ops.layer_norm_backward(dx, ln_cache)
    _, word_grads = ops.embedding_backward(dx, word_cache)
    # Padded (B, T, C), the position ids are the same for every sequence: sum over the batch
    # before the scatter.  Packed (N, C), each row has its own position id.
    dpositions = dx.sum(0, keepdims=True) if dx.ndim == 3 else dx
    _, position_grads = ops.embedding_backward(dpositions, position_cache)
    grads = {"word_embeddings.weight": word_grads["weight"],
             "position_embeddings.weight": position_grads["weight"],
             "LayerNorm.weight": ln_grads["weight"], "LayerNorm.bias": ln_grads["bias"]}
    if type_cache is not None:
        _, type_grads = ops.embedding_backward(dx, type_cache)
        grads["token_type_embeddings.weight"] = type_grads["weight"]
    return None, grads
