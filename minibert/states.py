"""Reference states: everything a BERT computes on one batch, in one safetensors file, so another
implementation can check itself against minibert tensor by tensor and learn *where* it differs.

    state = compute_state(model, "pretraining", batch, steps=3)      # name -> array, in order
    save_state("state.safetensors", state, metadata)
    comparison = compare_states(load_state("mine.safetensors"), load_state("state.safetensors"))

The names (docs/reference-states.md has every shape and meaning), in computation order:

    inputs.input_ids, inputs.token_type_ids, inputs.attention_mask, inputs.<labels...>
    param.<HF name>                          every weight, as the model holds it (HF layouts)
    embeddings.sum                           word + position + segment embeddings      (B, T, C)
    embeddings.output                        after LayerNorm                            (B, T, C)
    layer.<i>.attention.q / k / v            the projections, split into heads          (B, H, T, D)
    layer.<i>.attention.scores               Q K^T / sqrt(D) + mask                     (B, H, T, T)
    layer.<i>.attention.probs                softmax over the keys                      (B, H, T, T)
    layer.<i>.attention.context              P V, heads merged                          (B, T, C)
    layer.<i>.attention.output               LayerNorm(x + context Wo^T + bo)           (B, T, C)
    layer.<i>.ffn.pre_activation             a W1^T + b1                                (B, T, I)
    layer.<i>.ffn.post_activation            act(a W1^T + b1)                           (B, T, I)
    layer.<i>.output                         LayerNorm(a + h W2^T + b2)                 (B, T, C)
    pooler.output                            tanh(h[:, 0] Wp^T + bp)                    (B, C)
    logits.*                                 the head's outputs
    loss                                     (1,)
    grad.<HF name>                           d loss / d parameter, last layer first (backward order)
    train.loss                               (K,) the loss before each of K AdamW steps
    train.param.<HF name>                    every weight after the K steps

Everything is computed with dropout off, so a port reproduces it without minibert's random
numbers.  The intermediates are a step-by-step walk of the forward on the textbook layers
(minibert/layers), checked against the model's own forward; gradients and losses come from the
model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from .layers.activations import ACTIVATIONS
from .layers.attention import attention_mask_bias, merge_heads, split_heads
from .layers.cross_entropy import IGNORE_INDEX
from .layers.layer_norm import layer_norm_forward
from .layers.linear import linear_forward
from .layers.softmax import softmax_forward
from .models.bert import BertForMaskedLM, BertForPreTraining
from .models.bert_tasks import BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification
from .models.inputs import check_inputs
from .models.params import subdict

FORMAT = "minibert-state/1"
HEADS = {"pretraining": BertForPreTraining, "mlm": BertForMaskedLM, "classify": BertForSequenceClassification,
         "tag": BertForTokenClassification, "qa": BertForQuestionAnswering}
ADAMW = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01)   # the K steps' hyper-parameters
TOLERANCE = {"float64": dict(rtol=1e-9, atol=1e-12), "float32": dict(rtol=1e-4, atol=1e-6)}


# ---- the forward, written out step by step -------------------------------------------------------

def encoder_trace(params, config, input_ids, token_type_ids, attention_mask) -> dict[str, np.ndarray]:
    """Every intermediate of the encoder (names of the module docstring), from the textbook layers.
    `params` are the encoder's own (no `bert.` prefix)."""
    out = {}
    e = subdict(params, "embeddings.")
    T = input_ids.shape[1]
    out["embeddings.sum"] = (e["word_embeddings.weight"][input_ids] + e["token_type_embeddings.weight"][token_type_ids]
                             + e["position_embeddings.weight"][np.arange(T)][None])            # (B, T, C)
    x, _ = layer_norm_forward(out["embeddings.sum"], e["LayerNorm.weight"], e["LayerNorm.bias"], config.layer_norm_eps)
    out["embeddings.output"] = x
    mask_bias = attention_mask_bias(attention_mask, x.dtype)                                  # (B, 1, 1, T)
    act = ACTIVATIONS[config.hidden_act][0]
    H = config.num_attention_heads
    for i in range(config.num_hidden_layers):
        p, name = subdict(params, f"encoder.layer.{i}."), f"layer.{i}."
        q, k, v = (split_heads(linear_forward(x, p[f"attention.self.{n}.weight"], p[f"attention.self.{n}.bias"])[0], H)
                   for n in ("query", "key", "value"))                                       # (B, H, T, D)
        scores = (q @ k.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(q.shape[-1]))             # (B, H, T, T)
        if mask_bias is not None:
            scores = scores + mask_bias
        probs, _ = softmax_forward(scores)
        context = merge_heads(probs @ v)                                                      # (B, T, C)
        h, _ = linear_forward(context, p["attention.output.dense.weight"], p["attention.output.dense.bias"])
        a, _ = layer_norm_forward(x + h, p["attention.output.LayerNorm.weight"], p["attention.output.LayerNorm.bias"],
                                  config.layer_norm_eps)
        pre, _ = linear_forward(a, p["intermediate.dense.weight"], p["intermediate.dense.bias"])   # (B, T, I)
        post, _ = act(pre)
        h, _ = linear_forward(post, p["output.dense.weight"], p["output.dense.bias"])
        x, _ = layer_norm_forward(a + h, p["output.LayerNorm.weight"], p["output.LayerNorm.bias"], config.layer_norm_eps)
        for key, value in (("attention.q", q), ("attention.k", k), ("attention.v", v), ("attention.scores", scores),
                           ("attention.probs", probs), ("attention.context", context), ("attention.output", a),
                           ("ffn.pre_activation", pre), ("ffn.post_activation", post), ("output", x)):
            out[name + key] = value
    if "pooler.dense.weight" in params:
        pooled, _ = linear_forward(x[:, 0], params["pooler.dense.weight"], params["pooler.dense.bias"])
        out["pooler.output"] = np.tanh(pooled)                                                # (B, C)
    return out


# ---- a batch for each head ---------------------------------------------------------------------

def make_batch(head, input_ids, token_type_ids, attention_mask, config, mask_token_id=None, seed=0,
               special_ids=()) -> dict:
    """The model's keyword inputs with labels for `head`, drawn from `seed` (the state file keeps
    them, so a port reads them rather than drawing them):
      pretraining / mlm: every 6th real position masked ([MASK] or, without one, kept), never the
                         first or last one nor a special token ([CLS], [SEP] between a pair, ...),
                         label the original id; NSP label i % 2
      classify: label i % num_labels;  tag: a label per real token;  qa: a start and end inside."""
    rng = np.random.default_rng(seed)
    B, T = input_ids.shape
    ids = input_ids.copy()
    batch = dict(input_ids=ids, token_type_ids=token_type_ids, attention_mask=attention_mask)
    real = attention_mask.astype(bool)
    inner = real.copy()
    inner[:, 0] = False
    inner[np.arange(B), real.sum(1) - 1] = False                  # not [CLS], not the last [SEP]
    inner &= ~np.isin(input_ids, list(special_ids))               # nor the [SEP] between a pair
    if head in ("pretraining", "mlm"):
        labels = np.full((B, T), IGNORE_INDEX, dtype=np.int64)
        for b in range(B):
            positions = np.flatnonzero(inner[b])[::6] if inner[b].any() else np.array([0])
            labels[b, positions] = input_ids[b, positions]
            if mask_token_id is not None:
                ids[b, positions] = mask_token_id
        batch["labels"] = labels
        if head == "pretraining":
            batch["next_sentence_label"] = np.arange(B, dtype=np.int64) % 2
    elif head == "classify":
        batch["labels"] = np.arange(B, dtype=np.int64) % config.num_labels
    elif head == "tag":
        batch["labels"] = np.where(real, rng.integers(0, config.num_labels, (B, T)), IGNORE_INDEX)
    elif head == "qa":
        lengths = real.sum(1)
        start = np.minimum(1 + np.arange(B), lengths - 1)
        batch["start_positions"] = start
        batch["end_positions"] = np.minimum(start + 1, lengths - 1)
    return batch


# ---- the state ---------------------------------------------------------------------------------

HEAD_OUTPUTS = {"prediction_logits": "logits.mlm", "seq_relationship_logits": "logits.nsp", "logits": "logits",
                "start_logits": "logits.start", "end_logits": "logits.end"}


def compute_state(model, head, batch, steps=0) -> dict[str, np.ndarray]:
    """Every tensor of the module docstring for `model` (a HEADS model) on `batch`, dropout off.
    With `steps` K, K AdamW steps (ADAMW) on the same batch follow; the model's weights are then
    those after the steps."""
    from .training.optim import AdamW

    model.eval()
    model.unpad_inputs = False           # padded positions too, computed as transformers computes them
    state = {f"inputs.{k}": np.asarray(v) for k, v in batch.items()}
    state.update({f"param.{k}": v.copy() for k, v in model.params.items()})
    ids, types, mask = batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]
    trace = encoder_trace(subdict(model.params, "bert."), model.config, ids, types, mask)
    out = model(**batch, output_hidden_states=True)
    if not np.allclose(trace[f"layer.{model.config.num_hidden_layers - 1}.output"], out.hidden_states[-1],
                       rtol=1e-4, atol=1e-5):
        raise RuntimeError("the step-by-step trace does not reproduce the model's encoder output")
    state.update(trace)
    for field_name, name in HEAD_OUTPUTS.items():
        if field_name in out:
            state[name] = out[field_name]
    state["loss"] = np.asarray([out.loss], dtype=model.dtype)                             # (1,)
    grads = model.backward()
    state.update({f"grad.{k}": grads[k] for k in reversed(list(model.params))})
    if steps:
        optimizer = AdamW(model.params, **ADAMW)
        losses = []
        for _ in range(steps):
            out = model(**batch)
            losses.append(out.loss)
            optimizer.step(model.backward())
        state["train.loss"] = np.asarray(losses, dtype=model.dtype)
        state.update({f"train.param.{k}": v.copy() for k, v in model.params.items()})
    return state


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("minibert")
    except PackageNotFoundError:
        return "unknown"


def metadata_for(model, head, steps, texts=None) -> dict[str, str]:
    """safetensors metadata (strings): what produced the state and how to read it."""
    config = model.config.to_dict()
    config["architectures"] = [type(model).__name__]
    meta = {"format": FORMAT, "minibert_version": _version(), "head": head, "model_class": type(model).__name__,
            "dtype": np.dtype(model.dtype).name, "config": json.dumps(config, sort_keys=True), "steps": str(steps),
            "adamw": json.dumps(dict(ADAMW, no_decay=["bias", "LayerNorm.weight"]))}
    if texts is not None:
        meta["texts"] = json.dumps(texts, ensure_ascii=False)
    return meta


# ---- files -------------------------------------------------------------------------------------

@dataclass
class State:
    """A state file read back: the tensors in file order (the computation order) and the metadata."""
    tensors: dict[str, np.ndarray]
    metadata: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name):
        return self.tensors[name]

    def __contains__(self, name):
        return name in self.tensors

    @property
    def names(self) -> list[str]:
        return list(self.tensors)

    @property
    def dtype(self) -> str:
        return self.metadata.get("dtype") or next(
            (v.dtype.name for k, v in self.tensors.items() if np.issubdtype(v.dtype, np.floating)), "float32")


def save_state(path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """One safetensors file; the computation order is kept in the metadata ("order"), since
    safetensors stores tensors sorted by name."""
    from safetensors.numpy import save_file

    from .files import write_atomic
    meta = dict(metadata, order=json.dumps(list(tensors)))
    arrays = {k: np.ascontiguousarray(np.asarray(v)) for k, v in tensors.items()}
    write_atomic(path, lambda tmp: save_file(arrays, tmp, metadata=meta))


def load_state(path) -> State:
    """A state file (ours, or a port's written under the same names) -> State."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            metadata = dict(f.metadata() or {})
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except FileNotFoundError:
        raise FileNotFoundError(f"state file not found: {path}") from None
    except Exception as e:
        raise ValueError(f"{path} is not a readable safetensors state file ({e})") from None
    try:
        order = json.loads(metadata.get("order", "[]"))
    except ValueError:
        order = None
    if not isinstance(order, list) or not all(isinstance(name, str) for name in order):
        raise ValueError(f"{path}: its 'order' metadata is not a JSON list of tensor names "
                         f"({metadata.get('order', '')[:60]!r}); rewrite it, or drop it to use the file's own order")
    ordered = {name: tensors[name] for name in order if name in tensors}
    ordered.update({name: t for name, t in tensors.items() if name not in ordered})
    return State(ordered, metadata)


# ---- comparing ---------------------------------------------------------------------------------

@dataclass
class Row:
    name: str
    shape: tuple
    max_abs: float
    max_rel: float             # max |a - b| over max |b|: the error on the tensor's own scale
    ok: bool
    note: str = ""


@dataclass
class Comparison:
    rows: list[Row]
    rtol: float
    atol: float
    only_in_first: list[str] = field(default_factory=list)
    only_in_second: list[str] = field(default_factory=list)

    @property
    def first_divergence(self) -> Row | None:
        return next((r for r in self.rows if not r.ok), None)

    @property
    def ok(self) -> bool:
        return self.first_divergence is None

    def message(self) -> str:
        bad = self.first_divergence
        if bad is None:
            return f"all {len(self.rows)} shared tensors agree (rtol {self.rtol:g}, atol {self.atol:g})"
        return (f"first divergence: {bad.name} {bad.shape}: max abs error {bad.max_abs:.3e}, max relative error "
                f"{bad.max_rel:.3e} (rtol {self.rtol:g}, atol {self.atol:g}){' - ' + bad.note if bad.note else ''}; "
                f"{sum(not r.ok for r in self.rows)} of {len(self.rows)} tensors differ")

    def table(self) -> str:
        width = max([len(r.name) for r in self.rows] + [4])
        lines = [f"{'name':<{width}}  {'shape':<18} {'max abs':>10} {'max rel':>10}  ok"]
        for r in self.rows:
            lines.append(f"{r.name:<{width}}  {str(r.shape):<18} {r.max_abs:>10.2e} {r.max_rel:>10.2e}  "
                         f"{'ok' if r.ok else 'DIFF'}{'  ' + r.note if r.note else ''}")
        if self.only_in_first:
            lines.append(f"only in the first: {_grouped(self.only_in_first)}")
        if self.only_in_second:
            lines.append(f"only in the second: {_grouped(self.only_in_second)}")
        return "\n".join(lines)


def _grouped(names) -> str:
    """Names, with the big families (inputs.*, param.*, grad.*, train.param.*) counted, not listed."""
    families = ("train.param.", "inputs.", "param.", "grad.")
    counts, rest = {}, []
    for name in names:
        family = next((f for f in families if name.startswith(f)), None)
        if family is None:
            rest.append(name)
        else:
            counts[family] = counts.get(family, 0) + 1
    return ", ".join([f"{family}* ({n})" for family, n in counts.items()] + rest)


def compare_states(mine: State, reference: State, rtol=None, atol=None) -> Comparison:
    """Walk the tensors both states hold, in the reference's order: a tensor agrees when
    max |mine - reference| <= atol + rtol * max |reference| (tolerances by the reference's dtype
    unless given)."""
    defaults = TOLERANCE.get(reference.dtype, TOLERANCE["float32"])
    rtol = defaults["rtol"] if rtol is None else rtol
    atol = defaults["atol"] if atol is None else atol
    for name, value in (("rtol", rtol), ("atol", atol)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    shared = [name for name in reference.names if name in mine]
    if not shared:
        raise ValueError(f"the two states share no tensor name (the first holds {len(mine.names)}, the second "
                         f"{len(reference.names)}): nothing to compare; are both minibert-style state files?")
    rows = []
    for name in reference.names:
        if name not in mine:
            continue
        a, b = np.asarray(mine[name]), np.asarray(reference[name])
        if a.shape != b.shape:
            rows.append(Row(name, b.shape, math.inf, math.inf, False, f"shape {a.shape} in the first"))
            continue
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        diff = np.abs(a64 - b64)
        counted = np.ones(b.shape, dtype=bool)
        if name.endswith(".attention.scores") and "inputs.attention_mask" in reference:
            # a padded key's score is "minus a lot", written as -inf, -10000 or the dtype's
            # minimum by different implementations: only the real keys' scores are compared
            keys = np.asarray(reference["inputs.attention_mask"]).astype(bool)[:, None, None, :]
            counted = np.broadcast_to(keys, b.shape)
        diff = np.where(counted, diff, 0.0)
        max_abs = float(diff.max()) if diff.size else 0.0
        finite = np.isfinite(b64) & counted
        scale = float(np.abs(b64[finite]).max()) if finite.any() else 0.0
        max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf)
        ok = bool(np.isfinite(max_abs) and max_abs <= atol + rtol * scale)
        rows.append(Row(name, b.shape, max_abs, max_rel, ok))
    return Comparison(rows, rtol, atol, [n for n in mine.names if n not in reference],
                      [n for n in reference.names if n not in mine])


# ---- building a state from a checkpoint, a config or another state ----------------------------------

def _encode(tokenizer, texts, ids, config):
    """(input_ids, token_type_ids, attention_mask) from texts ("A ||| B" for a pair) or JSON ids,
    each id checked against the vocabulary and each row against the position table."""
    positions = config.max_position_embeddings
    if ids is not None:
        try:
            rows = json.loads(ids) if isinstance(ids, str) else ids
        except ValueError:
            raise ValueError(f"--ids must be a JSON list of lists of token ids, got {ids!r}") from None
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise ValueError(f"--ids must be a JSON list of lists of token ids, got {ids!r}")
        if not rows or not all(rows):
            raise ValueError("--ids holds no tokens")
        for b, row in enumerate(rows):
            bad = [t for t in row if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < config.vocab_size]
            if bad:
                raise ValueError(f"--ids row {b} holds {bad[0]!r}: a token id is an integer in [0, "
                                 f"{config.vocab_size}), the model's vocabulary")
            if len(row) > positions:
                raise ValueError(f"--ids row {b} has {len(row)} tokens, more than the model's {positions} positions")
        T = max(map(len, rows))
        input_ids = np.zeros((len(rows), T), dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for b, row in enumerate(rows):
            input_ids[b, :len(row)], mask[b, :len(row)] = row, 1
        return input_ids, np.zeros_like(input_ids), mask
    if not texts:
        raise ValueError("give the texts to run (or --ids)")
    if tokenizer is None:
        raise ValueError("the model has no tokenizer: give --ids, or a checkpoint with tokenizer files")
    pairs = [t.split("|||") for t in texts]
    if any(len(p) > 2 for p in pairs):
        raise ValueError(f"a text holds '|||' more than once: {next(t for t, p in zip(texts, pairs) if len(p) > 2)!r} "
                         f"(\"A ||| B\" is one pair)")
    if all(len(p) == 2 for p in pairs):
        enc = tokenizer([p[0].strip() for p in pairs], [p[1].strip() for p in pairs], padding=True,
                        truncation=True, max_length=positions)
    elif all(len(p) == 1 for p in pairs):
        enc = tokenizer(list(texts), padding=True, truncation=True, max_length=positions)
    else:                                   # pairs and single sentences: each encoded as it is, then padded
        rows = [tokenizer([p[0].strip()], [p[1].strip()] if len(p) == 2 else None, truncation=True,
                          max_length=positions) for p in pairs]
        T = max(r.input_ids.shape[1] for r in rows)
        out = [np.full((len(rows), T), fill, dtype=np.int64) for fill in (tokenizer.pad_token_id, 0, 0)]
        for b, r in enumerate(rows):
            n = r.input_ids.shape[1]
            for array, part in zip(out, (r.input_ids, r.token_type_ids, r.attention_mask)):
                array[b, :n] = part[0]
        return tuple(out)
    return enc.input_ids, enc.token_type_ids, enc.attention_mask


def dump(model=None, config=None, head="pretraining", texts=(), ids=None, dtype="float64", steps=0, seed=0,
         output="state.safetensors") -> dict[str, np.ndarray]:
    """`minibert dump`: build the model (a checkpoint directory, or a config.json with weights from
    `seed`), run `head` on the batch, write the state file.  Returns the tensors written."""
    from .config import BertConfig

    if head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
    if steps < 0:
        raise ValueError(f"steps must be non-negative, got {steps}")
    cls = HEADS[head]
    if model is not None:
        net = cls.from_pretrained(model, dtype=np.dtype(dtype), seed=seed)
    else:
        net = cls(BertConfig.from_json_file(config), seed=seed, dtype=np.dtype(dtype))
    tokenizer = net.tokenizer
    input_ids, token_type_ids, attention_mask = _encode(tokenizer, texts, ids, net.config)
    mask_id = tokenizer.mask_token_id if tokenizer is not None else None
    special = tokenizer.all_special_ids if tokenizer is not None else ()
    batch = make_batch(head, input_ids, token_type_ids, attention_mask, net.config, mask_id, seed, special)
    state = compute_state(net, head, batch, steps)
    meta = metadata_for(net, head, steps, list(texts) if texts and ids is None else None)
    save_state(output, state, meta)
    return state


def live_state(reference: State) -> State:
    """minibert run now on a state file's weights and inputs (its head, dtype, config and steps)."""
    from .config import BertConfig

    meta = reference.metadata
    missing = [k for k in ("head", "config", "dtype") if k not in meta]
    if missing:
        raise ValueError(f"the state file has no {', '.join(missing)} in its metadata: a live run needs "
                         f"what produced it (write it with minibert dump)")
    if meta["head"] not in HEADS or meta["dtype"] not in ("float32", "float64"):
        raise ValueError(f"the state file's metadata names head {meta['head']!r} and dtype {meta['dtype']!r}: a live "
                         f"run knows heads {', '.join(HEADS)} and dtypes float32, float64")
    try:
        config = BertConfig.from_dict(json.loads(meta["config"]))
        steps = int(meta.get("steps", 0))
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"the state file's config or steps metadata is not readable ({e})") from None
    model = HEADS[meta["head"]](config, dtype=np.dtype(meta["dtype"]))
    weights = {k[len("param."):]: v for k, v in reference.tensors.items() if k.startswith("param.")}
    not_finite = [name for name, v in weights.items() if not np.all(np.isfinite(v))]
    if not_finite:
        raise ValueError(f"the state file's weight param.{not_finite[0]} holds NaN or inf: a live run on it "
                         f"would compare NaN with NaN")
    model.load_state_dict(weights)
    batch = {k[len("inputs."):]: v for k, v in reference.tensors.items() if k.startswith("inputs.")}
    if "input_ids" not in batch:
        raise ValueError("the state file has no inputs.input_ids: a live run needs the batch that produced it")
    check_inputs(config, batch["input_ids"], batch.get("attention_mask"), batch.get("token_type_ids"))
    tensors = compute_state(model, meta["head"], batch, steps)
    return State(tensors, metadata_for(model, meta["head"], steps))
