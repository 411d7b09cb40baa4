"""The attention explorer: one self-contained HTML page that shows what every head attends to, and
the arithmetic that made it, for a sentence (or a pair) and one or more models.

    page = explore(model, "The cat sat on the mat.", pair="It was tired.")
    page.save("attention.html")            # opens from disk, offline, in any current browser
    page                                    # in a notebook: shown inline (_repr_html_)

Views (tabs, or the keys 1-3):
    heads       the tokens in two columns, a line from each query to each key, opacity = weight,
                one colour (and dash) per head; a layer selector, heads on and off, hover a token
                to keep its lines, [CLS]/[SEP] lines hidden on request
    model       every layer x head as a thumbnail; a click opens that head in the heads view
    arithmetic  for one layer, head and query: q, each key's k, q.k / sqrt(D), the padding mask,
                the softmax, and the weighted sum of v
With several models (a run's snapshots, or model directories: random weights, pretrained,
fine-tuned) a slider moves through them, and one can be shown beside another with the difference.

Everything drawn comes from one step-by-step pass on the textbook layers (states.encoder_trace),
checked against the model's own attention maps before it is written.  What the page holds, per
model, for every layer and head (B = 1 sentence):
    probs   (L, H, T, T)  softmax(q k^T / sqrt(D) + mask), as 16-bit integers: round(p * 65535)
    scores  (L, H, T, T)  q k^T / sqrt(D) without the mask, float16
    q, k, v (L, H, T, D)  the projections split into heads, float16
so a number the page shows is the model's to float16's 3 significant digits (probabilities to
1 / 131070).  Arrays travel as base64 of their little-endian bytes; the page decodes them itself.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from pathlib import Path

import numpy as np

from ..checkpoints import checkpoint_with_tokenizer
from ..models.bert import BertModel

PROB_SCALE = 65535                    # a probability p is stored as round(p * PROB_SCALE)
PAGE_FILES = ("explore.html", "explore.css", "explore.js")


# ---- which models ------------------------------------------------------------------------------

def model_sources(path) -> list[tuple[str, Path]]:
    """A model directory as one (label, directory); a pretraining run's directory as its kept
    states in step order: RUN/snapshots/step-* (pretrain --snapshot-steps), RUN/checkpoint-*, and
    RUN/model where no checkpoint reached its step."""
    from ..training.checkpointing import checkpoint_dirs
    path = Path(path)
    if (path / "config.json").is_file():
        return [(path.name, path)]
    by_step = {}
    for d in sorted((path / "snapshots").glob("step-*")):
        if (d / "config.json").is_file():
            by_step[int(d.name.split("-")[1])] = d
    for d in checkpoint_dirs(path) if path.is_dir() else []:
        by_step.setdefault(int(d.name.split("-")[1]), d)
    found = [(f"step {step}", by_step[step]) for step in sorted(by_step)]
    if not found and (path / "model" / "config.json").is_file():
        found = [("model", path / "model")]
    if not found:
        raise ValueError(f"{path} is neither a model directory (config.json) nor a pretraining run with "
                         f"snapshots, checkpoints or a model")
    return found


def load_encoders(sources) -> list[tuple[str, BertModel]]:
    """(label, BertModel) for each model, run directory or (label, model) given."""
    out = []
    for source in sources:
        if isinstance(source, tuple):
            out.append(source)
        elif isinstance(source, (str, Path)):
            for label, directory in model_sources(source):
                out.append((label, _quiet_load(BertModel, checkpoint_with_tokenizer(directory))))
        else:
            out.append((type(source).__name__, source))
    for label, model in out:
        if not isinstance(model, BertModel):
            raise TypeError(f"{label}: the explorer reads a BertModel (the encoder); load the checkpoint with "
                            f"BertModel.from_pretrained, got {type(model).__name__}")
    return out


def _quiet_load(cls, directory):
    """The encoder of any BERT checkpoint: its heads (MLM, NSP, a classifier) and a missing pooler
    are expected here, not worth a warning."""
    logger = logging.getLogger("minibert")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return cls.from_pretrained(directory)
    finally:
        logger.setLevel(level)


# ---- one pass, every number the page shows --------------------------------------------------------

def encode(tokenizer, text, pair=None, pad_to=None):
    if pad_to is not None:
        return tokenizer(text, pair, padding="max_length", truncation=True, max_length=pad_to)
    return tokenizer(text, pair, truncation=True)


def attention_pass(model, enc) -> dict[str, np.ndarray]:
    """q, k, v (L, H, T, D), the scores q k^T / sqrt(D) and the probabilities (L, H, T, T) of one
    sentence, from the step-by-step trace; the probabilities checked against the model's own."""
    from ..states import encoder_trace
    ids, types, mask = (np.asarray(x) for x in (enc.input_ids, enc.token_type_ids, enc.attention_mask))
    trace = encoder_trace(model.params, model.config, ids, types, mask)       # dropout off, as in eval mode
    training = model.training
    try:
        out = model.eval()(ids, mask, types, output_attentions=True)
    finally:
        model.train(training)                                                 # the caller's mode, kept
    L = model.config.num_hidden_layers
    got = {name: np.stack([trace[f"layer.{i}.attention.{name}"][0] for i in range(L)])
           for name in ("q", "k", "v", "probs")}
    own = np.stack([a[0] for a in out.attentions])                                  # (L, H, T, T)
    if not np.allclose(got["probs"], own, rtol=1e-4, atol=1e-6):
        raise RuntimeError("the step-by-step trace does not reproduce the model's attention")
    D = got["q"].shape[-1]
    q, k = got["q"].astype(np.float64), got["k"].astype(np.float64)      # exact products of the model's q, k
    got["scores"] = q @ k.transpose(0, 1, 3, 2) / np.sqrt(D)                        # (L, H, T, T)
    return got


def _b64(array, dtype) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def page_data(encoders, text, pair=None, pad_to=None) -> dict:
    """What the page embeds: the tokens, the shapes and, per model, its arrays (module docstring)."""
    first = encoders[0][1]
    tok = first.tokenizer
    if tok is None:
        raise ValueError(f"{encoders[0][0]} has no tokenizer: the explorer needs the text's tokens")
    enc = encode(tok, text, pair, pad_to)
    ids = list(np.asarray(enc.input_ids)[0])
    c = first.config
    shape = (c.num_hidden_layers, c.num_attention_heads, c.hidden_size)
    models = []
    for label, model in encoders:
        cm = model.config
        if (cm.num_hidden_layers, cm.num_attention_heads, cm.hidden_size) != shape:
            raise ValueError(f"{label} has {cm.num_hidden_layers} layers x {cm.num_attention_heads} heads of "
                             f"{cm.hidden_size}, {encoders[0][0]} {shape[0]} x {shape[1]} of {shape[2]}: the "
                             f"explorer moves between models of one shape")
        if model.tokenizer is not None and list(np.asarray(encode(model.tokenizer, text, pair, pad_to).input_ids)[0]) != ids:
            raise ValueError(f"{label} tokenizes the text differently from {encoders[0][0]}: the explorer "
                             f"moves between models of one vocabulary")
        a = attention_pass(model, enc)
        models.append({"label": label,
                       "probs": _b64(np.rint(a["probs"] * PROB_SCALE), "<u2"),
                       "scores": _b64(a["scores"], "<f2"),
                       "q": _b64(a["q"], "<f2"), "k": _b64(a["k"], "<f2"), "v": _b64(a["v"], "<f2")})
    special = set(tok.all_special_ids) - {tok.unk_token_id, tok.mask_token_id}
    L, H, C = shape
    return {"format": "minibert-explore/1", "text": text, "pair": pair,
            "tokens": tok.convert_ids_to_tokens(ids),
            "special": [int(i in special) for i in ids],
            "mask": [int(m) for m in np.asarray(enc.attention_mask)[0]],
            "segment": [int(s) for s in np.asarray(enc.token_type_ids)[0]],
            "layers": L, "heads": H, "head_size": C // H, "prob_scale": PROB_SCALE, "models": models}


def decode_data(data) -> list[dict[str, np.ndarray]]:
    """The arrays of each model as the page reads them (float64), for checking what a page holds."""
    L, H, D, T = data["layers"], data["heads"], data["head_size"], len(data["tokens"])
    out = []
    for m in data["models"]:
        get = lambda key, dtype, shape: np.frombuffer(base64.b64decode(m[key]), dtype=dtype).reshape(shape)
        out.append({"probs": get("probs", "<u2", (L, H, T, T)) / data["prob_scale"],
                    "scores": get("scores", "<f2", (L, H, T, T)).astype(np.float64),
                    **{n: get(n, "<f2", (L, H, T, D)).astype(np.float64) for n in ("q", "k", "v")}})
    return out


# ---- the page ----------------------------------------------------------------------------------

class ExplorerPage(str):
    """The page's HTML (a str); a notebook shows it inline, in an iframe of its own, so the page's
    script and styles run the same in JupyterLab, classic Notebook and VS Code."""

    data: dict

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{html.escape(str(self), quote=True)}" title="minibert attention explorer" '
                f'style="width:100%;height:780px;border:1px solid #ccc" sandbox="allow-scripts"></iframe>')

    def save(self, path) -> Path:
        from ..files import write_atomic
        path = Path(path)
        write_atomic(path, lambda tmp: Path(tmp).write_text(str(self), encoding="utf-8"))
        return path


def render(data, title) -> ExplorerPage:
    here = Path(__file__).parent
    page, style, script = ((here / name).read_text(encoding="utf-8") for name in PAGE_FILES)
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=True).replace("</", "<\\/")
    text = (page.replace("{{title}}", html.escape(title))
                .replace("/*{{style}}*/", style)
                .replace("/*{{script}}*/", script)
                .replace("{{data}}", payload))
    out = ExplorerPage(text)
    out.data = data
    return out


def explore(model, text, pair=None, pad_to=None, name=None) -> ExplorerPage:
    """The explorer page for `text` (and `pair`, segment B).  `model`: a BertModel, a (label,
    BertModel) pair, a checkpoint directory, a pretraining run's directory (its snapshots and
    checkpoints, in step order), or a list of these (one slider position each; labels are the
    directory names or "step N")."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("explore needs a non-empty text")
    sources = list(model) if isinstance(model, list) else [model]     # a list: one slider position each
    encoders = load_encoders(sources)
    if not encoders:
        raise ValueError("explore needs at least one model")
    data = page_data(encoders, text, pair, pad_to)
    data["model"] = name or _describe(sources[0], encoders)
    return render(data, f"attention of {data['model']}")


def _describe(source, encoders) -> str:
    c = encoders[0][1].config
    where = str(source) if isinstance(source, (str, Path)) else encoders[0][0]
    return f"{where} ({c.num_hidden_layers} layers x {c.num_attention_heads} heads, hidden {c.hidden_size})"
