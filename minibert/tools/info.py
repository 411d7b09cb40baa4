"""How big is a BERT?  Parameter counts per part and memory, from the config alone.

    embeddings   V C + P C + S C + 2 C               (word, position, segment tables; LayerNorm)
    one layer    4 (C^2 + C) + 2 C + 2 (C I) + I + C + 2 C
                 (Q, K, V, output projections; LayerNorm; FFN in and out; LayerNorm)
    pooler       C^2 + C
    MLM head     C^2 + C + 2 C + V                    (transform, LayerNorm, decoder bias; the decoder
                                                       matrix is the word-embedding table, counted once)
    NSP head     2 C + 2

Memory: float32 weights take 4 bytes each; training with Adam holds the weights, their gradients
and two moment estimates, 16 bytes a parameter, before activations (which grow with batch and
sequence length).
"""

from __future__ import annotations

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


def describe(config, name: str) -> str:
    model = "DistilBertForMaskedLM" if isinstance(config, DistilBertConfig) else "BertForPreTraining"
    counts = parameter_counts(config)
    if isinstance(config, DistilBertConfig):
        config = config.as_bert_config()
    total = sum(counts.values())
    gib = 1024 ** 3
    lines = [
        f"{name}: {config.num_hidden_layers} layers, {config.num_attention_heads} heads of "
        f"{config.head_size}, hidden {config.hidden_size}, FFN {config.intermediate_size}, "
        f"vocabulary {config.vocab_size}, {config.max_position_embeddings} positions, "
        f"activation {config.hidden_act}",
        f"parameters ({model}):",
    ]
    width = max(len(k) for k in counts)
    for part, n in counts.items():
        lines.append(f"  {part:<{width}}  {n:>13,}  {n / total:6.1%}")
    lines.append(f"  {'total':<{width}}  {total:>13,}")
    lines.append(f"memory: weights {total * 4 / gib:.3f} GiB in float32; training with Adam "
                 f"{total * 16 / gib:.3f} GiB (weights, gradients, two moments) plus activations")
    return "\n".join(lines)
