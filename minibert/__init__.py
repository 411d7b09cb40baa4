"""minibert: BERT in NumPy, every forward and backward pass by hand.

Where to start reading: `minibert/layers/` (the textbook layers), then `minibert/models/`
(BERT built from them).  README.md has the map.

The public names below are imported on first use (PEP 562), so `import minibert` loads nothing
else and changes nothing in the process; a program that wants minibert's process settings (the
CLI, the benchmarks) calls `minibert.runtime.configure_runtime()` itself, before NumPy loads.
"""

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_PUBLIC = {
    "BertConfig": "config", "DistilBertConfig": "config",
    "BertModel": "models.bert", "BertForPreTraining": "models.bert", "BertForMaskedLM": "models.bert",
    "ModelOutput": "models.outputs", "BertModelOutput": "models.outputs",
    "BertForPreTrainingOutput": "models.outputs", "MaskedLMOutput": "models.outputs", "TaskOutput": "models.outputs",
    "BertForSequenceClassification": "models.bert_tasks", "BertForTokenClassification": "models.bert_tasks",
    "BertForQuestionAnswering": "models.bert_tasks",
    "DistilBertModel": "models.distilbert", "DistilBertForMaskedLM": "models.distilbert",
    "DistilBertForSequenceClassification": "models.distilbert",
    "LoadReport": "models.module", "Module": "models.module",
    "BertTokenizer": "tokenization", "SentenceEncoder": "tools.sentence_encoder", "fill_mask": "tools.fill_mask",
    "Adam": "training.optim", "AdamW": "training.optim",
    "PretrainArgs": "training.pretrain", "pretrain": "training.pretrain",
    "FinetuneArgs": "training.finetune", "finetune": "training.finetune",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'minibert' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
