"""minibert: BERT in NumPy, every forward and backward pass by hand."""

from .runtime import keep_freed_memory_for_reuse, short_blas_spin

short_blas_spin()                    # see minibert/runtime.py: before NumPy is first imported
keep_freed_memory_for_reuse()        # large temporaries reuse memory

from .config import BertConfig, DistilBertConfig
from .distilbert import DistilBertForMaskedLM, DistilBertForSequenceClassification, DistilBertModel
from .modeling import BertForPreTraining, BertForPreTrainingOutput, BertModel, BertModelOutput
from .module import LoadReport, Module
from .tasks import (BertForQuestionAnswering, BertForSequenceClassification,
                    BertForTokenClassification, TaskOutput)

__version__ = "0.1.0"

__all__ = [
    "BertConfig", "BertModel", "BertForPreTraining", "BertModelOutput",
    "BertForPreTrainingOutput", "LoadReport", "Module", "BertForSequenceClassification",
    "BertForTokenClassification", "BertForQuestionAnswering", "TaskOutput", "DistilBertConfig",
    "DistilBertModel", "DistilBertForMaskedLM", "DistilBertForSequenceClassification",
]
