"""Heads for the four classic fine-tuning task shapes (Devlin et al. 2019, section 4, figure 4).

Shapes: B batch, T sequence, C hidden, K labels.

    BertForSequenceClassification   pooled (B, C) -> dropout -> classifier -> logits (B, K)
        single sentences and sentence pairs; cross-entropy, or MSE when K = 1 (regression)
    BertForTokenClassification      h (B, T, C) -> dropout -> classifier -> logits (B, T, K)
        e.g. named entities; labels of -100 (sub-word continuations, padding) are ignored
    BertForQuestionAnswering        h (B, T, C) -> qa_outputs -> start, end logits (B, T) each
        loss = (CE(start) + CE(end)) / 2; a position outside [0, T) is clipped to T and ignored

Parameter names, layouts and losses are HuggingFace's (`classifier.*`, `qa_outputs.*`), so the
models load from and save to the same checkpoints.  The labels are the config's, as in transformers:
`BertConfig(num_labels=3)`, `from_pretrained(path, num_labels=3)` or a checkpoint's `id2label`.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from .bert import bert_backward, bert_forward, init_bert_params
from .inputs import check_inputs, check_labels
from .module import LabelledHead, Module
from .outputs import TaskOutput
from .params import add_grads, init_linear


def sequence_loss_forward(logits, labels):
    """logits (B, K): cross-entropy over K classes, or the mean squared error when K = 1
    (regression, HF's rule for num_labels == 1)."""
    B, K = logits.shape
    if K == 1:
        labels = np.asarray(labels, dtype=logits.dtype).reshape(-1)
        if labels.shape != (B,):
            raise ValueError(f"labels has {labels.size} values for a batch of {B}")
        diff = logits[:, 0] - labels                                                # (B,)
        return float(np.mean(diff * diff)), ("mse", diff)
    labels = check_labels(labels, (B,), K)
    loss, cache = ops.cross_entropy_forward(logits, labels)
    return loss, ("ce", cache)


def sequence_loss_backward(dloss, cache):
    """d loss / d logits: 2 (y_hat - y) / B for MSE, softmax - onehot over B for cross-entropy."""
    kind, c = cache
    if kind == "mse":
        return (2.0 * dloss / c.size) * c[:, None], {}                              # (B, 1)
    return ops.cross_entropy_backward(dloss, c)                                      # (B, K)


def task_output(loss, out, output_hidden_states, output_attentions, logits=None, start=None, end=None):
    """A TaskOutput, with the hidden states and attentions only when asked for."""
    return TaskOutput(loss, logits, start, end, out.hidden_states if output_hidden_states else None,
                      out.attentions if output_attentions else None)


def require_loss(cache):
    """The cache of a forward that computed a loss, or a clear error."""
    if cache.get("loss") is None:
        raise RuntimeError("backward() needs a forward call with labels first "
                           "(there is no loss to differentiate)")
    return cache


class BertTaskModel(LabelledHead, Module):
    """A BERT encoder under `bert.` with a linear head; subclasses say what the head reads."""

    head_name = "classifier"
    add_pooling_layer = True

    def __init__(self, config, seed=0, dtype=np.float32):
        super().__init__(config, seed, dtype)
        config.validate()                        # labels set since construction get their names
        # Layers from the top that train; None: all (see `freeze`).
        self.trainable_layers = None
        init_bert_params(self.params, "bert.", config, self.init_rng, self.dtype, self.add_pooling_layer)
        init_linear(self.params, self.head_name, self.head_outputs(), config.hidden_size,
                    config.initializer_range, self.init_rng, self.dtype)

    def head_outputs(self):
        return self.num_labels

    # ---- freezing ---------------------------------------------------------------------------

    def freeze(self, trainable_layers=None):
        """Train only the head (`trainable_layers=0`: the encoder is a fixed feature extractor),
        the head and the top N encoder layers (and the pooler), or everything (None)."""
        if trainable_layers is not None and not 0 <= trainable_layers <= self.config.num_hidden_layers:
            raise ValueError(f"trainable_layers must be in [0, {self.config.num_hidden_layers}], "
                             f"got {trainable_layers}")
        self.trainable_layers = trainable_layers
        return self

    def trainable_names(self) -> list[str]:
        """Names of the parameters that train under the current `freeze` setting."""
        if self.trainable_layers is None:
            return list(self.params)
        first = self.config.num_hidden_layers - self.trainable_layers
        keep = []
        for name in self.params:
            if not name.startswith("bert."):
                keep.append(name)                                   # the head
            elif name.startswith("bert.pooler.") and self.trainable_layers > 0:
                keep.append(name)
            elif name.startswith("bert.encoder.layer."):
                if int(name.split(".")[3]) >= first:
                    keep.append(name)
        return keep

    # ---- shared forward / backward ------------------------------------------------------------

    def _encode(self, input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions):
        input_ids, attention_mask, token_type_ids = check_inputs(
            self.config, input_ids, attention_mask, token_type_ids)
        out, cache = bert_forward(self.params, "bert.", self.config, input_ids, attention_mask, token_type_ids,
                                  self.rng, self.training, self._unpad(output_attentions), output_hidden_states)
        return input_ids, out, cache

    def _dropout(self, h):
        p = self.config.classifier_dropout                        # the dropout probability
        p = self.config.hidden_dropout_prob if p is None else p
        return ops.dropout_forward(h, p, self.rng, self.training)

    def _finish_backward(self, grads, d_sequence, d_pooled, bert_cache):
        if self.trainable_layers != 0:                            # anything of the encoder trains
            _, encoder_grads = bert_backward(d_sequence, d_pooled, bert_cache, "bert.", self.trainable_layers)
            add_grads(grads, "", encoder_grads)
        names = self.trainable_names()
        return {k: grads[k] if k in grads else np.zeros_like(self.params[k]) for k in names}

    def backward(self, scale=1.0):
        """Gradients of the last loss (times `scale`: how a micro-batch weighs its share of a larger
        batch) for the trainable parameters (all, unless `freeze`d)."""
        return self._backward(require_loss(self._kept("a forward call with labels")), scale)


class BertForSequenceClassification(BertTaskModel):
    """[CLS] -> pooler -> dropout -> classifier: one label per sentence or sentence pair."""

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None,
                output_hidden_states=False, output_attentions=False) -> TaskOutput:
        input_ids, out, bert_cache = self._encode(input_ids, attention_mask, token_type_ids,
                                                  output_hidden_states, output_attentions)
        h, drop_mask = self._dropout(out.pooler_output)                               # (B, C)
        logits, head_cache = ops.linear_forward(h, self.params["classifier.weight"],
                                            self.params["classifier.bias"])           # (B, K)
        loss = loss_cache = None
        if labels is not None:
            loss, loss_cache = sequence_loss_forward(logits, labels)
        self._keep(dict(loss=loss, loss_cache=loss_cache, head_cache=head_cache,
                        drop_mask=drop_mask, bert_cache=bert_cache, shape=out.last_hidden_state.shape))
        return task_output(loss, out, output_hidden_states, output_attentions, logits=logits)

    def _backward(self, c, scale):
        dlogits, _ = sequence_loss_backward(scale, c["loss_cache"])                  # (B, K)
        grads = {}
        dh, g = ops.linear_backward(dlogits, c["head_cache"])
        add_grads(grads, "classifier.", g)
        d_pooled, _ = ops.dropout_backward(dh, c["drop_mask"])
        return self._finish_backward(grads, np.zeros(c["shape"], self.dtype), d_pooled, c["bert_cache"])


class BertForTokenClassification(BertTaskModel):
    """Every token's vector -> dropout -> classifier: one label per token (-100: not scored)."""

    add_pooling_layer = False

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None,
                output_hidden_states=False, output_attentions=False) -> TaskOutput:
        input_ids, out, bert_cache = self._encode(input_ids, attention_mask, token_type_ids,
                                                  output_hidden_states, output_attentions)
        h, drop_mask = self._dropout(out.last_hidden_state)                          # (B, T, C)
        logits, head_cache = ops.linear_forward(h, self.params["classifier.weight"],
                                            self.params["classifier.bias"])          # (B, T, K)
        loss = loss_cache = None
        if labels is not None:
            labels = check_labels(labels, input_ids.shape, self.num_labels)
            loss, loss_cache = ops.cross_entropy_forward(logits.reshape(-1, self.num_labels), labels.reshape(-1))
        self._keep(dict(loss=loss, loss_cache=loss_cache, head_cache=head_cache,
                        drop_mask=drop_mask, bert_cache=bert_cache, shape=logits.shape))
        return task_output(loss, out, output_hidden_states, output_attentions, logits=logits)

    def _backward(self, c, scale):
        dlogits, _ = ops.cross_entropy_backward(scale, c["loss_cache"])
        grads = {}
        dh, g = ops.linear_backward(dlogits.reshape(c["shape"]), c["head_cache"])   # (B, T, K) -> (B, T, C)
        add_grads(grads, "classifier.", g)
        dh, _ = ops.dropout_backward(dh, c["drop_mask"])
        return self._finish_backward(grads, dh, None, c["bert_cache"])


class BertForQuestionAnswering(BertTaskModel):
    """Every token's vector -> qa_outputs -> (start, end) logits: the answer span's two ends."""

    head_name = "qa_outputs"
    add_pooling_layer = False
    # transformers' loss takes the softmax of the start (end) logits over all T positions, the
    # padded ones too: they must be computed as it computes them.  (`unpad_inputs = True` for
    # predictions alone: the answer is read at real tokens.)
    unpad_by_default = False

    def head_outputs(self):
        if self.config.num_labels != 2:
            raise ValueError(f"BertForQuestionAnswering predicts a start and an end: config.num_labels must be 2, "
                             f"got {self.config.num_labels} (load with from_pretrained(path, num_labels=2))")
        return 2

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, start_positions=None,
                end_positions=None, output_hidden_states=False, output_attentions=False) -> TaskOutput:
        input_ids, out, bert_cache = self._encode(input_ids, attention_mask, token_type_ids,
                                                  output_hidden_states, output_attentions)
        logits, head_cache = ops.linear_forward(out.last_hidden_state, self.params["qa_outputs.weight"],
                                            self.params["qa_outputs.bias"])          # (B, T, 2)
        start_logits, end_logits = logits[..., 0], logits[..., 1]                     # (B, T) each
        loss = caches = None
        if start_positions is not None and end_positions is not None:
            B, T = input_ids.shape
            caches, losses = [], []
            for name, positions, z in (("start_positions", start_positions, start_logits),
                                       ("end_positions", end_positions, end_logits)):
                positions = np.asarray(positions)
                if positions.shape != (B,) or not np.issubdtype(positions.dtype, np.integer):
                    raise ValueError(f"{name} must be {B} integers, got shape {positions.shape}, "
                                     f"dtype {positions.dtype}")
                # As transformers: clip into [0, T]; T itself (outside the sequence) is ignored.
                clipped = np.clip(positions, 0, T)
                value, cache = ops.cross_entropy_forward(z, clipped, ignore_index=T)
                losses.append(value)
                caches.append(cache)
            loss = (losses[0] + losses[1]) / 2
        self._keep(dict(loss=loss, loss_cache=caches, head_cache=head_cache, bert_cache=bert_cache,
                        shape=logits.shape))
        return task_output(loss, out, output_hidden_states, output_attentions, start=start_logits,
                           end=end_logits)

    def _backward(self, c, scale):
        (d_start, _), (d_end, _) = (ops.cross_entropy_backward(0.5 * scale, lc) for lc in c["loss_cache"])
        dlogits = np.stack([d_start, d_end], axis=-1)                                 # (B, T, 2)
        grads = {}
        dh, g = ops.linear_backward(dlogits, c["head_cache"])
        add_grads(grads, "qa_outputs.", g)
        return self._finish_backward(grads, dh, None, c["bert_cache"])
