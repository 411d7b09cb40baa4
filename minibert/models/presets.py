"""Named model sizes of the BERT family.

tiny, mini, small and medium are the compact models of Turc et al. 2019 ("Well-Read Students
Learn Better", the small-BERT grid); base and large are BERT's own (Devlin et al. 2019).
Every size uses heads of 64 dimensions and an FFN 4 times as wide as the hidden size.
"""

from ..config import BertConfig

#            layers L, hidden C, heads H
PRESETS = {
    "tiny": (2, 128, 2),
    "mini": (4, 256, 4),
    "small": (4, 512, 8),
    "medium": (8, 512, 8),
    "base": (12, 768, 12),
    "large": (24, 1024, 16),
}


def preset_config(name: str, **overrides) -> BertConfig:
    """A BertConfig for the named size; any field can be overridden (e.g. vocab_size)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model size {name!r}: choose one of {', '.join(PRESETS)}")
    layers, hidden, heads = PRESETS[name]
    fields = dict(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads,
                  intermediate_size=4 * hidden)
    fields.update(overrides)
    return BertConfig(**fields)
