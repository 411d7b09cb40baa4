"""Sentence embeddings as sentence-transformers makes them, from the same model directory.

    encoder = SentenceEncoder.from_pretrained("path/to/all-MiniLM-L6-v2")
    vectors = encoder.encode(["I love Korea", "Seoul is big"])        # (2, 384)
    vector = encoder.encode("I love Korea")                            # (384,)

A sentence-transformers directory is a BERT checkpoint plus the recipe that turns its token vectors
into one vector per text; minibert reads that recipe instead of guessing it:
    modules.json                 the pipeline: Transformer, then Pooling, then (optionally) Normalize
    sentence_bert_config.json    max_seq_length (longer texts are cut there) and do_lower_case
    1_Pooling/config.json        the pooling modes (cls, mean, max, mean_sqrt_len_tokens), concatenated
    2_Normalize/                 present in modules.json: every vector is scaled to unit length
A plain BERT directory (no modules.json) gets sentence-transformers' defaults: mean pooling, no
normalisation, the model's own maximum length.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..checkpoints import CheckpointError
from ..models.bert import BertModel
from .features import POOLING, l2_normalize, sentence_embeddings

# sentence-transformers' older pooling config: one flag per mode, in its order of concatenation
LEGACY_POOLING_FLAGS = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                        "pooling_mode_mean_tokens": "mean", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                        "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}
TRANSFORMER, POOLING_MODULE, NORMALIZE = ("sentence_transformers.models.Transformer",
                                          "sentence_transformers.models.Pooling",
                                          "sentence_transformers.models.Normalize")


def _read_json(path: Path, what: str):
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} ({what}) cannot be read: {e}") from None
    return value


def pooling_modes(config: dict, path) -> tuple[str, ...]:
    """The pooling modes of a 1_Pooling/config.json, new ("pooling_mode") or old (flags) style."""
    if "pooling_mode" in config:
        mode = config["pooling_mode"]
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    else:
        modes = tuple(m for flag, m in LEGACY_POOLING_FLAGS.items() if config.get(flag)) or ("mean",)
    unsupported = [m for m in modes if m not in POOLING]
    if unsupported:
        raise CheckpointError(f"{path}: pooling {', '.join(unsupported)} is not one minibert computes "
                              f"({', '.join(POOLING)})")
    return modes


class SentenceEncoder:
    """A BertModel with sentence-transformers' pooling, length limit, lower-casing and normalisation."""

    def __init__(self, model: BertModel, pooling=("mean",), normalize=False, max_seq_length=None,
                 do_lower_case=False, tokenizer=None):
        self.model, self.tokenizer = model, tokenizer if tokenizer is not None else model.tokenizer
        if self.tokenizer is None:
            raise ValueError("the model has no tokenizer: pass tokenizer=BertTokenizer.from_pretrained(...)")
        self.pooling = (pooling,) if isinstance(pooling, str) else tuple(pooling)
        self.normalize = normalize
        limit = model.config.max_position_embeddings
        self.max_seq_length = min(max_seq_length or self.tokenizer.model_max_length, limit)
        self.do_lower_case = do_lower_case

    @classmethod
    def from_pretrained(cls, path, dtype=np.float32) -> "SentenceEncoder":
        """Read a sentence-transformers directory (or a plain BERT one; see the module docstring)."""
        path = Path(path)
        model = BertModel.from_pretrained(path, dtype=dtype)
        settings = dict(pooling=("mean",), normalize=False, max_seq_length=None, do_lower_case=False)
        if (path / "modules.json").is_file():
            modules = _read_json(path / "modules.json", "sentence-transformers' modules")
            if not isinstance(modules, list) or not all(isinstance(m, dict) and "type" in m for m in modules):
                raise CheckpointError(f"{path / 'modules.json'} is not a list of modules with a 'type'")
            for module in modules:
                kind, where = module["type"], path / module.get("path", "")
                if kind == TRANSFORMER:
                    if (path / "sentence_bert_config.json").is_file():
                        st = _read_json(path / "sentence_bert_config.json", "max_seq_length, do_lower_case")
                        settings["max_seq_length"] = st.get("max_seq_length")
                        settings["do_lower_case"] = bool(st.get("do_lower_case", False))
                elif kind == POOLING_MODULE:
                    config = _read_json(where / "config.json", "pooling")
                    settings["pooling"] = pooling_modes(config, where / "config.json")
                elif kind == NORMALIZE:
                    settings["normalize"] = True
                else:
                    raise CheckpointError(f"{path / 'modules.json'}: module {kind} is not one minibert runs "
                                          f"(it runs Transformer, Pooling and Normalize)")
        return cls(model, **settings)

    def encode(self, sentences, batch_size=32, normalize_embeddings=False, show_progress_bar=None):
        """(N, D) vectors for a list of texts, (D,) for one text, as sentence-transformers'
        `encode`: D is the hidden size times the number of pooling modes."""
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("sentences must be a string or a list of strings")
        if not texts:
            return np.zeros((0, len(self.pooling) * self.model.config.hidden_size), dtype=self.model.dtype)
        if self.do_lower_case:
            texts = [t.lower() for t in texts]
        vectors = sentence_embeddings(self.model, texts, self.tokenizer, pooling=self.pooling,
                                      batch_size=batch_size, max_length=self.max_seq_length,
                                      progress=show_progress_bar)
        if self.normalize or normalize_embeddings:
            vectors = l2_normalize(vectors)
        return vectors[0] if single else vectors
