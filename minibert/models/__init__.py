"""BERT built from the layers: the embeddings, the encoder, the heads, and the models a user holds.

Read in this order: embeddings.py, encoder.py, heads.py, bert.py (BertModel, BertForPreTraining),
then bert_tasks.py (the fine-tuning heads) and distilbert.py.  module.py is what every model
shares (parameters by HuggingFace name, train/eval, state dicts, checkpoints); params.py and
inputs.py are the small tools they use.
"""
