"""Pictures.  matplotlib is an optional extra (`pip install minibert[plot]`), imported only here.

plot_training_curve: pretraining loss and accuracy against the step, from a run's metrics.jsonl.
plot_finetune_curve: fine-tuning loss and evaluation scores per epoch.
"""

from __future__ import annotations

import json
from pathlib import Path


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")                      # files only, no screen needed
    import matplotlib.pyplot as plt
    return plt


def read_metrics(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_training_curve(metrics_path, png_path, title="minibert pretraining"):
    """Two panels: loss (train and held-out) and accuracy (MLM and NSP, train and held-out)."""
    plt = _pyplot()
    records = read_metrics(metrics_path)
    train = [r for r in records if r.get("split") == "train"]
    held = [r for r in records if r.get("split") == "eval"]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for rows, style, name in ((train, "-", "train"), (held, "o--", "held-out")):
        if not rows:
            continue
        steps = [r["step"] for r in rows]
        ax_loss.plot(steps, [r["loss"] for r in rows], style, label=f"{name} MLM + NSP loss")
        for key, color in (("mlm_accuracy", "tab:blue"), ("nsp_accuracy", "tab:orange")):
            if key in rows[0]:
                ax_acc.plot(steps, [r[key] for r in rows], style, color=color,
                            label=f"{name} {key.split('_')[0].upper()} accuracy")
    if held and "mlm_baseline_accuracy" in held[-1]:
        ax_acc.axhline(held[-1]["mlm_baseline_accuracy"], color="gray", linestyle=":",
                       label="most-frequent-token baseline")
    ax_loss.set(xlabel="step", ylabel="loss", title="loss")
    ax_acc.set(xlabel="step", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)
    return Path(png_path)


def plot_finetune_curve(metrics_path, png_path, title="minibert fine-tuning"):
    """Training loss and every evaluation metric, per epoch."""
    plt = _pyplot()
    records = read_metrics(metrics_path)
    train = [r for r in records if r.get("split") == "train"]
    held = [r for r in records if r.get("split") == "eval"]
    fig, (ax_loss, ax_eval) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    ax_loss.plot([r["epoch"] for r in train], [r["loss"] for r in train], "o-", label="train loss")
    skip = {"step", "split", "epoch"}
    for key in (held[0].keys() - skip if held else []):
        ax_eval.plot([r["epoch"] for r in held], [r[key] for r in held], "o-", label=key)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="training loss")
    ax_eval.set(xlabel="epoch", ylabel="score", title="evaluation", ylim=(0, 1))
    for ax in (ax_loss, ax_eval):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)
    return Path(png_path)
