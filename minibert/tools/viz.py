"""Pictures.  matplotlib is an optional extra (`pip install minibert[plot]`), imported only here.

plot_training_curve: pretraining loss and accuracy against the step, from a run's metrics.jsonl.
plot_finetune_curve: fine-tuning loss and evaluation scores per epoch.
plot_attention: one heatmap per head of a layer for a sentence, tokens on both axes.
plot_embeddings_pca: sentence embeddings projected on their first two principal components.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..files import MetricsLog


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")                      # files only, no screen needed
    import matplotlib.pyplot as plt
    return plt


def _save(plt, fig, axes, title, png_path):
    """Grid and legend on every panel, the title, then write the PNG and free the figure."""
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:     # a run stopped before its first record has no lines yet
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)
    return Path(png_path)


def plot_training_curve(metrics_path, png_path, title="minibert pretraining"):
    """Two panels: loss (train and held-out) and accuracy (MLM and NSP, train and held-out)."""
    plt = _pyplot()
    records = MetricsLog(metrics_path).records()
    train = [r for r in records if r.get("split") == "train"]
    held = [r for r in records if r.get("split") == "eval"]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for rows, style, name in ((train, "-", "train"), (held, "o--", "held-out")):
        if not rows:
            continue
        steps = [r["step"] for r in rows]
        what = "MLM + NSP" if "nsp_loss" in rows[0] else "MLM"
        ax_loss.plot(steps, [r["loss"] for r in rows], style, label=f"{name} {what} loss")
        for key, color in (("mlm_accuracy", "tab:blue"), ("nsp_accuracy", "tab:orange")):
            if key in rows[0]:
                ax_acc.plot(steps, [r[key] for r in rows], style, color=color,
                            label=f"{name} {key.split('_')[0].upper()} accuracy")
    if held and "mlm_baseline_accuracy" in held[-1]:
        ax_acc.axhline(held[-1]["mlm_baseline_accuracy"], color="gray", linestyle=":",
                       label="most-frequent-token baseline")
    ax_loss.set(xlabel="step", ylabel="loss", title="loss")
    ax_acc.set(xlabel="step", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    return _save(plt, fig, (ax_loss, ax_acc), title, png_path)


def plot_finetune_curve(metrics_path, png_path, title="minibert fine-tuning"):
    """Training loss and every evaluation metric, per epoch."""
    plt = _pyplot()
    records = MetricsLog(metrics_path).records()
    train = [r for r in records if r.get("split") == "train"]
    held = [r for r in records if r.get("split") == "eval"]
    fig, (ax_loss, ax_eval) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    ax_loss.plot([r["epoch"] for r in train], [r["loss"] for r in train], "o-", label="train loss")
    skip = {"step", "split", "epoch"}
    for key in (held[0].keys() - skip if held else []):
        ax_eval.plot([r["epoch"] for r in held], [r[key] for r in held], "o-", label=key)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="training loss")
    ax_eval.set(xlabel="epoch", ylabel="score", title="evaluation", ylim=(0, 1))
    return _save(plt, fig, (ax_loss, ax_eval), title, png_path)


def plot_attention(model, text, png_path, layer=-1, text_pair=None, pad_to=None):
    """Draw layer `layer`'s attention probabilities, one panel per head: row = the query token,
    column = the key token it attends to.  Returns (the (H, T, T) matrix drawn, the tokens)."""
    plt = _pyplot()
    tok = model.tokenizer
    L = model.config.num_hidden_layers
    if not -L <= layer < L:
        raise ValueError(f"layer must be in [{-L}, {L - 1}] for this {L}-layer model, got {layer}")
    if pad_to is not None:
        enc = tok(text, text_pair, padding="max_length", truncation=True, max_length=pad_to)
    else:
        enc = tok(text, text_pair)
    out = model.eval()(enc.input_ids, enc.attention_mask, enc.token_type_ids, output_attentions=True)
    probs = out.attentions[layer][0]                                         # (H, T, T)
    tokens = tok.convert_ids_to_tokens(enc.input_ids[0])
    H, T = probs.shape[0], probs.shape[-1]
    cols = min(H, 4)
    rows = math.ceil(H / cols)
    size = max(3.0, 0.32 * T + 1.0)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), dpi=80, squeeze=False)
    for h, ax in enumerate(axes.flat):
        if h >= H:
            ax.axis("off")
            continue
        ax.imshow(probs[h], cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_title(f"head {h}", fontsize=9)
        ax.set_xticks(range(T), tokens, rotation=90, fontsize=7)
        ax.set_yticks(range(T), tokens, fontsize=7)
    layer_number = layer % L + 1
    fig.suptitle(f"attention of layer {layer_number} of {L} (rows: queries, columns: keys)\n{text!r}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)
    return probs, tokens


def plot_embeddings_pca(embeddings, labels, png_path, title="sentence embeddings (PCA)"):
    """Project (N, C) embeddings on their first two principal components, coloured by label.
    Returns the (N, 2) projection."""
    plt = _pyplot()
    x = np.asarray(embeddings, dtype=np.float64)
    x = x - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)                          # rows: principal axes
    points = x @ vt[:2].T                                                     # (N, 2)
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    labels = np.asarray(labels)
    for value in sorted(set(labels.tolist()), key=str):
        chosen = labels == value
        ax.scatter(points[chosen, 0], points[chosen, 1], s=12, alpha=0.7, label=str(value))
    ax.set(xlabel="first principal component", ylabel="second principal component")
    _save(plt, fig, (ax,), title, png_path)
    return points
