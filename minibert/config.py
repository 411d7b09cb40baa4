"""BertConfig and DistilBertConfig: the hyper-parameters, with HuggingFace's field names.

A real `config.json` from the hub reads straight in (`BertConfig.from_json_file`), and
what we write back is a `config.json` that `transformers` accepts. Fields we do not use
(`architectures`, `torch_dtype`, `transformers_version`, ...) are kept in `extra` and
written back unchanged, never fatal.

Defaults are BERT-base (Devlin et al. 2019, section 3): L=12, H=768, A=12.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

ACTIVATIONS = ("gelu", "relu", "gelu_new", "gelu_pytorch_tanh")


class JsonConfig:
    """config.json in and out, for a dataclass of known fields plus `extra` for the rest."""

    # ---- dict / json -------------------------------------------------------------------

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "JsonConfig":
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in d.items() if k in known}
        extra = {k: v for k, v in d.items() if k not in known}
        return cls(**kwargs, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        out = dict(self.extra)
        out.update(d)
        return out

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> "JsonConfig":
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"config file not found: {path}") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason})") from None
        if not isinstance(d, dict):
            raise ValueError(f"{path} must hold a JSON object, got {type(d).__name__}")
        try:
            return cls.from_dict(d)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: {e}") from None

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json_string())


@dataclass
class BertConfig(JsonConfig):
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int = 0
    model_type: str = "bert"
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.validate()

    @property
    def head_size(self) -> int:
        """D = C // H, the width of one attention head."""
        return self.hidden_size // self.num_attention_heads

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent field."""
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"BertConfig.{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"BertConfig.hidden_size ({self.hidden_size}) must be divisible by "
                f"num_attention_heads ({self.num_attention_heads})")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"BertConfig.hidden_act {self.hidden_act!r} is not one of {ACTIVATIONS}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            p = getattr(self, name)
            if not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
                raise ValueError(f"BertConfig.{name} must be in [0, 1), got {p!r}")
        if not isinstance(self.layer_norm_eps, (int, float)) or self.layer_norm_eps <= 0:
            raise ValueError(f"BertConfig.layer_norm_eps must be positive, got {self.layer_norm_eps!r}")
        if not isinstance(self.initializer_range, (int, float)) or self.initializer_range < 0:
            raise ValueError(
                f"BertConfig.initializer_range must be non-negative, got {self.initializer_range!r}")
        if self.pad_token_id is not None and (isinstance(self.pad_token_id, bool)
                                              or not isinstance(self.pad_token_id, int)):
            raise ValueError(f"BertConfig.pad_token_id must be an integer, got {self.pad_token_id!r}")
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(
                f"BertConfig.pad_token_id ({self.pad_token_id}) is outside the vocabulary "
                f"[0, {self.vocab_size})")


@dataclass
class DistilBertConfig(JsonConfig):
    """DistilBERT (Sanh et al. 2019): BERT's layer with other names, no segments, no pooler."""
    vocab_size: int = 30522
    max_position_embeddings: int = 512
    sinusoidal_pos_embds: bool = False
    n_layers: int = 6
    n_heads: int = 12
    dim: int = 768
    hidden_dim: int = 3072
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation: str = "gelu"
    initializer_range: float = 0.02
    qa_dropout: float = 0.1
    seq_classif_dropout: float = 0.2
    pad_token_id: int = 0
    model_type: str = "distilbert"
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        self.as_bert_config()       # the shared layers' checks, under DistilBERT's names
        if not isinstance(self.seq_classif_dropout, (int, float)) or not 0 <= self.seq_classif_dropout < 1:
            raise ValueError(f"DistilBertConfig.seq_classif_dropout must be in [0, 1), got {self.seq_classif_dropout!r}")

    def as_bert_config(self) -> BertConfig:
        """The same model in BertConfig's terms, for the layers both share (LayerNorm eps 1e-12)."""
        names = {"hidden_size": "dim", "num_hidden_layers": "n_layers", "num_attention_heads": "n_heads",
                 "intermediate_size": "hidden_dim", "hidden_act": "activation",
                 "hidden_dropout_prob": "dropout", "attention_probs_dropout_prob": "attention_dropout"}
        try:
            return BertConfig(vocab_size=self.vocab_size, max_position_embeddings=self.max_position_embeddings,
                              type_vocab_size=1, layer_norm_eps=1e-12, initializer_range=self.initializer_range,
                              pad_token_id=self.pad_token_id, **{b: getattr(self, d) for b, d in names.items()})
        except ValueError as e:
            message = str(e).replace("BertConfig.", "DistilBertConfig.")
            for bert_name, distil_name in names.items():
                message = message.replace(bert_name, distil_name)
            raise ValueError(message) from None
