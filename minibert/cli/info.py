"""`minibert info` (sizes and parameter counts) and `minibert attention` (a layer's heads as a PNG)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from .errors import CommandError


def add_info_parser(sub):
    from ..models.presets import PRESETS
    p = sub.add_parser("info", help="sizes and parameter counts of a named size or a checkpoint",
                       description="Print layers, heads, sizes, parameters per part and memory for a "
                                   f"named size ({', '.join(PRESETS)}) or a checkpoint directory.")
    p.add_argument("model", help="a size name or a directory with config.json")
    p.set_defaults(run=run_info)


def run_info(a) -> int:
    from ..config import BertConfig, DistilBertConfig
    from ..models.presets import PRESETS, preset_config
    from ..tools.info import describe
    if a.model in PRESETS:
        config = preset_config(a.model)
    elif Path(a.model, "config.json").is_file():
        path = Path(a.model, "config.json")
        kind = json.loads(path.read_text()).get("model_type", "bert")
        config_class = {"bert": BertConfig, "distilbert": DistilBertConfig}.get(kind)
        if config_class is None:
            raise CommandError(f"{path} describes a {kind!r} model; minibert knows bert and distilbert")
        config = config_class.from_json_file(path)
    else:
        raise CommandError(f"{a.model!r} is neither a size name ({', '.join(PRESETS)}) nor a directory "
                           f"with config.json")
    print(describe(config, a.model))
    return 0


def add_attention_parser(sub):
    p = sub.add_parser("attention", help="draw a sentence's attention maps, one per head, as a PNG",
                       description="Draw the attention probabilities of every head of one layer for a "
                                   "sentence (or a pair), tokens on both axes.")
    p.add_argument("--model", required=True, help="checkpoint directory with a tokenizer")
    p.add_argument("text", help="the sentence")
    p.add_argument("--pair", default=None, help="an optional second sentence (segment B)")
    p.add_argument("--layer", type=int, default=-1, help="which layer, 0-based; -1 the last (default)")
    p.add_argument("--pad-to", type=int, default=None, help="pad to this many tokens to show the mask")
    p.add_argument("--output", default="attention.png", help="the PNG to write (default: attention.png)")
    p.set_defaults(run=run_attention)


def run_attention(a) -> int:
    from ..checkpoints import checkpoint_with_tokenizer
    from ..models.bert import BertModel
    from ..tools.viz import plot_attention
    if importlib.util.find_spec("matplotlib") is None:       # viz imports it only when drawing
        raise CommandError("drawing needs matplotlib: pip install matplotlib")
    model = BertModel.from_pretrained(checkpoint_with_tokenizer(a.model))
    try:
        plot_attention(model, a.text, a.output, layer=a.layer, text_pair=a.pair, pad_to=a.pad_to)
    except ImportError as e:
        raise CommandError(f"drawing needs matplotlib ({e}): pip install matplotlib") from None
    print(f"wrote {a.output}")
    return 0
