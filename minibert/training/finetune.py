"""Fine-tuning: a pretrained checkpoint + a task head, trained end to end (or with a frozen encoder).

    result = finetune(FinetuneArgs(model="runs/pretrain/model", task="classify",
                                   train_file="train.tsv", eval_file="dev.tsv"))

Each epoch: shuffled batches padded to their own longest sequence (dynamic padding), AdamW with
linear warmup and decay, gradient clipping.  Evaluation (accuracy and macro F1 for
classification, entity F1 for tagging, exact match and F1 for QA) after every epoch, or every
`eval_steps` steps; the best evaluation's model is kept in `OUTPUT/best/`; with
`early_stopping_patience` K the run stops after K evaluations without a better score.  Metrics
go to `metrics.jsonl` and `curve.png`.

Nothing is lost: every evaluation also writes a checkpoint (model, optimizer, trainer state),
Ctrl-C finishes the step and saves one, and `resume=True` goes on from the newest with the same
batches, dropout masks and scores as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import BertConfig
from ..files import MetricsLog, RunLock, remove_temporaries, write_atomic
from ..checkpoints import checkpoint_with_tokenizer
from ..tokenization import BertTokenizer
from ..tools.viz import plot_finetune_curve
from .checkpointing import checkpoint_dirs, read_run_args, resume_from, save_checkpoint
from .distributed import SingleProcess, StopRequest, world
from .loop import TrainingError, accumulate_gradients, draw_curve, optimizer_step, printer, progress_bar
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
    batch_size: int = 32                       # examples per micro-batch
    grad_accum: int = 1                        # micro-batches per optimizer step
    dtype: str = "float32"                     # "float64" to check that splits of a batch agree
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
    eval_steps: int | None = None              # evaluate every N steps; None: after every epoch
    early_stopping_patience: int | None = None # stop after this many evaluations without a better score
    overwrite_output_dir: bool = False         # replace a run already in output_dir

    def window_stride(self) -> int:
        return self.max_length // 3 if self.doc_stride is None else self.doc_stride

    def validate(self):
        """Raise ValueError naming the first impossible setting."""
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        for name in ("epochs", "batch_size", "grad_accum", "max_answer_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("eval_steps", "early_stopping_patience"):
            if getattr(self, name) is None:
                continue
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
    metric_name: str = ""                      # the score that picked the best evaluation
    interrupted: bool = False                  # stopped by Ctrl-C (a checkpoint saved: resume)
    early_stopped: bool = False
    step: int = 0
    stop_signal: int | None = None             # signal.SIGINT or SIGTERM when interrupted


def finetune(args: FinetuneArgs | None = None, progress=True, resume=False, output_dir=None,
             on_step=None) -> FinetuneResult:
    """Fine-tune (or, with `resume`, go on with the run in `output_dir` with the arguments it was
    started with).  `on_step(step, model)` is called after every update (for tests and hooks).
    Under MPI every rank calls this; rank 0 checks the directory and sends the others the options."""
    ranks = world()
    if ranks.rank != 0:
        args = ranks.broadcast(None)                       # rank 0's checked options (None: it failed)
        if args is None:
            raise TrainingError("rank 0 refused the run (its message says why)")
        return _finetune(args, Path(args.output_dir), False, resume, on_step, ranks=ranks)
    try:
        args, out_dir = _checked_args(args, resume, output_dir)
    except BaseException:
        ranks.broadcast(None)
        raise
    with RunLock(out_dir):                                  # the run owns its directory
        try:
            held = _check_output(out_dir, args, resume)
        except BaseException:
            ranks.broadcast(None)
            raise
        ranks.broadcast(args)
        return _finetune(args, out_dir, progress, resume, on_step, replace=bool(held), ranks=ranks)


def _checked_args(args, resume, output_dir) -> tuple[FinetuneArgs, Path]:
    """The run's options (a resume's from its args.json), validated, and its directory, made."""
    if resume:
        out_dir = Path(output_dir or args.output_dir)
        if not (out_dir / "args.json").is_file():
            raise ValueError(f"nothing to resume in {out_dir}: it has no args.json (no fine-tuning run was started there)")
        args = read_run_args(out_dir, FinetuneArgs)
    elif args.task not in TASKS:
        raise ValueError(f"task must be one of {tuple(TASKS)}, got {args.task!r}")
    args.validate()
    out_dir = Path(args.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"output {out_dir} is a file, not a directory: choose another --output")
    out_dir.mkdir(parents=True, exist_ok=True)
    return args, out_dir


def _check_output(out_dir: Path, args, resume) -> str:
    """What marks `out_dir` as holding a run already ("" if nothing), refused unless resumed or
    overwritten; a resume clears half-written saves and needs a checkpoint."""
    held = existing_run(out_dir)
    if resume:
        remove_temporaries(out_dir)
        if not checkpoint_dirs(out_dir):
            raise ValueError(f"nothing to resume in {out_dir}: it has no checkpoint")
    elif held and not args.overwrite_output_dir:
        raise ValueError(f"{out_dir} already holds a run ({held}): choose another --output, pass "
                         f"--resume to go on with it, or --overwrite-output-dir to replace it")
    return held


def _finetune(args: FinetuneArgs, out_dir: Path, progress: bool, resume: bool, on_step,
              replace: bool = False, ranks=None) -> FinetuneResult:
    """The run; with `replace`, the run already in `out_dir` is replaced, once the new one's model and
    data have loaded (a typo in a path must not cost the old run).  Under MPI each rank takes its
    share of every step's examples, the gradients are summed across ranks, and rank 0 alone
    evaluates and writes."""
    ranks = ranks or SingleProcess()
    lead = ranks.rank == 0
    tokenizer = BertTokenizer.from_pretrained(checkpoint_with_tokenizer(args.model))
    log = printer(progress and lead)            # chatter: hidden by --quiet
    say = printer(lead)                         # results and warnings: always printed (by rank 0)
    positions = model_positions(args.model)
    if positions is not None and args.max_length > positions:       # as transformers' run_glue
        say(f"max_length {args.max_length} is longer than the model's {positions} positions: using {positions}")
        args.max_length = positions
    task = TASKS[args.task](args, tokenizer)
    train_features, _ = task.load(args.train_file, fit_labels=True)
    eval_features, eval_extra = task.load(args.eval_file)
    model = task.model_class.from_pretrained(args.model, seed=args.seed, dtype=np.dtype(args.dtype),
                                             **task.config_overrides()).train()
    model.config.extra["finetuning_task"] = args.task              # what `minibert predict` reads
    model.tokenizer = tokenizer
    model.freeze(args.trainable_layers)
    trainable = {k: model.params[k] for k in model.trainable_names()}
    optimizer = AdamW(trainable, lr=args.learning_rate, weight_decay=args.weight_decay)
    if not resume and lead:            # the data and the model are good: the run starts here
        if replace:                    # the old run's checkpoints and best model go; its metrics are cleared below
            for old in checkpoint_dirs(out_dir) + [out_dir / "best"]:
                shutil.rmtree(old, ignore_errors=True)
        write_atomic(out_dir / "args.json",
                     lambda tmp: Path(tmp).write_text(json.dumps(dataclasses.asdict(args), indent=1)))

    share = args.batch_size * args.grad_accum                     # examples of one rank in a step
    per_step = share * ranks.size                                 # examples in one optimizer step
    steps_per_epoch = math.ceil(len(train_features) / per_step)
    total = steps_per_epoch * args.epochs
    warmup = int(args.warmup_ratio * total)
    eval_every = args.eval_steps or steps_per_epoch
    metrics = MetricsLog(out_dir / "metrics.jsonl")
    state = {"step": 0, "best_value": -1.0, "history": [], "bad_evaluations": 0, "losses": [],
             "metric_name": "", "epoch": 0, "batch_in_epoch": 0, "world_size": ranks.size}
    if resume:
        last, saved = resume_from(checkpoint_dirs(out_dir), model, optimizer)
        if saved.get("world_size", 1) != ranks.size:
            raise TrainingError(f"{last} was written by a run of {saved.get('world_size', 1)} MPI process(es): "
                                f"resume it with as many (mpirun -np {saved.get('world_size', 1)}); with "
                                f"{ranks.size} the batches would be split differently")
        state.update(saved)
        if lead:
            metrics.truncate(state["step"])
        log(f"resuming from {last} (step {state['step']})")
    elif lead:
        metrics.clear()

    stop = StopRequest(ranks)                                    # Ctrl-C or SIGTERM: save, then exit
    bar = progress_bar(total, "fine-tuning", "step", progress, initial=state["step"])
    early_stopped = False
    t0 = time.perf_counter()
    try:
        while state["step"] < total and not stop.agreed() and not early_stopped:
            step = state["step"]
            epoch, b = divmod(step, steps_per_epoch)
            order = np.random.default_rng([args.seed, epoch]).permutation(len(train_features))
            chosen = order[b * per_step:(b + 1) * per_step]
            mine = chosen[ranks.rank * share:(ranks.rank + 1) * share]        # this rank's share, in order
            micro = [task.batch([train_features[i] for i in mine[k:k + args.batch_size]])
                     for k in range(0, len(mine), args.batch_size)]
            # each micro-batch weighs its mean loss by its share of the step's scored examples or
            # tokens, over every rank; the stop flag of each rank rides along
            counts = [task.count(m) for m in micro]
            total_count, stops = ranks.sum([sum(counts), float(stop.requested())])
            stop.agree(stops)
            weighted = [(m, {"scale": c / max(total_count, 1)}) for m, c in zip(micro, counts)]
            if not weighted:                  # a short last step left this rank nothing: a zero gradient
                weighted = [(task.batch([train_features[chosen[0]]]), {"scale": 0.0})]
            lr = linear_warmup_decay(step, args.learning_rate, warmup, total)
            grads, outputs = accumulate_gradients(model, weighted, step + 1)
            ranks.allreduce_grads(grads)
            optimizer_step(grads, optimizer, lr, args.max_grad_norm, step + 1)
            state["step"] = step = step + 1
            state["epoch"], state["batch_in_epoch"] = divmod(step, steps_per_epoch)
            loss = sum(out.loss * w["scale"] for out, (_, w) in zip(outputs, weighted))
            state["losses"].append(float(ranks.sum([loss])[0]))
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(state['losses'][-20:]):.4f}", lr=f"{lr:.1e}",
                            epoch=f"{step / steps_per_epoch:.2f}")
            if step % eval_every == 0 or step == total:
                if lead:
                    early_stopped = _evaluate(args, task, model, eval_features, eval_extra, metrics, state,
                                              step / steps_per_epoch, time.perf_counter() - t0, out_dir, say)
                    save_checkpoint(out_dir, model, optimizer, state, keep=1)
                early_stopped = bool(ranks.sum([float(early_stopped)])[0])     # rank 0's decision
                t0 = time.perf_counter()
            if on_step is not None:
                on_step(step, model)
        if stop.agreed():
            if lead:
                save_checkpoint(out_dir, model, optimizer, state, keep=1)
            ranks.barrier()                                   # no rank leaves before rank 0 has saved
            log(f"interrupted at step {state['step']}: saved a checkpoint; go on with --resume")
        elif early_stopped:
            say(f"early stopping at step {state['step']}: no better {state['metric_name']} in "
                f"{args.early_stopping_patience} evaluations")
    finally:
        bar.close()
        stop.restore()
    if lead:
        draw_curve(plot_finetune_curve, metrics.path, out_dir / "curve.png", say)
    return FinetuneResult(out_dir, out_dir / "best", state["best_value"], state["history"], state["metric_name"],
                          stop.agreed(), early_stopped, state["step"], stop.signal if stop.agreed() else None)


def _evaluate(args, task, model, features, extra, metrics, state, epoch, seconds, out_dir, log) -> bool:
    """Score the model, log it, keep it in best/ when it is the best so far.  Returns whether the
    run should stop early."""
    scores = task.evaluate(model, features, extra)
    step = state["step"]
    train_record = {"step": step, "split": "train", "epoch": round(epoch, 4),
                    "loss": float(np.mean(state["losses"])), "seconds": seconds}
    eval_record = {"step": step, "split": "eval", "epoch": round(epoch, 4), **scores}
    metrics.append(train_record)
    metrics.append(eval_record)
    state["history"].append(eval_record)
    state["losses"] = []
    metric_name, value = next(iter(scores.items()))
    state["metric_name"] = metric_name
    if not math.isfinite(value):
        raise TrainingError(f"the evaluation's {metric_name} is {value} at step {step}: "
                            f"nothing to pick the best model by")
    log(f"step {step} (epoch {epoch:.2f}): train loss {train_record['loss']:.4f}; eval " +
        ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    if value > state["best_value"]:
        state["best_value"], state["bad_evaluations"] = value, 0
        model.save_pretrained(out_dir / "best")
    else:
        state["bad_evaluations"] += 1
    patience = args.early_stopping_patience
    return patience is not None and state["bad_evaluations"] >= patience


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
