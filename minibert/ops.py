"""The one switch between the two tiers: the textbook layers or the fast kernels.

The models call every layer through this module (`ops.layer_norm_forward(...)`), and it hands
the call to `minibert.layers` (the textbook versions) or to `minibert.kernels` (the fast ones,
tested equal).  The fast kernels are the default.  To run the whole model -- forward, backward
and optimizer -- on the textbook layers, and step through them in a debugger:

    MINIBERT_REFERENCE=1 python my_script.py          # for a whole process, or

    from minibert import ops
    ops.use_reference(True)                            # from here on
    with ops.reference_layers():                       # for a block
        ...

The numbers agree to float precision either way (the transformers checks run in both).  Switch
between steps, not between a forward and its backward: the two tiers' caches differ, and a model
refuses a backward in the other tier.

The fast kernels are compiled with Numba.  Where numba cannot be imported, minibert runs on the
textbook layers and says so once (a warning), so nothing breaks: it is only slower.
"""

import os
import warnings
from contextlib import contextmanager

from . import layers

# Every name the models and the optimizer call; each exists in both tiers with one signature.
OPS = (
    "linear_forward", "linear_backward",
    "linear_activation_forward", "linear_activation_backward",
    "layer_norm_forward", "layer_norm_backward",
    "add_layer_norm_forward", "add_layer_norm_backward",
    "embedding_forward", "embedding_backward",
    "dropout_forward", "dropout_backward",
    "self_attention_forward", "self_attention_backward",
    "packed_self_attention_forward", "packed_self_attention_backward",
    "cross_entropy_forward", "cross_entropy_backward",
    "adam_update",
)

_state = {"reference": os.environ.get("MINIBERT_REFERENCE", "").strip() not in ("", "0"), "kernels": None}


def fast_kernels():
    """The `minibert.kernels` module, or None when numba cannot be imported (warned once)."""
    if _state["kernels"] is None:
        try:
            from . import kernels
            _state["kernels"] = kernels
        except ImportError as error:
            if (getattr(error, "name", None) or "").split(".")[0] not in ("numba", "llvmlite"):
                raise                      # a bug of minibert's own, not a missing library
            _state["kernels"] = False
            warnings.warn(f"minibert runs on its textbook layers, without the compiled fast kernels: "
                          f"{error} (pip install numba)", RuntimeWarning, stacklevel=3)
    return _state["kernels"] or None


def use_reference(flag: bool = True) -> None:
    """Run every layer on the textbook versions (True) or the fast kernels (False)."""
    _state["reference"] = bool(flag)


def is_reference() -> bool:
    return _state["reference"] or fast_kernels() is None


def tier() -> str:
    """"reference" or "fast": which layers run now."""
    return "reference" if is_reference() else "fast"


@contextmanager
def reference_layers(flag: bool = True):
    """Inside the block, run the textbook layers (or, with False, the fast kernels)."""
    before = _state["reference"]
    use_reference(flag)
    try:
        yield
    finally:
        use_reference(before)


def __getattr__(name):
    """`ops.NAME` is NAME from the tier in force at the moment of the call."""
    if name in OPS:
        return getattr(layers if is_reference() else fast_kernels(), name)
    raise AttributeError(f"module 'minibert.ops' has no attribute {name!r}")
