"""Fine-tuning: a pretrained checkpoint + a task head, trained end to end (or with a frozen encoder).

    result = finetune(FinetuneArgs(model="runs/pretrain/model", task="classify",
                                   train_file="train.tsv", eval_file="dev.tsv"))

Each epoch: shuffled batches padded to their own longest sequence (dynamic padding), AdamW with
linear warmup and decay, gradient clipping; then evaluation (accuracy and macro F1 for
classification, entity F1 for tagging, exact match and F1 for QA).  The best epoch's model is
kept in `OUTPUT/best/`; metrics go to `metrics.jsonl` and `curve.png`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import MetricsLog
from ..tokenization import BertTokenizer, has_tokenizer_files
from ..tools.viz import plot_finetune_curve
from .loop import draw_curve, printer, progress_bar, train_step
from .optim import AdamW, linear_warmup_decay
from .tasks import TASKS


@dataclass
class FinetuneArgs:
    model: str
    task: str
    train_file: str
    eval_file: str
    output_dir: str = "runs/finetune"
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_length: int = 128
    trainable_layers: int | None = None        # None: all; 0: head only (frozen encoder); N: top N
    doc_stride: int = 128                      # QA windows
    max_answer_length: int = 30
    seed: int = 0


@dataclass
class FinetuneResult:
    output_dir: Path
    best_dir: Path
    best_metric: float
    history: list


def finetune(args: FinetuneArgs, progress=True) -> FinetuneResult:
    if args.task not in TASKS:
        raise ValueError(f"task must be one of {tuple(TASKS)}, got {args.task!r}")
    if not has_tokenizer_files(args.model):
        raise FileNotFoundError(f"{args.model} has no tokenizer files (tokenizer.json or vocab.txt)")
    tokenizer = BertTokenizer.from_pretrained(args.model)
    task = TASKS[args.task](args, tokenizer)
    train_features, _ = task.load(args.train_file, fit_labels=True)
    eval_features, eval_extra = task.load(args.eval_file)
    model = task.model_class.from_pretrained(args.model, seed=args.seed, **task.model_kwargs()).train()
    model.freeze(args.trainable_layers)
    trainable = {k: model.params[k] for k in model.trainable_names()}
    optimizer = AdamW(trainable, lr=args.learning_rate, weight_decay=args.weight_decay)

    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = MetricsLog(out_dir / "metrics.jsonl")
    metrics.clear()
    steps_per_epoch = math.ceil(len(train_features) / args.batch_size)
    total = steps_per_epoch * args.epochs
    warmup = int(args.warmup_ratio * total)
    rng = np.random.default_rng(args.seed)
    step, best_value, history = 0, -1.0, []
    log = printer(progress)
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(train_features))
        bar = progress_bar(steps_per_epoch, f"epoch {epoch}/{args.epochs}", "batch", progress)
        losses, t0 = [], time.perf_counter()
        for b in range(steps_per_epoch):
            batch = task.batch([train_features[i] for i in order[b * args.batch_size:(b + 1) * args.batch_size]])
            lr = linear_warmup_decay(step, args.learning_rate, warmup, total)
            out, _ = train_step(model, batch, optimizer, lr, args.max_grad_norm, step + 1)
            step += 1
            losses.append(out.loss)
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", lr=f"{lr:.1e}")
        bar.close()
        train_record = {"step": step, "split": "train", "epoch": epoch, "loss": float(np.mean(losses)),
                        "seconds": time.perf_counter() - t0}
        scores = task.evaluate(model, eval_features, eval_extra)
        eval_record = {"step": step, "split": "eval", "epoch": epoch, **scores}
        metrics.append(train_record)
        metrics.append(eval_record)
        history.append(eval_record)
        main_value = next(iter(scores.values()))
        log(f"epoch {epoch}: train loss {train_record['loss']:.4f}; eval " +
            ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
        if main_value > best_value:
            best_value = main_value
            model.tokenizer = tokenizer
            model.save_pretrained(out_dir / "best")
    draw_curve(plot_finetune_curve, metrics.path, out_dir / "curve.png", log)
    return FinetuneResult(out_dir, out_dir / "best", best_value, history)
