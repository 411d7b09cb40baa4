"""DistilBERT (Sanh et al. 2019): BERT with half the layers, no segment embeddings, no pooler.

The layer is BERT's own (`encoder_layer_forward`), run on DistilBERT's parameter names through
a name table, with one difference: no dropout after the attention projection.  HF names:

    embeddings.{word_embeddings,position_embeddings,LayerNorm}      (no token types)
    transformer.layer.{i}.attention.{q_lin,k_lin,v_lin,out_lin}     (BERT: attention.self.*, .output.dense)
    transformer.layer.{i}.sa_layer_norm                             (BERT: attention.output.LayerNorm)
    transformer.layer.{i}.ffn.{lin1,lin2}                           (BERT: intermediate.dense, output.dense)
    transformer.layer.{i}.output_layer_norm                         (BERT: output.LayerNorm)

Positions are learned, or with `sinusoidal_pos_embds` fixed to sin/cos waves (Vaswani et al.
2017, section 3.5) and not trained.  Heads: `DistilBertForMaskedLM` (vocab_transform, activation,
vocab_layer_norm, vocab_projector tied to the word embeddings) and
`DistilBertForSequenceClassification` (the first token -> pre_classifier -> ReLU -> dropout ->
classifier).
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..config import DistilBertConfig
from ..layers.attention import attention_mask_bias
from .bert_tasks import require_loss, sequence_loss_backward, sequence_loss_forward, task_output
from .embeddings import embeddings_backward, embeddings_forward
from .encoder import encoder_layer_backward, encoder_layer_forward
from .heads import masked_lm_backward, masked_lm_forward
from .inputs import check_inputs, check_labels
from .module import LabelledHead, Module
from .outputs import BertModelOutput, MaskedLMOutput, TaskOutput
from .packing import pack_batch
from .params import add_grads, init_embedding, init_layer_norm, init_linear, subdict

# DistilBERT's layer names -> the names BERT's layer functions read
LAYER_NAMES = {
    "attention.q_lin.": "attention.self.query.",
    "attention.k_lin.": "attention.self.key.",
    "attention.v_lin.": "attention.self.value.",
    "attention.out_lin.": "attention.output.dense.",
    "sa_layer_norm.": "attention.output.LayerNorm.",
    "ffn.lin1.": "intermediate.dense.",
    "ffn.lin2.": "output.dense.",
    "output_layer_norm.": "output.LayerNorm.",
}
TO_DISTIL = {bert: distil for distil, bert in LAYER_NAMES.items()}


def _rename(names, table):
    out = {}
    for name, value in names.items():
        for old, new in table.items():
            if name.startswith(old):
                out[new + name[len(old):]] = value
                break
    return out


def sinusoidal_positions(n_pos, dim):
    """PE[pos, 2i] = sin(pos / 10000^(2i/dim)),  PE[pos, 2i+1] = cos(pos / 10000^(2i/dim))."""
    pos = np.arange(n_pos)[:, None]
    j = np.arange(dim)[None, :]
    angle = pos / np.power(10000.0, 2 * (j // 2) / dim)
    return np.where(j % 2 == 0, np.sin(angle), np.cos(angle))


def init_distilbert_params(params, prefix, config, rng, dtype):
    C, std = config.dim, config.initializer_range
    init_embedding(params, prefix + "embeddings.word_embeddings", config.vocab_size, C, std, rng, dtype,
                   padding_idx=config.pad_token_id)
    init_embedding(params, prefix + "embeddings.position_embeddings", config.max_position_embeddings, C,
                   std, rng, dtype)
    if config.sinusoidal_pos_embds:
        params[prefix + "embeddings.position_embeddings.weight"][:] = sinusoidal_positions(
            config.max_position_embeddings, C)
    init_layer_norm(params, prefix + "embeddings.LayerNorm", C, dtype)
    for i in range(config.n_layers):
        layer = f"{prefix}transformer.layer.{i}."
        for name in ("q_lin", "k_lin", "v_lin", "out_lin"):
            init_linear(params, layer + "attention." + name, C, C, std, rng, dtype)
        init_layer_norm(params, layer + "sa_layer_norm", C, dtype)
        init_linear(params, layer + "ffn.lin1", config.hidden_dim, C, std, rng, dtype)
        init_linear(params, layer + "ffn.lin2", C, config.hidden_dim, std, rng, dtype)
        init_layer_norm(params, layer + "output_layer_norm", C, dtype)


def distilbert_forward(params, prefix, config, input_ids, attention_mask, rng, training, unpad=False,
                       output_hidden_states=True):
    """Checked inputs (B, T) -> BertModelOutput (no pooler) with every hidden state, and the cache.
    `unpad` as in bert_forward: packed rows, zeros at the padded positions, no attentions."""
    bert_config = config.as_bert_config()
    params = subdict(params, prefix)
    packing = pack_batch(attention_mask) if unpad else None
    if packing is None:
        x, emb_cache = embeddings_forward(input_ids, None, subdict(params, "embeddings."), bert_config, rng,
                                          training)                                         # (B, T, C)
        mask_bias, groups = attention_mask_bias(attention_mask, x.dtype), None
    else:
        x, emb_cache = embeddings_forward(packing.pack(input_ids), None, subdict(params, "embeddings."),
                                          bert_config, rng, training, packing.position_ids)  # (N, C)
        mask_bias, groups = None, packing.groups
    hidden, attentions, caches = [x], [], []
    for i in range(config.n_layers):
        layer = _rename(subdict(params, f"transformer.layer.{i}."), LAYER_NAMES)
        x, cache = encoder_layer_forward(x, mask_bias, layer, bert_config, rng, training,
                                         attention_output_dropout=False, groups=groups)
        hidden.append(x)
        attentions.append(cache["attention"]["probs"])
        caches.append(cache)
    cache = (emb_cache, caches, config.sinusoidal_pos_embds, packing)
    if packing is None:
        return BertModelOutput(x, None, tuple(hidden), tuple(attentions)), cache
    h = packing.unpack(x)                                                                   # (B, T, C)
    hidden = tuple(packing.unpack(y) for y in hidden[:-1]) + (h,) if output_hidden_states else None
    return BertModelOutput(h, None, hidden, None), cache


def distilbert_backward(d_last_hidden_state, cache, prefix):
    """Gradients of every trainable DistilBERT parameter (full names, with `prefix`); the ids
    have none (None)."""
    emb_cache, caches, sinusoidal, packing = cache
    grads, dy = {}, d_last_hidden_state
    if packing is not None:
        dy = packing.pack(dy)                                   # (B, T, C) -> the real tokens (N, C)
    for i in reversed(range(len(caches))):
        dy, g = encoder_layer_backward(dy, caches[i])
        add_grads(grads, f"{prefix}transformer.layer.{i}.", _rename(g, TO_DISTIL))
    _, g = embeddings_backward(dy, emb_cache)
    if sinusoidal:                                         # fixed waves: not a parameter to train
        del g["position_embeddings.weight"]
    add_grads(grads, prefix + "embeddings.", g)
    return None, grads


class DistilBertModule(Module):
    config_class = DistilBertConfig
    model_type = "distilbert"
    base_model_prefix = "distilbert"
    prefix = "distilbert."

    def _encode(self, input_ids, attention_mask, output_hidden_states, output_attentions):
        input_ids, attention_mask, _ = check_inputs(self.config.as_bert_config(), input_ids, attention_mask)
        out, cache = distilbert_forward(self.params, self.prefix, self.config, input_ids, attention_mask,
                                        self.rng, self.training, self._unpad(output_attentions),
                                        output_hidden_states)
        return input_ids, out, cache

    def trainable_names(self):
        """All parameters but the fixed sinusoidal position table."""
        frozen = self.prefix + "embeddings.position_embeddings.weight"
        return [k for k in self.params if not (self.config.sinusoidal_pos_embds and k == frozen)]

    def _finish(self, grads):
        return {k: grads[k] if k in grads else np.zeros_like(self.params[k]) for k in self.trainable_names()}


class DistilBertModel(DistilBertModule):
    prefix = ""

    def __init__(self, config: DistilBertConfig, seed=0, dtype=np.float32):
        super().__init__(config, seed, dtype)
        init_distilbert_params(self.params, "", config, self.init_rng, self.dtype)

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False, output_attentions=False):
        _, out, cache = self._encode(input_ids, attention_mask, output_hidden_states, output_attentions)
        self._keep(cache)
        return BertModelOutput(out.last_hidden_state, None, out.hidden_states if output_hidden_states else None,
                               out.attentions if output_attentions else None)

    def backward(self, d_last_hidden_state):
        _, grads = distilbert_backward(d_last_hidden_state, self._kept(), "")
        return self._finish(grads)


class DistilBertForMaskedLM(DistilBertModule):
    tied_weights = {"vocab_projector.weight": "distilbert.embeddings.word_embeddings.weight"}

    def __init__(self, config: DistilBertConfig, seed=0, dtype=np.float32):
        super().__init__(config, seed, dtype)
        init_distilbert_params(self.params, "distilbert.", config, self.init_rng, self.dtype)
        C, std = config.dim, config.initializer_range
        init_linear(self.params, "vocab_transform", C, C, std, self.init_rng, self.dtype)
        init_layer_norm(self.params, "vocab_layer_norm", C, self.dtype)
        self.params["vocab_projector.bias"] = np.zeros(config.vocab_size, dtype=self.dtype)

    # DistilBERT's MLM head names -> the names `mlm_head_forward` reads (BERT's)
    HEAD_NAMES = {"vocab_transform.": "transform.dense.", "vocab_layer_norm.": "transform.LayerNorm.",
                  "vocab_projector.bias": "bias", "distilbert.embeddings.word_embeddings.weight": "decoder.weight"}

    def _head_params(self):
        return _rename(self.params, self.HEAD_NAMES)

    def forward(self, input_ids, attention_mask=None, labels=None, output_hidden_states=False,
                output_attentions=False) -> MaskedLMOutput:
        input_ids, out, cache = self._encode(input_ids, attention_mask, output_hidden_states, output_attentions)
        if labels is not None:
            labels = check_labels(labels, input_ids.shape, self.config.vocab_size)
        logits, loss, head_cache = masked_lm_forward(out.last_hidden_state, labels, self._head_params(),
                                                     self.config.as_bert_config())     # (B, T, V)
        self._keep(dict(loss=loss, head_cache=head_cache, cache=cache))
        return MaskedLMOutput(loss, logits, out.hidden_states if output_hidden_states else None,
                              out.attentions if output_attentions else None)

    def backward(self):
        c = require_loss(self._kept("a forward call with labels"))
        dh, g = masked_lm_backward(c["head_cache"])                                    # (B, T, C)
        grads = _rename(g, {bert: distil for distil, bert in self.HEAD_NAMES.items()})
        _, encoder_grads = distilbert_backward(dh, c["cache"], "distilbert.")
        add_grads(grads, "", encoder_grads)
        return self._finish(grads)


class DistilBertForSequenceClassification(LabelledHead, DistilBertModule):
    """h[:, 0] -> pre_classifier -> ReLU -> dropout -> classifier; CE, or MSE for one label."""

    def __init__(self, config: DistilBertConfig, seed=0, dtype=np.float32):
        super().__init__(config, seed, dtype)
        config.validate()                        # labels set since construction get their names
        init_distilbert_params(self.params, "distilbert.", config, self.init_rng, self.dtype)
        C, std = config.dim, config.initializer_range
        init_linear(self.params, "pre_classifier", C, C, std, self.init_rng, self.dtype)
        init_linear(self.params, "classifier", self.num_labels, C, std, self.init_rng, self.dtype)

    def forward(self, input_ids, attention_mask=None, labels=None, output_hidden_states=False,
                output_attentions=False) -> TaskOutput:
        input_ids, out, cache = self._encode(input_ids, attention_mask, output_hidden_states, output_attentions)
        params = self.params
        h, pre_cache = ops.linear_activation_forward(out.last_hidden_state[:, 0], params["pre_classifier.weight"],
                                                     params["pre_classifier.bias"], "relu")    # (B, C)
        h, drop_mask = ops.dropout_forward(h, self.config.seq_classif_dropout, self.rng, self.training)
        logits, cls_cache = ops.linear_forward(h, params["classifier.weight"], params["classifier.bias"])   # (B, K)
        loss = loss_cache = None
        if labels is not None:
            loss, loss_cache = sequence_loss_forward(logits, labels)
        self._keep(dict(loss=loss, loss_cache=loss_cache, caches=(pre_cache, drop_mask, cls_cache),
                        cache=cache, shape=out.last_hidden_state.shape))
        return task_output(loss, out, output_hidden_states, output_attentions, logits=logits)

    def backward(self):
        c = require_loss(self._kept("a forward call with labels"))
        pre_cache, drop_mask, cls_cache = c["caches"]
        grads = {}
        dlogits, _ = sequence_loss_backward(1.0, c["loss_cache"])
        dh, g = ops.linear_backward(dlogits, cls_cache)
        add_grads(grads, "classifier.", g)
        dh, _ = ops.dropout_backward(dh, drop_mask)
        dfirst, g = ops.linear_activation_backward(dh, pre_cache)
        add_grads(grads, "pre_classifier.", g)
        d_hidden = np.zeros(c["shape"], dtype=self.dtype)
        d_hidden[:, 0] = dfirst
        _, encoder_grads = distilbert_backward(d_hidden, c["cache"], "distilbert.")
        add_grads(grads, "", encoder_grads)
        return self._finish(grads)
