"""BERT's input representation (Devlin et al. 2019, section 3, figure 2; HF `BertEmbeddings`).

    E = LayerNorm(word[input_ids] + position[0..T-1] + token_type[token_type_ids]);  dropout(E)

Parameters (local names): `word_embeddings.weight` (V, C), `position_embeddings.weight` (P, C),
`token_type_embeddings.weight` (S, C; absent in DistilBERT), `LayerNorm.weight`, `LayerNorm.bias`.
"""

import numpy as np

from .layers import (dropout_backward, dropout_forward, embedding_backward, embedding_forward,
                     layer_norm_backward, layer_norm_forward)


def embeddings_forward(input_ids, token_type_ids, p, config, rng, training):
    """input_ids, token_type_ids: (B, T) integers  ->  (B, T, C)."""
    T = input_ids.shape[1]
    position_ids = np.arange(T)[None, :]                                   # (1, T)
    words, w_cache = embedding_forward(input_ids, p["word_embeddings.weight"])
    positions, p_cache = embedding_forward(position_ids, p["position_embeddings.weight"])
    t_cache = None
    if "token_type_embeddings.weight" in p:                # DistilBERT has no segment embeddings
        types, t_cache = embedding_forward(token_type_ids, p["token_type_embeddings.weight"])
        words = words + types
    x = words + positions                                                  # (B, T, C)
    x, ln_cache = layer_norm_forward(x, p["LayerNorm.weight"], p["LayerNorm.bias"],
                                     config.layer_norm_eps)
    x, drop_mask = dropout_forward(x, config.hidden_dropout_prob, rng, training)
    return x, (w_cache, p_cache, t_cache, ln_cache, drop_mask, config.pad_token_id)


def embeddings_backward(dy, cache):
    """dy: (B, T, C)  ->  gradients of the three tables and the LayerNorm."""
    w_cache, p_cache, t_cache, ln_cache, drop_mask, pad_token_id = cache
    dx, ln_grads = layer_norm_backward(dropout_backward(dy, drop_mask), ln_cache)
    # Position ids are the same for every sequence: sum over the batch before the scatter.
    dpos = dx.sum(0, keepdims=True)                                        # (1, T, C)
    grads = {
        "word_embeddings.weight": embedding_backward(dx, w_cache, pad_token_id)["weight"],
        "position_embeddings.weight": embedding_backward(dpos, p_cache)["weight"],
        "LayerNorm.weight": ln_grads["weight"],
        "LayerNorm.bias": ln_grads["bias"],
    }
    if t_cache is not None:
        grads["token_type_embeddings.weight"] = embedding_backward(dx, t_cache)["weight"]
    return grads
