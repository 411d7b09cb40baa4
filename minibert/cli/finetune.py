"""`minibert finetune`: fine-tune a checkpoint on a classification, pair, tagging or QA task."""

from __future__ import annotations

import sys

from .errors import CommandError
from .resume import add_run_options, refuse_other_options


def add_finetune_parser(sub):
    from ..training.finetune import FinetuneArgs
    from ..training.tasks import TASKS
    d = FinetuneArgs("", "", "", "")
    p = sub.add_parser("finetune", help="fine-tune a checkpoint on a classification, pair, tagging or QA task",
                       description="Fine-tune a BERT checkpoint (ours or HuggingFace's) on a task. Formats: "
                                   "classify: TSV sentence<TAB>label; pair: TSV a<TAB>b<TAB>label; "
                                   "tag: CoNLL columns (token ... tag); qa: SQuAD v1.1 JSON.")
    p.add_argument("--model", help="checkpoint directory with a tokenizer")
    p.add_argument("--task", choices=list(TASKS))
    p.add_argument("--train", help="training file")
    p.add_argument("--eval", help="evaluation file (scored every epoch, or every --eval-steps)")
    p.add_argument("--output", default=d.output_dir, help=f"output directory (default: {d.output_dir})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"(default: {d.epochs})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"(default: {d.batch_size})")
    p.add_argument("--grad-accum", type=int, default=d.grad_accum,
                   help="micro-batches of --batch-size per optimizer step (default: 1)")
    p.add_argument("--dtype", choices=["float32", "float64"], default=d.dtype,
                   help="float64 to check that splits of a batch train the same (default: float32)")
    p.add_argument("--lr", type=float, default=d.learning_rate, help=f"peak learning rate (default: {d.learning_rate})")
    p.add_argument("--max-length", type=int, default=d.max_length, help=f"tokens per example (default: {d.max_length})")
    p.add_argument("--trainable-layers", type=int, default=None,
                   help="train only the head and the top N encoder layers (0: frozen encoder); default all")
    p.add_argument("--doc-stride", type=int, default=None,
                   help="qa: context tokens that neighbouring windows share (default: max-length // 3)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--eval-steps", type=int, default=None,
                   help="evaluate (and checkpoint) every N steps instead of after every epoch")
    p.add_argument("--early-stopping-patience", type=int, default=None,
                   help="stop after N evaluations without a better score (default: never)")
    p.add_argument("--resume", action="store_true",
                   help="go on with the interrupted run in --output from its last checkpoint, with the "
                        "options it was started with")
    p.add_argument("--overwrite-output-dir", action="store_true",
                   help="replace a run already in --output (default: refuse)")
    add_run_options(p, run_finetune)


def run_finetune(a) -> int:
    from ..training.distributed import world
    from ..training.finetune import FinetuneArgs, finetune
    if a.resume:
        refuse_other_options(a, takes="--output and --quiet")
        args = None
    else:
        missing = [f"--{name}" for name in ("model", "task", "train", "eval") if getattr(a, name) is None]
        if missing:
            raise CommandError(f"finetune needs {', '.join(missing)} (or --resume --output DIR)")
        args = FinetuneArgs(model=a.model, task=a.task, train_file=a.train, eval_file=a.eval,
                            output_dir=a.output, epochs=a.epochs, batch_size=a.batch_size,
                            grad_accum=a.grad_accum, dtype=a.dtype, learning_rate=a.lr, max_length=a.max_length, trainable_layers=a.trainable_layers,
                            doc_stride=a.doc_stride, seed=a.seed, eval_steps=a.eval_steps,
                            early_stopping_patience=a.early_stopping_patience,
                            overwrite_output_dir=a.overwrite_output_dir)
    result = finetune(args, progress=not a.quiet, resume=a.resume, output_dir=a.output)
    if world().rank != 0:                                    # rank 0 speaks for the job
        return 128 + result.stop_signal if result.interrupted else 0
    if result.interrupted:
        print(f"interrupted at step {result.step}: saved a checkpoint; go on with "
              f"minibert finetune --resume --output {result.output_dir}", file=sys.stderr)
        return 128 + result.stop_signal                    # 130 for Ctrl-C, 143 for SIGTERM
    print(f"done: best {result.metric_name} {result.best_metric:.4f}; model in {result.best_dir}")
    return 0
