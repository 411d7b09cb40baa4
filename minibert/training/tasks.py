"""The fine-tuning tasks, each in one class: what it reads, which model it trains, how it batches
and how it is scored.  Adding a task is adding a class here and its name to TASKS.

    classify  TSV sentence<TAB>label                 BertForSequenceClassification   accuracy, macro F1
    pair      TSV sentence_a<TAB>sentence_b<TAB>label BertForSequenceClassification   accuracy, macro F1
    tag       CoNLL columns (token ... tag)          BertForTokenClassification      entity F1, token accuracy
    qa        SQuAD v1.1 JSON                        BertForQuestionAnswering        F1, exact match

`evaluate` returns the metrics with the one that picks the best epoch first.
"""

from __future__ import annotations

import numpy as np

from ..data.batching import pad_batch
from ..data.finetuning import (DataError, encode_squad, encode_tags, label_vocabulary, read_conll, read_sentences,
                               read_squad)
from ..layers.cross_entropy import IGNORE_INDEX
from ..models.bert_tasks import (BertForQuestionAnswering, BertForSequenceClassification,
                                 BertForTokenClassification)
from ..tools.predict import qa_answers
from .metrics import accuracy, entity_f1, exact_match, macro_f1, tagging_scheme, token_f1

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class Task:
    """The common part: a tokenizer and the run's arguments; labels fitted on the training file."""

    model_class = None

    def __init__(self, args, tokenizer):
        self.args, self.tokenizer = args, tokenizer
        self.label2id = {}

    def config_overrides(self) -> dict:
        """What the task sets in the checkpoint's config (`model_class.from_pretrained(path, **...)`)."""
        return dict(id2label={i: name for name, i in self.label2id.items()})

    def load(self, path, fit_labels=False):
        """-> (features, whatever `score` needs besides them)."""
        raise NotImplementedError

    def batch(self, features) -> dict:
        """The model's keyword inputs for a list of features, labels included."""
        raise NotImplementedError

    def predictions(self, out) -> list:
        """One prediction per example of the batch, from the model's output."""
        raise NotImplementedError

    def count(self, batch) -> int:
        """What the batch's mean loss averages over: its examples (tagging: its scored tokens)."""
        return len(batch["input_ids"])

    def score(self, features, predictions, extra) -> dict:
        raise NotImplementedError

    def evaluate(self, model, features, extra) -> dict:
        """Predict every feature (dropout off), then score."""
        model.eval()
        predictions = []
        for i in range(0, len(features), self.args.batch_size):
            inputs = self.batch(features[i:i + self.args.batch_size])
            predictions.extend(self.predictions(model(**{k: inputs[k] for k in MODEL_INPUTS})))
        model.train()
        return self.score(features, predictions, extra)


class ClassifyTask(Task):
    """One label per sentence: [CLS] -> pooler -> classifier."""

    model_class = BertForSequenceClassification
    pair = False

    def load(self, path, fit_labels=False):
        texts, pairs, labels = read_sentences(path, pair=self.pair)
        if fit_labels:
            self.label2id = label_vocabulary(labels)
            if len(self.label2id) < 2:
                raise DataError(f"{path} has a single label, {labels[0]!r}: a classifier needs at least two")
        unknown = sorted(set(labels) - set(self.label2id))
        if unknown:
            raise DataError(f"{path}: labels {unknown} do not occur in the training file")
        features = []
        for i in range(0, len(texts), 256):
            enc = self.tokenizer(texts[i:i + 256], None if pairs is None else pairs[i:i + 256], padding=True,
                                 truncation=True, max_length=self.args.max_length)
            for row in range(len(enc.input_ids)):
                n = int(enc.attention_mask[row].sum())
                features.append({"input_ids": enc.input_ids[row, :n].tolist(),
                                 "token_type_ids": enc.token_type_ids[row, :n].tolist(),
                                 "label": self.label2id[labels[i + row]]})
        return features, None

    def batch(self, features):
        inputs = pad_batch(features, self.tokenizer.pad_token_id)
        inputs["labels"] = np.array([f["label"] for f in features])
        return inputs

    def predictions(self, out):
        return list(out.logits.argmax(-1))

    def score(self, features, predictions, extra):
        labels = [f["label"] for f in features]
        return {"accuracy": accuracy(predictions, labels),
                "f1": macro_f1(predictions, labels, len(self.label2id))}


class PairTask(ClassifyTask):
    """One label per sentence pair: [CLS] A [SEP] B [SEP] -> pooler -> classifier."""

    pair = True


class TagTask(Task):
    """One tag per word, on the word's first WordPiece (the rest are IGNORE_INDEX); entities
    scored in the scheme of the training tags (IOB, IOBES or BILOU)."""

    model_class = BertForTokenClassification
    scheme = "IOB"

    def load(self, path, fit_labels=False):
        sentences, tags = read_conll(path)
        if fit_labels:
            self.label2id = label_vocabulary([t for ts in tags for t in ts])
            try:
                self.scheme = tagging_scheme(self.label2id)              # IOB, IOBES or BILOU
            except ValueError as e:
                raise DataError(f"{path}: {e}") from None
        return encode_tags(self.tokenizer, sentences, tags, self.label2id, self.args.max_length), tags

    def batch(self, features):
        return pad_batch(features, self.tokenizer.pad_token_id)      # per-token labels padded too

    def count(self, batch):
        return int((batch["labels"] != IGNORE_INDEX).sum())

    def predictions(self, out):
        return list(out.logits.argmax(-1))

    def score(self, features, predictions, extra):
        id2label = {i: n for n, i in self.label2id.items()}
        predicted, gold = [], []
        for f, pred, tags in zip(features, predictions, extra):
            scored = [i for i, label in enumerate(f["labels"]) if label != IGNORE_INDEX]
            predicted.append([id2label[int(pred[i])] for i in scored])
            gold.append([tags[w] for w in f["scored_words"]])          # the same words, in order
        flat_p = [t for s in predicted for t in s]
        flat_g = [t for s in gold for t in s]
        return {"entity_f1": entity_f1(predicted, gold, self.scheme), "token_accuracy": accuracy(flat_p, flat_g)}


class QATask(Task):
    """Extractive QA: the answer's start and end tokens, over overlapping windows of the context."""

    model_class = BertForQuestionAnswering

    def config_overrides(self):
        return dict(num_labels=2)                                   # start and end

    def load(self, path, fit_labels=False):
        examples = read_squad(path)
        if not any(ex.all_answers for ex in examples):
            raise DataError(f"{path}: no question has an answer, so there is nothing to "
                            f"{'learn' if fit_labels else 'score'} (SQuAD v1.1 gives each question its answers)")
        self.label2id = {"start": 0, "end": 1}
        return encode_squad(self.tokenizer, examples, self.args.max_length, self.args.window_stride()), examples

    def batch(self, features):
        inputs = pad_batch(features, self.tokenizer.pad_token_id)
        inputs["start_positions"] = np.array([f["start_positions"] for f in features])
        inputs["end_positions"] = np.array([f["end_positions"] for f in features])
        return inputs

    def predictions(self, out):
        return list(zip(out.start_logits, out.end_logits))

    def score(self, features, predictions, extra):
        starts, ends = zip(*predictions)
        answers = qa_answers(features, starts, ends, extra, self.args.max_answer_length)
        scored = [(a["answer"], ex.all_answers) for a, ex in zip(answers, extra) if ex.all_answers]
        return {"f1": float(np.mean([token_f1(p, a) for p, a in scored])),
                "exact_match": float(np.mean([exact_match(p, a) for p, a in scored]))}


TASKS = {"classify": ClassifyTask, "pair": PairTask, "tag": TagTask, "qa": QATask}
