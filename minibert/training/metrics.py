"""Evaluation metrics for the fine-tuning tasks.

    accuracy, macro F1             classification (F1 per class, averaged over the classes)
    entity F1                      tagging: an entity counts only if its type and exact span match
                                   (CoNLL-2003 evaluation); IOB, IOBES or BILOU tags
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


SCHEMES = {                     # the tag prefixes of each scheme ("O" outside any entity)
    "IOB": {"B", "I"},
    "IOBES": {"B", "I", "E", "S"},
    "BILOU": {"B", "I", "L", "U"},
}


def tagging_scheme(tags) -> str:
    """The scheme a set of tags is written in: IOB (B-, I-), IOBES (B-, I-, E-, S-) or BILOU
    (B-, I-, L-, U-), all with O; anything else is refused naming the tag."""
    prefixes = set()
    for tag in tags:
        prefix, dash, kind = tag.partition("-")
        if tag == "O":
            continue
        if not dash or not kind or prefix not in SCHEMES["IOBES"] | SCHEMES["BILOU"]:
            raise ValueError(f"tag {tag!r} is in no tagging scheme minibert scores: use IOB (B-X, I-X, O), "
                             f"IOBES (B-X, I-X, E-X, S-X, O) or BILOU (B-X, I-X, L-X, U-X, O)")
        prefixes.add(prefix)
    for name in ("IOB", "IOBES", "BILOU"):
        if prefixes <= SCHEMES[name]:
            return name
    raise ValueError(f"the tags mix IOBES and BILOU prefixes ({', '.join(sorted(prefixes))}): use one scheme")


def entity_spans(tags, scheme="IOB"):
    """Tags -> set of (type, start, end), end exclusive.
    IOB: an entity starts at B-X, or at an I-X that does not continue an entity of type X (as
         conlleval reads IOB1), and runs over the I-X that follow.
    IOBES / BILOU: an entity is S-X (U-X) alone, or B-X, any I-X, then E-X (L-X), all of one
         type; anything else (a B-X never closed, a stray I-X) is no entity (seqeval's strict mode)."""
    if scheme == "IOB":
        return _iob_spans(tags)
    single, last = ("S", "E") if scheme == "IOBES" else ("U", "L")
    spans, start, kind = set(), None, None
    for i, tag in enumerate(tags):
        prefix, _, t = tag.partition("-")
        if prefix == single:
            spans.add((t, i, i + 1))
            start = None
        elif prefix == "B":
            start, kind = i, t
        elif prefix == "I" and start is not None and t == kind:
            continue
        elif prefix == last and start is not None and t == kind:
            spans.add((t, start, i + 1))
            start = None
        else:
            start = None
    return spans


def _iob_spans(tags):
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


def entity_f1(predicted_sequences, gold_sequences, scheme="IOB") -> float:
    """Micro F1 over entities: one counts only if its type and exact span match."""
    tp = n_pred = n_gold = 0
    for pred, gold in zip(predicted_sequences, gold_sequences):
        p, g = entity_spans(pred, scheme), entity_spans(gold, scheme)
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
