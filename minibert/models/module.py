"""`Module`: what every minibert model shares.

A model is a config, one flat dict of parameters keyed by HF state-dict names, a training flag
and an explicit dropout generator.  Forward caches what backward needs; `backward()` returns
the gradient of the last loss for every parameter, under the same names.

    model = BertForPreTraining(config, seed=0)              # float32
    model = BertForPreTraining(config, seed=0, dtype=np.float64)
    model.train(); model.eval()
    sd = model.state_dict(); model.load_state_dict(sd)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import ops
from ..checkpoints import load_pretrained, save_pretrained
from ..config import BertConfig
from .sizes import check_fits_in_memory


@dataclass
class LoadReport:
    """What `load_state_dict` found, by name (as transformers reports it)."""
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    mismatched_keys: list[tuple[str, tuple, tuple]] = field(default_factory=list)   # name, file, model

    def __bool__(self):
        return bool(self.missing_keys or self.unexpected_keys or self.mismatched_keys)

    def describe(self) -> str:
        lines = []
        if self.missing_keys:
            lines.append("missing keys: " + ", ".join(self.missing_keys))
        if self.unexpected_keys:
            lines.append("unexpected keys: " + ", ".join(self.unexpected_keys))
        for name, got, want in self.mismatched_keys:
            lines.append(f"shape mismatch for {name}: got {got}, model has {want}")
        return "\n".join(lines)


class Module:
    config_class = BertConfig
    model_type = "bert"              # config.json's model_type this class loads
    base_model_prefix = "bert"       # the encoder's name inside models with heads
    # Names that a saved state dict may carry as copies of another parameter (tied weights):
    # alias -> canonical name.  They are accepted on load and never stored twice.
    tied_weights: dict[str, str] = {}
    unpad_by_default = True          # the model's `unpad_inputs` when made

    def __init__(self, config: BertConfig, seed: int = 0, dtype=np.float32):
        if not isinstance(config, self.config_class):
            raise TypeError(f"config must be a minibert.{self.config_class.__name__}, "
                            f"got {type(config).__name__}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        check_fits_in_memory(config, dtype)              # before allocating anything
        self.config = config
        self.dtype = dtype
        self.training = True
        # A right-padded batch runs on its real tokens only (models/packing.py): the same numbers
        # at every real token, zeros at the padded positions of the hidden states.  False runs
        # the padded path, which computes the padded positions as transformers does.
        self.unpad_inputs = self.unpad_by_default
        init_seed, dropout_seed = np.random.SeedSequence(seed).spawn(2)
        self.init_rng = np.random.default_rng(init_seed)         # used once, for initial weights
        self.rng = np.random.default_rng(dropout_seed)           # dropout masks
        self.params: dict[str, np.ndarray] = {}
        self.tokenizer = None            # set by from_pretrained when the checkpoint has one
        self._cache = None

    # ---- mode ----------------------------------------------------------------------------

    def train(self, mode: bool = True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def _unpad(self, output_attentions):
        """Run this forward packed?  Not when the attention maps are asked for: they are (B, H, T, T)
        as transformers gives them, from the padded path."""
        return self.unpad_inputs and not output_attentions

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def backward(self, *args, **kwargs):
        raise NotImplementedError

    # ---- parameters ----------------------------------------------------------------------

    def num_parameters(self) -> int:
        return sum(p.size for p in self.params.values())

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter, keyed by HF name, in HF's layouts."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state_dict, strict: bool = True) -> LoadReport:
        """Copy arrays in by name (cast to the model's dtype).

        Tied copies (e.g. `cls.predictions.decoder.weight`) are accepted as aliases.  With
        `strict`, any missing, unexpected or mis-shaped key raises a KeyError naming them all and
        nothing is changed; otherwise the matching keys are loaded and the report returned.
        """
        report = LoadReport()
        resolved = {}
        for name, value in state_dict.items():
            target = self.tied_weights.get(name, name)
            if target not in self.params:
                report.unexpected_keys.append(name)
                continue
            value = np.asarray(value)
            if not np.issubdtype(value.dtype, np.floating):
                raise TypeError(f"{type(self).__name__}.load_state_dict: {name} holds {value.dtype} numbers; "
                                f"a weight is floating point (cast it yourself if you mean it)")
            if value.shape != self.params[target].shape:
                report.mismatched_keys.append((name, value.shape, self.params[target].shape))
                continue
            if target == name or target not in resolved:    # the canonical name wins over an alias
                resolved[target] = value
        report.missing_keys = [k for k in self.params if k not in resolved]
        if strict and report:
            raise KeyError(f"{type(self).__name__}.load_state_dict:\n{report.describe()}")
        for name, value in resolved.items():
            np.copyto(self.params[name], value, casting="unsafe")
        return report

    # ---- checkpoints ---------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path, dtype=np.float32, output_loading_info=False, cache_dir=None, seed=0,
                        **config_overrides):
        """Load a HuggingFace checkpoint directory (config.json + model.safetensors), or a hub
        model id already in the local huggingface_hub cache.  Keyword arguments override
        config.json's fields, as in transformers (`num_labels=3`, `hidden_dropout_prob=0.2`).
        Parameters the file lacks (a head on an encoder-only checkpoint) are initialised fresh
        (from `seed`) and reported.  The model comes back in eval mode, with `model.tokenizer`
        set when the directory has tokenizer files."""
        model, info = load_pretrained(cls, path, dtype=dtype, seed=seed, cache_dir=cache_dir, **config_overrides)
        return (model, info) if output_loading_info else model

    def save_pretrained(self, path):
        """Write config.json + model.safetensors (+ tokenizer files) that transformers loads."""
        return save_pretrained(self, path)

    # ---- what forward keeps for backward ---------------------------------------------------

    def _keep(self, cache):
        """Keep what backward needs, with the tier of layers (minibert.ops) that computed it."""
        self._cache = (ops.tier(), cache)

    def _kept(self, needs="a forward call"):
        """The last forward's cache, or a clear error when there is none or it is of the other tier."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward() needs {needs} first")
        tier, cache = self._cache
        if tier != ops.tier():
            raise RuntimeError(f"the last forward ran on the {tier} layers, and minibert.ops now runs the "
                               f"{ops.tier()} ones, whose caches differ: run the forward again")
        return cache

    def _zero_fill(self, grads):
        """Every parameter gets a gradient entry, zero where the loss did not reach it."""
        return {k: grads[k] if k in grads else np.zeros_like(v) for k, v in self.params.items()}


class LabelledHead:
    """What a classifier head's model reads from its config: the labels, as transformers keeps them."""

    @property
    def num_labels(self) -> int:
        return self.config.num_labels

    @property
    def id2label(self) -> dict[int, str]:
        return self.config.id2label
