"""`minibert predict`: a fine-tuned model's labels, tags or answers, one JSON line per input."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_predict_parser(sub):
    from ..training.tasks import TASKS
    p = sub.add_parser("predict", help="predict with a fine-tuned model: labels, tags or answers",
                       description="Run a fine-tuned checkpoint on new inputs and write one JSON line per input. "
                                   "Inputs as for finetune, labels optional: classify: TSV sentence[<TAB>label] (or .csv / .jsonl "
                                   "with text[, label] columns); "
                                   "pair: TSV a<TAB>b[<TAB>label]; tag: CoNLL (the word in the first column); "
                                   "qa: SQuAD v1.1 JSON.")
    p.add_argument("--model", required=True, help="a fine-tuned checkpoint directory (e.g. runs/finetune/best)")
    p.add_argument("--input", required=True, help="the file to predict")
    p.add_argument("--output", default=None, help="JSON lines file to write (default: standard output)")
    p.add_argument("--task", choices=list(TASKS), default=None,
                   help="the input's format (default: the task the model was fine-tuned on)")
    p.add_argument("--batch-size", type=int, default=32, help="(default: 32)")
    p.add_argument("--max-length", type=int, default=None, help="tokens per input (default: the model's limit)")
    p.add_argument("--doc-stride", type=int, default=None, help="qa: context tokens windows share (default: max-length // 3)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_predict)


def run_predict(a) -> int:
    from ..checkpoints import checkpoint_with_tokenizer
    from ..tools.predict import load_task_model, predict_file
    model = load_task_model(checkpoint_with_tokenizer(a.model))
    records, summary = predict_file(model, a.input, task=a.task, batch_size=a.batch_size,
                                    max_length=a.max_length, doc_stride=a.doc_stride, progress=not a.quiet)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if a.output:
        Path(a.output).write_text(lines, encoding="utf-8")
        print(f"wrote {len(records)} predictions to {a.output}{summary}", file=sys.stderr)
    else:
        sys.stdout.write(lines)
        if summary:
            print(summary.lstrip("; "), file=sys.stderr)
    return 0
