"""How big a model is, from its config alone: parameter counts per part, and whether it fits in
memory before anything is allocated.

    embeddings   V C + P C + S C + 2 C               (word, position, segment tables; LayerNorm)
    one layer    4 (C^2 + C) + 2 C + 2 (C I) + I + C + 2 C
                 (Q, K, V, output projections; LayerNorm; FFN in and out; LayerNorm)
    pooler       C^2 + C
    MLM head     C^2 + C + 2 C + V                    (transform, LayerNorm, decoder bias; the decoder
                                                       matrix is the word-embedding table, counted once)
    NSP head     2 C + 2
"""

from __future__ import annotations

import os

import numpy as np

from ..config import DistilBertConfig


def parameter_counts(config, heads: bool = True) -> dict[str, int]:
    """Parts of BertForPreTraining, or of DistilBertForMaskedLM for a DistilBertConfig (no segment
    embeddings, no pooler, no NSP head)."""
    distil = isinstance(config, DistilBertConfig)
    if distil:
        config = config.as_bert_config()
    C, I, V = config.hidden_size, config.intermediate_size, config.vocab_size
    layer = 4 * (C * C + C) + 2 * C + (C * I + I) + (I * C + C) + 2 * C
    segments = 0 if distil else config.type_vocab_size * C
    counts = {
        "embeddings": V * C + config.max_position_embeddings * C + segments + 2 * C,
        f"encoder ({config.num_hidden_layers} layers x {layer:,})": config.num_hidden_layers * layer,
    }
    if not distil:
        counts["pooler"] = C * C + C
    if heads:
        counts["MLM head (decoder tied)"] = C * C + C + 2 * C + V
        if not distil:
            counts["NSP head"] = 2 * C + 2
    return counts


def available_memory_bytes() -> int | None:
    """Memory the system can give this process now (Linux: MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits_in_memory(config, dtype, copies=1, what="its weights"):
    """Refuse, before allocating, a model whose `copies` x parameters do not fit in the memory
    available (training with Adam holds 4: weights, gradients, two moments)."""
    n = sum(parameter_counts(config).values())
    need = n * np.dtype(dtype).itemsize * copies
    available = available_memory_bytes()
    if available is not None and need > available:
        gib = 1024 ** 3
        raise MemoryError(f"this config has {n:,} parameters: {what} need about {need / gib:,.1f} GiB in "
                          f"{np.dtype(dtype).name}, and {available / gib:,.1f} GiB are available")
