"""HuggingFace checkpoints: a directory with `config.json` and `model.safetensors`.

Loading (`Model.from_pretrained(path)`) handles what real checkpoints contain:
  * keys with or without the `bert.` prefix (an encoder-only file into a model with heads, or
    a pretraining file into a bare `BertModel`);
  * legacy names `LayerNorm.gamma` / `LayerNorm.beta` (now `.weight` / `.bias`);
  * the stale buffers `embeddings.position_ids` / `embeddings.token_type_ids` (dropped);
  * the tied decoder weight and bias, present or left out;
  * heads the file does not have: initialised fresh and reported, as transformers does;
  * `pytorch_model.bin` (read through torch when it is installed), sharded safetensors, and
    float16 / bfloat16 tensors (upcast to the model's dtype).
Saving (`model.save_pretrained(path)`) writes what `transformers.AutoModel.from_pretrained`
reads, atomically: every file is written under a temporary name and renamed into place, so a
crash mid-save leaves the previous checkpoint (or none), never a half-written file.

We use the `safetensors` library for the file format (a well-kept reference implementation
of a simple but exacting format) and read bfloat16, which NumPy lacks, by hand.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
from pathlib import Path

import numpy as np

from .files import staging_directory, write_atomic
from .tokenization import BertTokenizer, has_tokenizer_files

logger = logging.getLogger("minibert")

CONFIG_NAME = "config.json"
SAFETENSORS_NAME = "model.safetensors"
SAFETENSORS_INDEX_NAME = "model.safetensors.index.json"
TORCH_NAME = "pytorch_model.bin"
STALE_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: the message names the file or key."""


# ---- finding the files ------------------------------------------------------------------

def resolve_checkpoint_dir(path_or_id, cache_dir=None) -> Path:
    """A local directory as it is; otherwise a hub model id looked up in the local
    huggingface_hub cache (never downloaded)."""
    path = Path(path_or_id)
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{path} is a file: pass the checkpoint directory that holds "
                              f"{CONFIG_NAME} and {SAFETENSORS_NAME}")
    advice = (f"pass a local directory holding {CONFIG_NAME} and {SAFETENSORS_NAME} "
              f"(minibert never downloads)")
    try:
        import huggingface_hub
    except ImportError:
        raise FileNotFoundError(f"{path_or_id}: no such directory, and huggingface_hub is not "
                                f"installed to look it up as a hub model id; {advice}") from None
    try:
        snapshot = huggingface_hub.snapshot_download(str(path_or_id), cache_dir=cache_dir,
                                                     local_files_only=True)
    except Exception:
        raise FileNotFoundError(f"{path_or_id}: no such directory, and no hub model of that id is "
                                f"in the local huggingface_hub cache; {advice}") from None
    return Path(snapshot)


def checkpoint_with_tokenizer(path, option="--model") -> Path:
    """`path` as a checkpoint directory that holds its tokenizer too, or an error that says which
    of the two is wrong: no such directory, a file given for its directory, no tokenizer files."""
    directory = resolve_checkpoint_dir(path)
    if not (directory / CONFIG_NAME).is_file():
        raise CheckpointError(f"{option} {path} is not a checkpoint directory: it has no {CONFIG_NAME}")
    if not has_tokenizer_files(directory):
        raise CheckpointError(f"{option} {path} has no tokenizer files (tokenizer.json or vocab.txt): "
                              f"a checkpoint saved by minibert or transformers' save_pretrained has them")
    return directory


# ---- reading tensors ----------------------------------------------------------------------

def _read_bfloat16(path, names):
    """Read bfloat16 tensors from a safetensors file: the top 16 bits of a float32."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        out = {}
        for name in names:
            info = header[name]
            begin, end = info["data_offsets"]
            f.seek(8 + header_len + begin)
            raw = np.frombuffer(f.read(end - begin), dtype="<u2")
            out[name] = (raw.astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])
    return out


def read_safetensors(path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError, safe_open

    try:
        tensors, bf16 = {}, []
        with safe_open(str(path), framework="np") as f:
            for name in f.keys():
                try:
                    tensors[name] = f.get_tensor(name)
                except TypeError:                   # NumPy has no bfloat16
                    bf16.append(name)
        tensors.update(_read_bfloat16(path, bf16))
    except (SafetensorError, OSError, ValueError, KeyError, struct.error) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e}); "
                              f"it may be truncated or corrupt") from None
    return tensors


def read_torch_bin(path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise CheckpointError(
            f"{path} is a PyTorch pickle and torch is not installed. Convert it once where torch "
            f"is installed:\n  python -c \"import torch; from safetensors.torch import save_file; "
            f"sd = torch.load('{TORCH_NAME}', map_location='cpu', weights_only=True); "
            f"save_file({{k: v.clone().contiguous() for k, v in sd.items()}}, '{SAFETENSORS_NAME}', "
            f"metadata={{'format': 'pt'}})\"") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path} could not be read by torch.load ({e})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict of tensors by name")
    return {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}


def read_checkpoint_tensors(directory: Path) -> tuple[dict[str, np.ndarray], str]:
    """All tensors of the checkpoint in `directory` and the file name they came from."""
    if (directory / SAFETENSORS_NAME).is_file():
        return read_safetensors(directory / SAFETENSORS_NAME), SAFETENSORS_NAME
    if (directory / SAFETENSORS_INDEX_NAME).is_file():
        index_path = directory / SAFETENSORS_INDEX_NAME
        try:
            weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(f"{index_path} is not a safetensors index with a 'weight_map' "
                                  f"({type(e).__name__}: {e})") from None
        tensors = {}
        for shard in shards:
            if not isinstance(shard, str) or not (directory / shard).is_file():
                raise CheckpointError(f"{index_path} names a shard {shard!r} that {directory} does not have")
            tensors.update(read_safetensors(directory / shard))
        return tensors, SAFETENSORS_INDEX_NAME
    if (directory / TORCH_NAME).is_file():
        return read_torch_bin(directory / TORCH_NAME), TORCH_NAME
    raise FileNotFoundError(f"{directory} has no weights: expected {SAFETENSORS_NAME} "
                            f"(or {SAFETENSORS_INDEX_NAME}, or {TORCH_NAME})")


# ---- matching checkpoint names to model names -----------------------------------------------

def _rename_legacy(name):
    if name.endswith("LayerNorm.gamma"):
        return name[: -len("gamma")] + "weight"
    if name.endswith("LayerNorm.beta"):
        return name[: -len("beta")] + "bias"
    return name


def map_checkpoint_keys(tensors, model):
    """Rename checkpoint tensors to the model's own names.  Returns (mapped, dropped buffers)."""
    prefix = model.base_model_prefix + "."
    known = set(model.params) | set(model.tied_weights)
    mapped, dropped = {}, []
    for name, value in tensors.items():
        if any(name == b or name == prefix + b for b in STALE_BUFFERS):
            dropped.append(name)
            continue
        new = _rename_legacy(name)
        if new not in known:
            if new.startswith(prefix) and new[len(prefix):] in known:
                new = new[len(prefix):]                      # "bert.x" into a bare BertModel
            elif prefix + new in known:
                new = prefix + new                           # "x" into a model with heads
        mapped[new] = value
    return mapped, dropped


# ---- from_pretrained / save_pretrained ----------------------------------------------------

def load_pretrained(cls, path_or_id, dtype=np.float32, seed=0, cache_dir=None, **config_overrides):
    """Build `cls` from a checkpoint directory.  Keyword arguments override config.json's fields,
    as in transformers (`num_labels=3`, `hidden_dropout_prob=0.2`).  Returns (model, loading_info)."""
    directory = resolve_checkpoint_dir(path_or_id, cache_dir)
    config_path = directory / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(f"{directory} has no {CONFIG_NAME}")
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{config_path} is not valid JSON: {e}") from None
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{config_path} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    model_type = raw.get("model_type", "bert") if isinstance(raw, dict) else None
    if model_type != cls.model_type:
        raise CheckpointError(f"{config_path} describes a {model_type!r} model, not {cls.model_type!r}: "
                              f"{cls.__name__} cannot load it")
    config = cls.config_class.from_json_file(config_path)
    overrides = {k: config_overrides.pop(k) for k in list(config_overrides) if k in config.field_names()}
    if config_overrides:
        raise TypeError(f"{cls.__name__}.from_pretrained got {', '.join(map(repr, config_overrides))}: neither "
                        f"a {type(config).__name__} field nor an argument of from_pretrained")
    try:
        config.update(**overrides)                       # e.g. num_labels=3, hidden_dropout_prob=0.2
    except (TypeError, ValueError) as e:
        raise ValueError(f"{cls.__name__}.from_pretrained: {e}") from None
    model = cls(config, seed=seed, dtype=dtype)

    tensors, file_name = read_checkpoint_tensors(directory)
    where = directory / file_name
    mapped, dropped = map_checkpoint_keys(tensors, model)
    for name, value in mapped.items():
        if name in model.params or name in model.tied_weights:
            check_weight(where, name, value)
    report = model.load_state_dict(mapped, strict=False)
    if report.mismatched_keys:
        name, got, want = report.mismatched_keys[0]
        raise CheckpointError(f"{where}: tensor {name} has shape {got}, but {cls.__name__} with this "
                              f"config expects {want}")
    if len(report.missing_keys) == len(model.params):
        sample = ", ".join(sorted(tensors)[:4])
        raise CheckpointError(f"{where}: none of its {len(tensors)} tensors are {cls.__name__} "
                              f"parameters (it holds {sample}, ...): is it a BERT checkpoint?")
    if report.unexpected_keys:
        logger.warning("Some weights of the checkpoint at %s were not used by %s: %s",
                       directory, cls.__name__, ", ".join(report.unexpected_keys))
    if report.missing_keys:
        logger.warning("Some weights of %s were not in the checkpoint at %s and are newly "
                       "initialised: %s", cls.__name__, directory, ", ".join(report.missing_keys))
    model.tokenizer = _load_tokenizer_if_present(directory)
    vocab_size = getattr(model.config, "vocab_size", None)
    if model.tokenizer is not None and vocab_size is not None and model.tokenizer.vocab_size > vocab_size:
        raise CheckpointError(f"{directory}: its tokenizer has {model.tokenizer.vocab_size} tokens but the model's "
                              f"vocabulary only {vocab_size} (config.json's vocab_size): the ids above "
                              f"{vocab_size - 1} would have no embedding")
    model.eval()
    info = {"missing_keys": report.missing_keys, "unexpected_keys": report.unexpected_keys,
            "dropped_buffers": dropped, "weights_file": str(where)}
    return model, info


def check_weight(where, name, value):
    """A weight must hold finite floating-point numbers: integers or booleans would be cast without
    a word, and one NaN makes every output NaN."""
    value = np.asarray(value)
    if not np.issubdtype(value.dtype, np.floating):
        raise CheckpointError(f"{where}: tensor {name} holds {value.dtype} numbers; a weight is floating point")
    if not np.isfinite(value).all():
        bad = int((~np.isfinite(value)).sum())
        raise CheckpointError(f"{where}: tensor {name} holds {bad} NaN or infinite value(s) of {value.size}")


def _load_tokenizer_if_present(directory):
    return BertTokenizer.from_pretrained(directory) if has_tokenizer_files(directory) else None


def save_pretrained(model, path) -> Path:
    """Write `config.json`, `model.safetensors` (+ tokenizer files) into `path`.

    A new directory is built under a temporary name and renamed into place; into an existing
    directory each file is written to a temporary name and renamed over the old one (weights
    first, config last), so other files there (a run's logs) are kept.
    """
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"cannot save into {path}: it is a file, not a directory")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise PermissionError(f"cannot save into {path}: the directory is not writable")
    config = model.config.to_dict()
    config["architectures"] = [type(model).__name__]
    tensors = {k: np.ascontiguousarray(v) for k, v in model.params.items()}

    def write_all(directory: Path):
        write_atomic(directory / SAFETENSORS_NAME,
                      lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
        if getattr(model, "tokenizer", None) is not None:
            model.tokenizer.save_pretrained(directory)
        write_atomic(directory / CONFIG_NAME, lambda tmp: Path(tmp).write_text(
            json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8"))

    if path.is_dir():
        write_all(path)
        return path
    staging = staging_directory(path.parent, path.name)
    try:
        write_all(staging)
        os.rename(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path
