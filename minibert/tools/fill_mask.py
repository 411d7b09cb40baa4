"""Fill in the blanks: a masked LM's most likely tokens at each [MASK], as transformers'
fill-mask pipeline returns them.

    fill_mask(model, "In the beginning God created the heaven and the [MASK].")
    # -> [{"score": 0.14, "token": 412, "token_str": "earth",
    #      "sequence": "in the beginning god created the heaven and the earth."}, ...]

One text with one [MASK]: a list of the top-k candidates (dicts, best first).  One text with several
[MASK]s: a list of such lists, one per [MASK] (each `sequence` fills only its own blank and keeps
the special tokens, as the pipeline does).  A list of texts: a list of the above, one per text.

    score = softmax(logits at the [MASK])[token]

With `targets` (words), only those are scored, as the pipeline's `targets=`: the softmax is still
over the whole vocabulary, and a word that is not one vocabulary entry is scored by its first
WordPiece, with a warning.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..layers.softmax import softmax_forward
from ..models.bert import BertForMaskedLM, BertForPreTraining
from ..models.distilbert import DistilBertForMaskedLM

logger = logging.getLogger("minibert")


def load_masked_lm(path, dtype=np.float32):
    """The checkpoint in `path` as the masked LM it was saved as: BertForPreTraining when its
    config.json says so (our pretraining runs), DistilBertForMaskedLM for DistilBERT, else
    BertForMaskedLM.  Returns (model, loading info); a checkpoint without an MLM head loads with a
    fresh one, named in `info["missing_keys"]`."""
    try:
        config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}                               # from_pretrained names what is wrong with the directory
    config = config if isinstance(config, dict) else {}
    if config.get("model_type") == "distilbert":
        cls = DistilBertForMaskedLM
    elif "BertForPreTraining" in (config.get("architectures") or []):
        cls = BertForPreTraining
    else:
        cls = BertForMaskedLM
    return cls.from_pretrained(path, dtype=dtype, output_loading_info=True)


def mlm_logits(model, enc) -> np.ndarray:
    """(B, T, V) logits of any minibert model with a masked-LM head, dropout off."""
    model.eval()
    if isinstance(model, BertForPreTraining):
        return model(enc.input_ids, enc.attention_mask, enc.token_type_ids).prediction_logits
    if isinstance(model, BertForMaskedLM):
        return model(enc.input_ids, enc.attention_mask, enc.token_type_ids).logits
    if isinstance(model, DistilBertForMaskedLM):
        return model(enc.input_ids, enc.attention_mask).logits
    raise TypeError(f"fill-mask needs a model with a masked-LM head (BertForMaskedLM, BertForPreTraining, "
                    f"DistilBertForMaskedLM), got {type(model).__name__}")


def target_ids(tok, targets) -> np.ndarray:
    """The vocabulary ids of candidate words: each word's own entry, else (with a warning) its first
    WordPiece; a word with no piece at all is left out, with a warning.  Sorted, without repeats."""
    targets = [targets] if isinstance(targets, str) else list(targets)
    vocab = tok.get_vocab()
    ids = []
    for target in targets:
        id_ = vocab.get(target)
        if id_ is None:
            pieces = tok.encode_batch_ids([target])[0]
            if not pieces:
                logger.warning(f"warning: the target {target!r} is not in the model's vocabulary and has no "
                               f"WordPiece: left out")
                continue
            id_ = pieces[0]
            logger.warning(f"warning: the target {target!r} is not in the model's vocabulary: scored by its first "
                           f"WordPiece, {tok.convert_ids_to_tokens([id_])[0]!r}")
        ids.append(int(id_))
    if not ids:
        raise ValueError(f"none of the targets {targets} can be scored: give words of the model's vocabulary")
    return np.array(sorted(set(ids)))


def fill_mask(model, inputs, top_k: int = 5, tokenizer=None, targets=None):
    """The top-k candidates for every [MASK] of `inputs` (a text or a list of texts), among
    `targets` (words) when given: see the module docstring for the shape of the answer."""
    tok = tokenizer if tokenizer is not None else model.tokenizer
    if tok is None:
        raise ValueError("the model has no tokenizer: pass tokenizer=BertTokenizer.from_pretrained(...)")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    texts = [inputs] if isinstance(inputs, str) else list(inputs)
    enc = tok(texts, padding=True)
    for text, ids in zip(texts, enc.input_ids):
        if not (ids == tok.mask_token_id).any():
            raise ValueError(f"the text has no [MASK] token: {text!r}")
    limit = model.config.max_position_embeddings
    if enc.input_ids.shape[1] > limit:
        raise ValueError(f"a text is {enc.input_ids.shape[1]} tokens long; the model takes at most {limit}")
    allowed = None if targets is None else target_ids(tok, targets)
    logits = mlm_logits(model, enc)                                                   # (B, T, V)
    k = min(top_k, logits.shape[-1] if allowed is None else len(allowed))
    results = [_candidates(tok, ids[mask == 1], z[mask == 1], k, allowed)
               for ids, mask, z in zip(enc.input_ids, enc.attention_mask, logits)]
    return results[0] if isinstance(inputs, str) else results


def _candidates(tok, ids, logits, top_k, allowed=None):
    """One text's real tokens (T,) and logits (T, V) -> its candidates, as the pipeline gives them
    (only ids in `allowed`, when given)."""
    positions = np.flatnonzero(ids == tok.mask_token_id)
    single_mask = len(positions) == 1
    rows = []
    for pos in positions:
        p = softmax_forward(logits[pos].astype(np.float64))[0]                        # (V,)
        if allowed is None:
            best = np.argsort(-p, kind="stable")[:top_k]
        else:
            best = allowed[np.argsort(-p[allowed], kind="stable")[:top_k]]
        row = []
        for token in best:
            filled = ids.copy()
            filled[pos] = token
            row.append({"score": float(p[token]), "token": int(token), "token_str": tok.decode([token]),
                        "sequence": tok.decode(filled, skip_special_tokens=single_mask)})
        rows.append(row)
    return rows[0] if single_mask else rows
