"""What the models return: dataclasses that read as transformers' `ModelOutput`s.

    out.logits            by attribute
    out["logits"]         by name (a field that is None is absent, as in transformers)
    out[0]                by position among the fields that are set: the loss first when there is one
    out.to_tuple()        the set fields in order
    "loss" in out, out.keys()

Shapes: B batch, T sequence, C hidden, V vocabulary, K labels, L layers, H heads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


class ModelOutput:
    """Mapping-like access to a dataclass's fields that are not None."""

    def keys(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]

    def values(self) -> list:
        return [getattr(self, k) for k in self.keys()]

    def items(self) -> list[tuple]:
        return [(k, getattr(self, k)) for k in self.keys()]

    def to_tuple(self) -> tuple:
        return tuple(self.values())

    def __getitem__(self, key):
        if isinstance(key, str):
            if key not in self.keys():
                raise KeyError(f"{type(self).__name__} has no {key!r} (fields set: {', '.join(self.keys())})")
            return getattr(self, key)
        return self.to_tuple()[key]

    def __contains__(self, key) -> bool:
        return key in self.keys()

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())


@dataclass
class BertModelOutput(ModelOutput):
    last_hidden_state: np.ndarray                       # (B, T, C)
    pooler_output: np.ndarray | None = None             # (B, C)
    hidden_states: tuple | None = None                  # L + 1 arrays (B, T, C): embeddings, then each layer
    attentions: tuple | None = None                     # L arrays (B, H, T, T)


@dataclass
class BertForPreTrainingOutput(ModelOutput):
    loss: float | None = None                           # MLM + NSP (whichever labels were given)
    prediction_logits: np.ndarray | None = None         # (B, T, V); (N, V) with predict_masked_only
    seq_relationship_logits: np.ndarray | None = None   # (B, 2)
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    mlm_loss: float | None = None
    nsp_loss: float | None = None


@dataclass
class MaskedLMOutput(ModelOutput):
    loss: float | None = None                           # MLM cross-entropy over the labelled positions
    logits: np.ndarray | None = None                    # (B, T, V); (N, V) with predict_masked_only
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass
class TaskOutput(ModelOutput):
    loss: float | None = None
    logits: np.ndarray | None = None            # (B, K) or (B, T, K)
    start_logits: np.ndarray | None = None      # QA: (B, T)
    end_logits: np.ndarray | None = None        # QA: (B, T)
    hidden_states: tuple | None = None
    attentions: tuple | None = None
