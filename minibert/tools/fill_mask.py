"""Fill in the blanks: the MLM head's most likely tokens at each [MASK] of a text.

    for candidates in fill_mask(model, "In the beginning God created the heaven and the [MASK]."):
        print(candidates)           # [(token, probability), ...], best first
"""

import numpy as np


def fill_mask(model, text: str, top_k: int = 5):
    """For each [MASK] in `text`, the top-k (token, probability) pairs."""
    tok = model.tokenizer
    enc = tok(text)
    positions = np.flatnonzero(enc.input_ids[0] == tok.mask_token_id)
    if len(positions) == 0:
        raise ValueError(f"the text has no [MASK] token: {text!r}")
    if enc.input_ids.shape[1] > model.config.max_position_embeddings:
        raise ValueError(f"the text is {enc.input_ids.shape[1]} tokens long; the model takes at most "
                         f"{model.config.max_position_embeddings}")
    logits = model.eval()(enc.input_ids, enc.attention_mask, enc.token_type_ids).prediction_logits[0]
    results = []
    for pos in positions:
        z = logits[pos].astype(np.float64)
        p = np.exp(z - z.max())
        p /= p.sum()
        best = np.argsort(-p)[:top_k]
        results.append([(tok.convert_ids_to_tokens(int(i)), float(p[i])) for i in best])
    return results
