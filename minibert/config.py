"""BertConfig and DistilBertConfig: the hyper-parameters, with HuggingFace's field names.

A real `config.json` from the hub reads straight in (`BertConfig.from_json_file`), and
what we write back is a `config.json` that `transformers` accepts. Fields we do not use
(`architectures`, `torch_dtype`, `transformers_version`, ...) are kept in `extra` and
written back unchanged, never fatal.

Defaults are BERT-base (Devlin et al. 2019, section 3): L=12, H=768, A=12.

Labels of a task head follow transformers' `PretrainedConfig`: `id2label` names them (written to
config.json), `num_labels` is `len(id2label)`, and `BertConfig(num_labels=3)` or
`config.num_labels = 3` makes the names LABEL_0 ... LABEL_2.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import InitVar, dataclass, field
from typing import Any

ACTIVATIONS = ("gelu", "relu", "gelu_new", "gelu_pytorch_tanh")


class JsonConfig:
    """config.json in and out, for a dataclass of known fields plus `extra` for the rest."""

    # ---- dict / json -------------------------------------------------------------------

    @classmethod
    def field_names(cls) -> set[str]:
        """The names config.json and from_pretrained(**overrides) may set (num_labels among them)."""
        return {f.name for f in dataclasses.fields(cls)} - {"extra"} | {"num_labels"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "JsonConfig":
        known = cls.field_names()
        kwargs = {k: v for k, v in d.items() if k in known}
        extra = {k: v for k, v in d.items() if k not in known}
        return cls(**kwargs, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        d["id2label"] = {str(i): name for i, name in self.id2label.items()}     # JSON keys are strings
        d["label2id"] = {name: int(i) for i, name in self.id2label.items()}
        out = dict(self.extra)
        out.update(d)
        return out

    def update(self, **fields) -> "JsonConfig":
        """Set fields by name (as `from_pretrained(path, **overrides)` does), then validate.
        An unknown name raises TypeError naming it."""
        unknown = sorted(set(fields) - self.field_names())
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {', '.join(map(repr, unknown))}")
        for name in ("id2label", "label2id"):                   # names first, then their count
            if name in fields:
                setattr(self, name, fields.pop(name))
        for name, value in fields.items():
            setattr(self, name, value)
        self.validate()
        return self

    # ---- labels of a task head (transformers' PretrainedConfig) ----------------------------

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, n: int):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"num_labels must be a positive integer, got {n!r}")
        if self.id2label is None or len(self.id2label) != n:
            self.id2label = {i: f"LABEL_{i}" for i in range(n)}
            self.label2id = {name: i for i, name in self.id2label.items()}

    def _set_labels(self, num_labels):
        """id2label with integer keys, num_labels names (LABEL_i by default), label2id its inverse
        (re-derived on every validate, so a changed id2label never leaves a stale label2id)."""
        if self.id2label is not None:
            if not isinstance(self.id2label, dict) or not self.id2label:
                raise ValueError(f"id2label must be a non-empty mapping of label ids to names, got {self.id2label!r}")
            try:
                self.id2label = {int(k): str(v) for k, v in self.id2label.items()}
            except (TypeError, ValueError):
                raise ValueError(f"id2label's keys must be label ids 0, 1, ..., got {list(self.id2label)}") from None
            if sorted(self.id2label) != list(range(len(self.id2label))):
                raise ValueError(f"id2label's keys must be 0 ... {len(self.id2label) - 1}, got {sorted(self.id2label)}")
            if num_labels is not None and num_labels != len(self.id2label):
                raise ValueError(f"num_labels={num_labels} but id2label names {len(self.id2label)} labels")
        else:
            self.num_labels = 2 if num_labels is None else num_labels
        self.label2id = {name: i for i, name in self.id2label.items()}      # always the inverse

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
    classifier_dropout: float | None = None    # a task head's dropout; None: hidden_dropout_prob
    id2label: dict[int, str] | None = None     # a task head's labels (see the module docstring)
    label2id: dict[str, int] | None = None
    model_type: str = "bert"
    num_labels: InitVar[int | None] = None     # shorthand for id2label = LABEL_0 ... LABEL_{n-1}
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self, num_labels):
        self._set_labels(num_labels)
        self.validate()

    @property
    def head_size(self) -> int:
        """D = C // H, the width of one attention head."""
        return self.hidden_size // self.num_attention_heads

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent field."""
        self._set_labels(None)
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
        p = self.classifier_dropout
        if p is not None and (not isinstance(p, (int, float)) or not 0.0 <= p < 1.0):
            raise ValueError(f"BertConfig.classifier_dropout must be in [0, 1) or None, got {p!r}")


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
    id2label: dict[int, str] | None = None
    label2id: dict[str, int] | None = None
    model_type: str = "distilbert"
    num_labels: InitVar[int | None] = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self, num_labels):
        self._set_labels(num_labels)
        self.validate()

    def validate(self) -> None:
        self._set_labels(None)
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


# The InitVar's default (a class attribute) would hide JsonConfig's num_labels property.
del BertConfig.num_labels, DistilBertConfig.num_labels
