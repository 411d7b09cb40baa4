"""Evaluation metrics for the fine-tuning tasks.

    accuracy, macro F1             classification (F1 per class, averaged over the classes)
    entity F1                      tagging: an entity counts only if its type and exact span match
                                   (CoNLL-2003 evaluation; BIO / IOB tags)
    exact match, token F1          extractive QA (SQuAD v1.1: answers normalised by lower-casing and
                                   removing punctuation, articles and extra spaces; max over answers)
"""

from __future__ import annotations

import re
import string
from collections import Counter

import numpy as np


def accuracy(predictions, labels) -> float:
    return float(np.mean(np.asarray(predictions) == np.asarray(labels)))


def macro_f1(predictions, labels, num_classes) -> float:
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    scores = []
    for k in range(num_classes):
        tp = np.sum((predictions == k) & (labels == k))
        fp = np.sum((predictions == k) & (labels != k))
        fn = np.sum((predictions != k) & (labels == k))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def entity_spans(tags):
    """BIO tags -> set of (type, start, end).  An I- tag that does not continue an entity of its
    type starts one (as conlleval reads IOB1)."""
    spans, start, kind = set(), None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, t = tag.partition("-")
        continues = prefix == "I" and kind == t and start is not None
        if start is not None and not continues:
            spans.add((kind, start, i))
            start, kind = None, None
        if prefix in ("B", "I") and not continues:
            start, kind = i, t
    return spans


def entity_f1(predicted_sequences, gold_sequences) -> float:
    tp = n_pred = n_gold = 0
    for pred, gold in zip(predicted_sequences, gold_sequences):
        p, g = entity_spans(pred), entity_spans(gold)
        tp += len(p & g)
        n_pred += len(p)
        n_gold += len(g)
    if tp == 0:
        return 0.0
    precision, recall = tp / n_pred, tp / n_gold
    return 2 * precision * recall / (precision + recall)


def normalize_answer(s: str) -> str:
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match(prediction: str, answers) -> float:
    return float(max(normalize_answer(prediction) == normalize_answer(a) for a in answers))


def token_f1(prediction: str, answers) -> float:
    best = 0.0
    for answer in answers:
        p, g = normalize_answer(prediction).split(), normalize_answer(answer).split()
        common = sum((Counter(p) & Counter(g)).values())
        if common:
            precision, recall = common / len(p), common / len(g)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def best_span(start_logits, end_logits, candidates, max_answer_length):
    """(score, start, end) maximising start + end logits over start <= end <= start + max - 1,
    both among `candidates` (the context's token positions)."""
    allowed = np.zeros(len(start_logits), dtype=bool)
    allowed[candidates] = True
    s = np.where(allowed, start_logits, -np.inf)
    e = np.where(allowed, end_logits, -np.inf)
    scores = s[:, None] + e[None, :]                                 # (T, T): start i, end j
    T = len(s)
    i, j = np.indices((T, T))
    scores[(j < i) | (j - i >= max_answer_length)] = -np.inf
    flat = int(np.argmax(scores))
    return float(scores.flat[flat]), flat // T, flat % T
