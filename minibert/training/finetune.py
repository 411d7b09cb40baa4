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

from ..config import BertConfig
from ..files import MetricsLog, RunLock
from ..tokenization import BertTokenizer, has_tokenizer_files
from ..tools.viz import plot_finetune_curve
from .loop import TrainingError, draw_curve, printer, progress_bar, train_step
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
    doc_stride: int | None = None              # QA: context tokens neighbouring windows share;
                                               # None: max_length // 3 (transformers' run_qa: 128 of 384)
    max_answer_length: int = 30
    seed: int = 0
    overwrite_output_dir: bool = False         # replace a run already in output_dir

    def window_stride(self) -> int:
        return self.max_length // 3 if self.doc_stride is None else self.doc_stride

    def validate(self):
        """Raise ValueError naming the first impossible setting."""
        for name in ("epochs", "batch_size", "max_answer_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.max_length, int) or self.max_length < 4:
            raise ValueError(f"max_length must be at least 4 ([CLS], a token, [SEP] and room), got {self.max_length!r}")
        if self.doc_stride is not None and self.doc_stride < 0:
            raise ValueError(f"doc_stride must be non-negative, got {self.doc_stride}")
        if self.trainable_layers is not None and self.trainable_layers < 0:
            raise ValueError(f"trainable_layers must be non-negative, got {self.trainable_layers}")
        if not self.learning_rate >= 0 or not 0.0 <= self.warmup_ratio <= 1.0:
            raise ValueError(f"learning_rate must be >= 0 and warmup_ratio in [0, 1], got "
                             f"{self.learning_rate}, {self.warmup_ratio}")


@dataclass
class FinetuneResult:
    output_dir: Path
    best_dir: Path
    best_metric: float
    history: list
    metric_name: str = ""                      # the score that picked the best epoch


def finetune(args: FinetuneArgs, progress=True) -> FinetuneResult:
    if args.task not in TASKS:
        raise ValueError(f"task must be one of {tuple(TASKS)}, got {args.task!r}")
    args.validate()
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(out_dir):                                  # the run owns its directory
        held = existing_run(out_dir)
        if held and not args.overwrite_output_dir:
            raise ValueError(f"{out_dir} already holds a run ({held}): choose another --output, or pass "
                             f"--overwrite-output-dir to replace it")
        return _finetune(args, out_dir, progress)


def _finetune(args: FinetuneArgs, out_dir: Path, progress: bool) -> FinetuneResult:
    if not has_tokenizer_files(args.model):
        raise FileNotFoundError(f"{args.model} has no tokenizer files (tokenizer.json or vocab.txt)")
    tokenizer = BertTokenizer.from_pretrained(args.model)
    log = printer(progress)
    positions = model_positions(args.model)
    if positions is not None and args.max_length > positions:       # as transformers' run_glue
        log(f"max_length {args.max_length} is longer than the model's {positions} positions: using {positions}")
        args.max_length = positions
    task = TASKS[args.task](args, tokenizer)
    train_features, _ = task.load(args.train_file, fit_labels=True)
    eval_features, eval_extra = task.load(args.eval_file)
    model = task.model_class.from_pretrained(args.model, seed=args.seed, **task.config_overrides()).train()
    model.config.extra["finetuning_task"] = args.task              # what `minibert predict` reads
    model.freeze(args.trainable_layers)
    trainable = {k: model.params[k] for k in model.trainable_names()}
    optimizer = AdamW(trainable, lr=args.learning_rate, weight_decay=args.weight_decay)

    metrics = MetricsLog(out_dir / "metrics.jsonl")
    metrics.clear()
    steps_per_epoch = math.ceil(len(train_features) / args.batch_size)
    total = steps_per_epoch * args.epochs
    warmup = int(args.warmup_ratio * total)
    rng = np.random.default_rng(args.seed)
    step, best_value, history = 0, -1.0, []
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
        metric_name, main_value = next(iter(scores.items()))
        if not math.isfinite(main_value):
            raise TrainingError(f"the evaluation's {metric_name} is {main_value} after epoch {epoch}: "
                                f"nothing to pick the best epoch by")
        log(f"epoch {epoch}: train loss {train_record['loss']:.4f}; eval " +
            ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
        if main_value > best_value:
            best_value = main_value
            model.tokenizer = tokenizer
            model.save_pretrained(out_dir / "best")
    draw_curve(plot_finetune_curve, metrics.path, out_dir / "curve.png", log)
    return FinetuneResult(out_dir, out_dir / "best", best_value, history, metric_name)


def model_positions(model_dir) -> int | None:
    """The checkpoint's max_position_embeddings (config.json), read before the model is."""
    try:
        return BertConfig.from_json_file(Path(model_dir) / "config.json").max_position_embeddings
    except (OSError, ValueError):
        return None                      # from_pretrained reports what is wrong with the checkpoint


RUN_FILES = ("metrics.jsonl", "best", "model", "args.json")


def existing_run(directory: Path) -> str:
    """What marks `directory` as holding a run (ours or a pretraining run's), or ""."""
    found = [name for name in RUN_FILES if (directory / name).exists()]
    found += sorted(p.name for p in directory.glob("checkpoint-*"))[:1]
    return ", ".join(found)
