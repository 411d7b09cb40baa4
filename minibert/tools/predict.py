"""Predicting with a fine-tuned model: what it was trained for, on new text.

    model = BertForSequenceClassification.from_pretrained("runs/finetune/best")
    predict(model, ["a gripping film", "a dull film"])
    # -> [{"label": "pos", "score": 0.97, "probabilities": {"neg": 0.03, "pos": 0.97}}, ...]

    sentence classification   texts, or (text_a, text_b) pairs -> label, its probability, all of them
                              (a one-output regression head: {"score": value})
    token classification      word lists (or texts, split at spaces) -> a tag per word: the tag of its
                              first WordPiece, as it was trained (None for a word cut off by max_length)
    question answering        {"question", "context"} dicts -> the answer text, its character span
                              in the context and its probability p(start) p(end), over overlapping
                              windows of a long context

    softmax(z)_k = exp(z_k) / sum_j exp(z_j)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..checkpoints import CheckpointError
from ..data.batching import pad_batch
from ..data.finetuning import QAExample, encode_squad, read_conll, read_sentences, read_squad
from ..models.bert_tasks import BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification
from ..layers.softmax import softmax_forward
from ..models.distilbert import DistilBertForSequenceClassification

logger = logging.getLogger("minibert")

TASK_MODELS = {"BertForSequenceClassification": BertForSequenceClassification,
               "BertForTokenClassification": BertForTokenClassification,
               "BertForQuestionAnswering": BertForQuestionAnswering,
               "DistilBertForSequenceClassification": DistilBertForSequenceClassification}


def load_task_model(path, dtype=np.float32):
    """The fine-tuned model in `path`, as the class config.json's `architectures` names."""
    config_path = Path(path) / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        names = config.get("architectures") or []
    except (OSError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{config_path} cannot be read ({e})") from None
    found = [TASK_MODELS[n] for n in names if n in TASK_MODELS]
    if not found:
        raise CheckpointError(f"{path} holds {', '.join(names) or 'a model without architectures'}, not a "
                              f"fine-tuned model: predict needs one of {', '.join(TASK_MODELS)}")
    return found[0].from_pretrained(path, dtype=dtype)


def model_task(model) -> str:
    """The input format a model reads: the task it was fine-tuned on (config.json's
    finetuning_task, which `minibert finetune` writes), else its head's usual one."""
    task = model.config.extra.get("finetuning_task")
    if task in ("classify", "pair", "tag", "qa"):
        return task
    if isinstance(model, BertForTokenClassification):
        return "tag"
    return "qa" if isinstance(model, BertForQuestionAnswering) else "classify"


def predict_file(model, path, task=None, **kwargs) -> tuple[list[dict], str]:
    """Predict every input of a fine-tuning file (labels optional).  Returns the records (the
    inputs with their predictions) and a summary ("" or "; accuracy ... against the file's labels")."""
    task = task or model_task(model)
    expects = {"classify": (BertForSequenceClassification, DistilBertForSequenceClassification),
               "pair": (BertForSequenceClassification, DistilBertForSequenceClassification),
               "tag": BertForTokenClassification, "qa": BertForQuestionAnswering}[task]
    if not isinstance(model, expects):
        raise ValueError(f"a {type(model).__name__} does not do the {task!r} task")
    if task in ("classify", "pair"):
        texts, pairs, labels = read_sentences(path, pair=task == "pair", labelled=False)
        if labels is not None and model.num_labels > 1:
            labels = model_labels(model, labels, path)
        inputs = list(zip(texts, pairs)) if pairs else texts
        records = [{"text": t if not pairs else t[0], **({"text_pair": t[1]} if pairs else {}), **p}
                   for t, p in zip(inputs, predict(model, inputs, **kwargs))]
        if labels is not None and model.num_labels > 1:
            hits = np.mean([r["label"] == gold for r, gold in zip(records, labels)])
            return records, f"; accuracy {hits:.4f} against the file's labels"
        return records, ""
    if task == "tag":
        sentences, _ = read_conll(path, labelled=False)
        return predict(model, sentences, **kwargs), ""
    examples = read_squad(path)
    results = predict(model, examples, **kwargs)
    return [{"id": ex.id, "question": ex.question, **r} for ex, r in zip(examples, results)], ""


def model_labels(model, labels, path) -> list[str]:
    """The file's gold labels as the model's label names (a class index, as the datasets library
    stores labels, becomes its name).  Labels the model does not have are an error when none of
    them is the model's (the wrong file, or the wrong model), else a warning: they count as wrong."""
    names = [model.id2label[k] for k in range(model.num_labels)]
    gold = [g if g in names else names[int(g)] if g.isdigit() and int(g) < len(names) else g for g in labels]
    unknown = sorted(set(gold) - set(names))
    if len(unknown) == len(set(gold)):
        raise ValueError(f"{path}'s labels ({', '.join(unknown[:5])}{', ...' if len(unknown) > 5 else ''}) are not "
                         f"the model's ({', '.join(names)}): the wrong file or the wrong model? (leave the label "
                         f"column out to predict without scoring)")
    if unknown:
        logger.warning(f"warning: {path} has labels the model does not know ({', '.join(unknown[:5])}): "
                       f"{sum(g in unknown for g in gold)} examples count as wrong")
    return gold


def check_settings(batch_size, max_length, positions):
    """batch_size >= 1 and 4 <= max_length <= the model's positions, or a ValueError naming the value."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    if not isinstance(max_length, int) or not 4 <= max_length <= positions:
        raise ValueError(f"max_length must be between 4 (room for [CLS], [SEP] and a token or two) and the "
                         f"model's {positions} positions, got {max_length}")


def softmax(z):
    """Probabilities over the last axis, in float64 (minibert.layers.softmax)."""
    return softmax_forward(np.asarray(z, dtype=np.float64))[0]


def _logits(model, batch):
    """The model's output on a padded batch, dropout off (DistilBERT takes no segment ids)."""
    model.eval()
    if isinstance(model, DistilBertForSequenceClassification):
        return model(batch["input_ids"], batch["attention_mask"])
    return model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])


def predict(model, inputs, tokenizer=None, batch_size=32, max_length=None, doc_stride=None,
            max_answer_length=30, progress=None) -> list[dict]:
    """One prediction (a dict) per input; what the inputs and answers are depends on the model
    (see the module docstring)."""
    tok = tokenizer if tokenizer is not None else model.tokenizer
    if tok is None:
        raise ValueError("the model has no tokenizer: pass tokenizer=BertTokenizer.from_pretrained(...)")
    if isinstance(inputs, (str, dict)):
        raise TypeError("inputs must be a list (of texts, pairs, word lists or question/context dicts)")
    inputs = list(inputs)
    if max_length is None:
        max_length = min(tok.model_max_length, model.config.max_position_embeddings)
    check_settings(batch_size, max_length, model.config.max_position_embeddings)
    if isinstance(model, (BertForSequenceClassification, DistilBertForSequenceClassification)):
        run = _classify
    elif isinstance(model, BertForTokenClassification):
        run = _tag
    elif isinstance(model, BertForQuestionAnswering):
        return _answer(model, tok, inputs, batch_size, max_length,
                       max_length // 3 if doc_stride is None else doc_stride, max_answer_length, progress)
    else:
        raise TypeError(f"predict needs a fine-tuned model ({', '.join(TASK_MODELS)}), got {type(model).__name__}")
    starts = range(0, len(inputs), batch_size)
    show = progress if progress is not None else len(starts) > 8
    results = []
    for start in tqdm(starts, desc="predicting", unit="batch", disable=not show):
        results.extend(run(model, tok, inputs[start:start + batch_size], max_length))
    return results


def _classify(model, tok, inputs, max_length):
    pairs = all(isinstance(x, (tuple, list)) and len(x) == 2 for x in inputs)
    if not pairs and not all(isinstance(x, str) for x in inputs):
        raise TypeError("a sequence classifier predicts texts or (text_a, text_b) pairs")
    texts = [x[0] for x in inputs] if pairs else inputs
    enc = tok(texts, [x[1] for x in inputs] if pairs else None, padding=True, truncation=True, max_length=max_length)
    logits = _logits(model, enc).logits                                                # (B, K)
    if model.num_labels == 1:                                                          # regression
        return [{"score": float(z[0])} for z in logits]
    p = softmax(logits)                                                                # (B, K)
    names = [model.id2label[k] for k in range(model.num_labels)]
    return [{"label": names[int(row.argmax())], "score": float(row.max()),
             "probabilities": dict(zip(names, map(float, row)))} for row in p]


def _tag(model, tok, inputs, max_length):
    sentences = [x.split() if isinstance(x, str) else list(x) for x in inputs]
    enc = tok(sentences, is_split_into_words=True, padding=True, truncation=True, max_length=max_length)
    best = _logits(model, enc).logits.argmax(-1)                                       # (B, T)
    results = []
    for row, words in enumerate(sentences):
        tags = [None] * len(words)
        for position, w in enumerate(enc.word_ids(row)):
            if w is not None and tags[w] is None:                                      # the word's first piece
                tags[w] = model.id2label[int(best[row, position])]
        results.append({"words": words, "tags": tags})
    return results


def qa_answers(features, start_logits, end_logits, examples, max_answer_length):
    """The best span of each example over all its windows: {"answer", "start", "end", "score"},
    `start`/`end` character offsets into the context, score = p(start) p(end) in its window
    (softmax over the window's context tokens)."""
    best = {}
    for f, s, e in zip(features, start_logits, end_logits):
        value, i, j = best_span(s, e, f["context_tokens"], max_answer_length)
        ctx = f["context_tokens"]
        log_norm = _logsumexp(s[ctx]) + _logsumexp(e[ctx])
        index = f["example_index"]
        if index not in best or value > best[index][0]:
            best[index] = (value, float(np.exp(value - log_norm)), f["offsets"][i][0], f["offsets"][j][1])
    answers = []
    for index, ex in enumerate(examples):
        _, score, a, b = best[index]
        answers.append({"answer": ex.context[a:b], "start": int(a), "end": int(b), "score": score})
    return answers


def _logsumexp(z):
    z = np.asarray(z, dtype=np.float64)
    return float(z.max() + np.log(np.exp(z - z.max()).sum()))


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


def _answer(model, tok, inputs, batch_size, max_length, doc_stride, max_answer_length, progress):
    examples = []
    for i, x in enumerate(inputs):
        if isinstance(x, QAExample):
            examples.append(x)
        elif isinstance(x, dict) and isinstance(x.get("question"), str) and isinstance(x.get("context"), str):
            examples.append(QAExample(str(x.get("id", i)), x["question"], x["context"]))
        else:
            raise TypeError(f"a question-answering model predicts dicts with 'question' and 'context' "
                            f"strings; input {i} is {type(x).__name__}")
    features = encode_squad(tok, examples, max_length, doc_stride)
    starts, ends = [], []
    batches = range(0, len(features), batch_size)
    show = progress if progress is not None else len(batches) > 8
    for b in tqdm(batches, desc="predicting", unit="batch", disable=not show):
        out = _logits(model, pad_batch(features[b:b + batch_size], tok.pad_token_id))
        starts.extend(out.start_logits)
        ends.extend(out.end_logits)
    return qa_answers(features, starts, ends, examples, max_answer_length)
