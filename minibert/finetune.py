"""Fine-tuning: a pretrained checkpoint + a task head, trained end to end (or with a frozen encoder).

    result = finetune(FinetuneArgs(model="runs/pretrain/model", task="classify",
                                   train_file="train.tsv", eval_file="dev.tsv"))

Each epoch: shuffled batches padded to their own longest sequence (dynamic padding), AdamW with
linear warmup and decay, gradient clipping; then evaluation (accuracy and macro F1 for
classification, entity F1 for tagging, exact match and F1 for QA).  The best epoch's model is
kept in `OUTPUT/best/`; metrics go to `metrics.jsonl` and `curve.png`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .finetune_data import (DataError, encode_squad, encode_tags, label_vocabulary, pad_batch,
                            read_conll, read_squad, read_tsv)
from .metrics import accuracy, best_span, entity_f1, exact_match, macro_f1, token_f1
from .optim import AdamW, clip_grad_norm, linear_warmup_decay
from .tasks import BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification

TASKS = ("classify", "pair", "tag", "qa")


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


class Task:
    """What differs between tasks: reading, featurising, batching, scoring."""

    def __init__(self, args, tokenizer):
        self.args, self.tokenizer = args, tokenizer

    def model_class(self):
        return {"classify": BertForSequenceClassification, "pair": BertForSequenceClassification,
                "tag": BertForTokenClassification, "qa": BertForQuestionAnswering}[self.args.task]

    def load(self, path, fit_labels=False):
        a, tok = self.args, self.tokenizer
        if a.task in ("classify", "pair"):
            texts, pairs, labels = read_tsv(path, pair=a.task == "pair")
            if fit_labels:
                self.label2id = label_vocabulary(labels)
            unknown = sorted(set(labels) - set(self.label2id))
            if unknown:
                raise DataError(f"{path}: labels {unknown} do not occur in the training file")
            features = []
            for i in range(0, len(texts), 256):
                enc = tok(texts[i:i + 256], None if pairs is None else pairs[i:i + 256], padding=True,
                          truncation=True, max_length=a.max_length)
                for row in range(len(enc.input_ids)):
                    n = int(enc.attention_mask[row].sum())
                    features.append({"input_ids": enc.input_ids[row, :n].tolist(),
                                     "token_type_ids": enc.token_type_ids[row, :n].tolist(),
                                     "label": self.label2id[labels[i + row]]})
            return features, None
        if a.task == "tag":
            sentences, tags = read_conll(path)
            if fit_labels:
                self.label2id = label_vocabulary([t for ts in tags for t in ts])
            return encode_tags(tok, sentences, tags, self.label2id, a.max_length), tags
        examples = read_squad(path)
        self.label2id = {"start": 0, "end": 1}
        return encode_squad(tok, examples, a.max_length, a.doc_stride), examples

    def batch(self, features):
        if self.args.task == "tag":
            b = pad_batch(features, self.tokenizer.pad_token_id, token_labels=True)
            return dict(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"])
        b = pad_batch(features, self.tokenizer.pad_token_id)
        inputs = dict(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                      token_type_ids=b["token_type_ids"])
        if self.args.task == "qa":
            inputs["start_positions"] = np.array([f["start_positions"] for f in features])
            inputs["end_positions"] = np.array([f["end_positions"] for f in features])
        else:
            inputs["labels"] = np.array([f["label"] for f in features])
        return inputs

    def evaluate(self, model, features, extra) -> dict:
        """Metrics on the evaluation set; the first key is the one that picks the best epoch."""
        model.eval()
        bs = self.args.batch_size
        outputs = []
        for i in range(0, len(features), bs):
            chunk = features[i:i + bs]
            inputs = self.batch(chunk)
            out = model(**{k: v for k, v in inputs.items()
                           if k in ("input_ids", "attention_mask", "token_type_ids")})
            if self.args.task == "qa":
                outputs.extend((out.start_logits[r], out.end_logits[r]) for r in range(len(chunk)))
            elif self.args.task == "tag":
                outputs.extend(out.logits[r].argmax(-1) for r in range(len(chunk)))
            else:
                outputs.extend(out.logits.argmax(-1))
        model.train()
        if self.args.task in ("classify", "pair"):
            labels = [f["label"] for f in features]
            return {"accuracy": accuracy(outputs, labels),
                    "f1": macro_f1(outputs, labels, len(self.label2id))}
        if self.args.task == "tag":
            id2label = {i: n for n, i in self.label2id.items()}
            predicted, gold = [], []
            for f, pred, tags in zip(features, outputs, extra):
                scored = [i for i, lab in enumerate(f["labels"]) if lab != -100]
                predicted.append([id2label[int(pred[i])] for i in scored])
                gold.append(tags[:len(scored)])
            flat_p = [t for s in predicted for t in s]
            flat_g = [t for s in gold for t in s]
            return {"entity_f1": entity_f1(predicted, gold), "token_accuracy": accuracy(flat_p, flat_g)}
        best = {}
        for f, (s, e) in zip(features, outputs):                     # best span over every window
            score, i, j = best_span(s, e, f["context_tokens"], self.args.max_answer_length)
            ex = f["example_index"]
            if ex not in best or score > best[ex][0]:
                ctx = extra[ex].context
                best[ex] = (score, ctx[f["offsets"][i][0]:f["offsets"][j][1]])
        scored = [(best[i][1], ex.all_answers) for i, ex in enumerate(extra) if ex.all_answers]
        return {"f1": float(np.mean([token_f1(p, a) for p, a in scored])),
                "exact_match": float(np.mean([exact_match(p, a) for p, a in scored]))}


def finetune(args: FinetuneArgs, progress=True) -> FinetuneResult:
    if args.task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {args.task!r}")
    from .tokenization import BertTokenizer, has_tokenizer_files
    if not has_tokenizer_files(args.model):
        raise FileNotFoundError(f"{args.model} has no tokenizer files (tokenizer.json or vocab.txt)")
    tokenizer = BertTokenizer.from_pretrained(args.model)
    task = Task(args, tokenizer)
    train_features, _ = task.load(args.train_file, fit_labels=True)
    eval_features, eval_extra = task.load(args.eval_file)
    id2label = {i: n for n, i in task.label2id.items()}
    model_class = task.model_class()
    kwargs = {} if args.task == "qa" else dict(num_labels=len(id2label), id2label=id2label)
    model = model_class.from_pretrained(args.model, seed=args.seed, **kwargs).train()
    model.freeze(args.trainable_layers)
    trainable = {k: model.params[k] for k in model.trainable_names()}
    optimizer = AdamW(trainable, lr=args.learning_rate, weight_decay=args.weight_decay)

    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = out_dir / "metrics.jsonl"
    metrics_path.write_text("")
    steps_per_epoch = math.ceil(len(train_features) / args.batch_size)
    total = steps_per_epoch * args.epochs
    warmup = int(args.warmup_ratio * total)
    rng = np.random.default_rng(args.seed)
    step, best_value, history = 0, -1.0, []
    log = tqdm.write if progress else (lambda *a, **k: None)
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(train_features))
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{args.epochs}", unit="batch",
                   disable=not progress, dynamic_ncols=True)
        losses, t0 = [], time.perf_counter()
        for b in bar:
            batch = task.batch([train_features[i] for i in order[b * args.batch_size:(b + 1) * args.batch_size]])
            out = model(**batch)
            if not math.isfinite(out.loss):
                raise RuntimeError(f"loss is {out.loss} at step {step + 1}: stopped")
            grads = model.backward()
            clip_grad_norm(grads, args.max_grad_norm)
            lr = linear_warmup_decay(step, args.learning_rate, warmup, total)
            optimizer.step(grads, lr=lr)
            step += 1
            losses.append(out.loss)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", lr=f"{lr:.1e}")
        train_record = {"step": step, "split": "train", "epoch": epoch, "loss": float(np.mean(losses)),
                        "seconds": time.perf_counter() - t0}
        scores = task.evaluate(model, eval_features, eval_extra)
        eval_record = {"step": step, "split": "eval", "epoch": epoch, **scores}
        for record in (train_record, eval_record):
            with open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        history.append(eval_record)
        main_value = next(iter(scores.values()))
        log(f"epoch {epoch}: train loss {train_record['loss']:.4f}; eval " +
            ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
        if main_value > best_value:
            best_value = main_value
            model.tokenizer = tokenizer
            model.save_pretrained(out_dir / "best")
    try:
        from .viz import plot_finetune_curve
        plot_finetune_curve(metrics_path, out_dir / "curve.png")
    except ImportError:
        log("matplotlib is not installed: no curve.png")
    return FinetuneResult(out_dir, out_dir / "best", best_value, history)
