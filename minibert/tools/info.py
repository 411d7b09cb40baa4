"""How big is a BERT?  `minibert info`'s summary: parameter counts per part (the equations are in
minibert/models/sizes.py) and memory, from the config alone.

Memory: float32 weights take 4 bytes each; training with Adam holds the weights, their gradients
and two moment estimates, 16 bytes a parameter, before activations (which grow with batch and
sequence length).
"""

from __future__ import annotations

from ..config import DistilBertConfig
from ..models.sizes import parameter_counts


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
