"""BertModel and BertForPreTraining (Devlin et al. 2019; HF `modeling_bert.py`).

Shapes: B batch, T sequence, C hidden, H heads, I intermediate, V vocabulary.

    input_ids (B, T) -> embeddings (B, T, C) -> L encoder layers (B, T, C) -> last_hidden_state
                                                     last_hidden_state[:, 0] -> pooler -> (B, C)
    BertForPreTraining adds the MLM head (B, T, V) and the NSP head (B, 2) and their loss.
    BertForMaskedLM adds the MLM head alone, on an encoder without a pooler (RoBERTa-style
    MLM-only pretraining, fill-mask; the class most BERT checkpoints are published as).

`bert_forward` / `bert_backward` are the encoder as functions of a parameter dict and a name
prefix ("" for `BertModel`, "bert." inside every model with a head), so each head model reuses
them rather than holding a copy of the encoder.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..config import BertConfig
from ..layers.attention import attention_mask_bias
from .embeddings import embeddings_backward, embeddings_forward
from .encoder import encoder_backward, encoder_forward, pooler_backward, pooler_forward
from .heads import (init_mlm_head, masked_lm_backward, masked_lm_forward, mlm_head_params, nsp_head_backward,
                    nsp_head_forward)
from .inputs import check_inputs, check_labels, check_next_sentence_label
from .module import Module
from .packing import pack_batch
from .outputs import BertForPreTrainingOutput, BertModelOutput, MaskedLMOutput
from .params import add_grads, init_embedding, init_layer_norm, init_linear, subdict


# ---- parameters ---------------------------------------------------------------------------

def init_bert_params(params, prefix, config, rng, dtype, add_pooling_layer=True):
    """Add the encoder's parameters under `prefix`, in HF's state-dict order."""
    C, I, std = config.hidden_size, config.intermediate_size, config.initializer_range
    e = prefix + "embeddings."
    init_embedding(params, e + "word_embeddings", config.vocab_size, C, std, rng, dtype,
                   padding_idx=config.pad_token_id)
    init_embedding(params, e + "position_embeddings", config.max_position_embeddings, C, std, rng, dtype)
    init_embedding(params, e + "token_type_embeddings", config.type_vocab_size, C, std, rng, dtype)
    init_layer_norm(params, e + "LayerNorm", C, dtype)
    for i in range(config.num_hidden_layers):
        layer = f"{prefix}encoder.layer.{i}."
        for name in ("query", "key", "value"):
            init_linear(params, layer + "attention.self." + name, C, C, std, rng, dtype)
        init_linear(params, layer + "attention.output.dense", C, C, std, rng, dtype)
        init_layer_norm(params, layer + "attention.output.LayerNorm", C, dtype)
        init_linear(params, layer + "intermediate.dense", I, C, std, rng, dtype)
        init_linear(params, layer + "output.dense", C, I, std, rng, dtype)
        init_layer_norm(params, layer + "output.LayerNorm", C, dtype)
    if add_pooling_layer:
        init_linear(params, prefix + "pooler.dense", C, C, std, rng, dtype)


# ---- the encoder as functions of (params, prefix) -----------------------------------------

def bert_forward(params, prefix, config, input_ids, attention_mask, token_type_ids, rng, training,
                 unpad=False, output_hidden_states=True):
    """Checked inputs (B, T)  ->  BertModelOutput with every hidden state and attention, and the cache.

    With `unpad`, a right-padded batch runs on its real tokens only (models/packing.py): the same
    numbers at every real token, zeros at the padded positions, and no attentions (None)."""
    params = subdict(params, prefix)
    dtype = params["embeddings.word_embeddings.weight"].dtype
    packing = pack_batch(attention_mask) if unpad else None
    if packing is None:
        x, emb_cache = embeddings_forward(input_ids, token_type_ids, subdict(params, "embeddings."),
                                          config, rng, training)                          # (B, T, C)
        mask_bias = attention_mask_bias(attention_mask, dtype)                             # (B, 1, 1, T)
        h, hidden, attentions, enc_caches = encoder_forward(x, mask_bias, subdict(params, "encoder."),
                                                            config, rng, training)
        hidden, attentions = tuple([x] + hidden), tuple(attentions)
    else:
        x, emb_cache = embeddings_forward(packing.pack(input_ids), packing.pack(token_type_ids),
                                          subdict(params, "embeddings."), config, rng, training,
                                          packing.position_ids)                            # (N, C)
        h, hidden, _, enc_caches = encoder_forward(x, None, subdict(params, "encoder."), config, rng,
                                                   training, packing.groups)
        h = packing.unpack(h)                                                              # (B, T, C)
        hidden = tuple(packing.unpack(y) for y in [x] + hidden[:-1]) + (h,) if output_hidden_states else None
        attentions = None
    pooled, pool_cache = None, None
    if "pooler.dense.weight" in params:
        pooled, pool_cache = pooler_forward(h, subdict(params, "pooler."))             # (B, C)
    out = BertModelOutput(h, pooled, hidden, attentions)
    return out, (emb_cache, enc_caches, pool_cache, packing)


def bert_backward(d_last_hidden_state, d_pooler_output, cache, prefix, trainable_layers=None):
    """Gradients of every encoder parameter (full names, with `prefix`); the ids have none (None).
    With `trainable_layers` N, only the top N layers (and the pooler) get gradients: the layers
    below and the embeddings are frozen, and the backward pass stops there."""
    emb_cache, enc_caches, pool_cache, packing = cache
    grads = {}
    dh = d_last_hidden_state
    if d_pooler_output is not None:
        dh_pool, g = pooler_backward(d_pooler_output, pool_cache)
        dh = dh_pool if dh is None else dh + dh_pool
        add_grads(grads, prefix + "pooler.", g)
    if packing is not None:
        dh = packing.pack(dh)                                   # (B, T, C) -> the real tokens (N, C)
    dx, g = encoder_backward(dh, enc_caches, trainable_layers)
    add_grads(grads, prefix + "encoder.", g)
    if trainable_layers is None:
        _, g = embeddings_backward(dx, emb_cache)
        add_grads(grads, prefix + "embeddings.", g)
    return None, grads


def _select_outputs(out, output_hidden_states, output_attentions):
    return (out.hidden_states if output_hidden_states else None,
            out.attentions if output_attentions else None)


# ---- models -------------------------------------------------------------------------------

class BertModel(Module):
    """The bare encoder: `last_hidden_state` (B, T, C) and `pooler_output` (B, C)."""

    def __init__(self, config: BertConfig, seed: int = 0, dtype=np.float32, add_pooling_layer=True):
        super().__init__(config, seed, dtype)
        init_bert_params(self.params, "", config, self.init_rng, self.dtype, add_pooling_layer)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None,
                output_hidden_states=False, output_attentions=False) -> BertModelOutput:
        input_ids, attention_mask, token_type_ids = check_inputs(
            self.config, input_ids, attention_mask, token_type_ids)
        out, cache = bert_forward(self.params, "", self.config, input_ids, attention_mask, token_type_ids,
                                  self.rng, self.training, self._unpad(output_attentions), output_hidden_states)
        self._keep((cache, out.last_hidden_state.shape))
        hidden, att = _select_outputs(out, output_hidden_states, output_attentions)
        return BertModelOutput(out.last_hidden_state, out.pooler_output, hidden, att)

    def backward(self, d_last_hidden_state=None, d_pooler_output=None) -> dict[str, np.ndarray]:
        """Gradients of every parameter given the upstream gradients of the two outputs."""
        cache, shape = self._kept()
        if d_last_hidden_state is None and d_pooler_output is None:
            raise ValueError("BertModel.backward() needs d_last_hidden_state and/or d_pooler_output")
        if d_last_hidden_state is None:
            d_last_hidden_state = np.zeros(shape, dtype=self.dtype)
        _, grads = bert_backward(d_last_hidden_state, d_pooler_output, cache, "")
        return self._zero_fill(grads)


class BertForPreTraining(Module):
    """BertModel + masked-LM head (decoder tied to the word embeddings) + next-sentence head.

    loss = CE(MLM logits, labels; -100 ignored) + CE(NSP logits, next_sentence_label)
    """

    tied_weights = {
        "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }

    def __init__(self, config: BertConfig, seed: int = 0, dtype=np.float32):
        super().__init__(config, seed, dtype)
        init_bert_params(self.params, "bert.", config, self.init_rng, self.dtype)
        init_mlm_head(self.params, config, self.init_rng, self.dtype)
        init_linear(self.params, "cls.seq_relationship", 2, config.hidden_size, config.initializer_range,
                    self.init_rng, self.dtype)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None,
                next_sentence_label=None, output_hidden_states=False, output_attentions=False,
                predict_masked_only=False) -> BertForPreTrainingOutput:
        """With `predict_masked_only` (needs `labels`), the MLM head runs only at the N positions
        whose label is not -100: `prediction_logits` is then (N, V), in row-major order of the
        positions.  The loss is the same; the (B, T, V) projection at every position, wasted
        work in pretraining, is skipped."""
        config, params = self.config, self.params
        input_ids, attention_mask, token_type_ids = check_inputs(
            config, input_ids, attention_mask, token_type_ids)
        if labels is not None:
            labels = check_labels(labels, input_ids.shape, config.vocab_size, "labels")
        if next_sentence_label is not None:
            next_sentence_label = check_next_sentence_label(next_sentence_label, input_ids.shape[0])

        out, bert_cache = bert_forward(params, "bert.", config, input_ids, attention_mask, token_type_ids,
                                       self.rng, self.training, self._unpad(output_attentions),
                                       output_hidden_states)
        logits, mlm_loss, mlm_cache = masked_lm_forward(out.last_hidden_state, labels, mlm_head_params(params),
                                                        config, predict_masked_only)   # (B, T, V) or (N, V)
        nsp_logits, nsp_cache = nsp_head_forward(out.pooler_output,
                                                 subdict(params, "cls.seq_relationship."))  # (B, 2)
        nsp_loss = nsp_loss_cache = loss = None
        if next_sentence_label is not None:
            nsp_loss, nsp_loss_cache = ops.cross_entropy_forward(nsp_logits, next_sentence_label)
        if mlm_loss is not None or nsp_loss is not None:
            loss = (mlm_loss or 0.0) + (nsp_loss or 0.0)
        self._keep((bert_cache, mlm_cache if mlm_loss is not None else None, nsp_cache, nsp_loss_cache,
                    out.last_hidden_state.shape))
        hidden, att = _select_outputs(out, output_hidden_states, output_attentions)
        return BertForPreTrainingOutput(loss, logits, nsp_logits, hidden, att, mlm_loss, nsp_loss)

    def backward(self, mlm_scale=1.0, nsp_scale=1.0) -> dict[str, np.ndarray]:
        """Gradient of the last forward's loss for every parameter, keyed by HF name; of
        mlm_scale * MLM loss + nsp_scale * NSP loss when scales are given (how micro-batches of a
        larger batch weigh their share: masked tokens for MLM, sentences for NSP)."""
        bert_cache, mlm_cache, nsp_cache, nsp_loss_cache, h_shape = self._kept(
            "a forward call with labels and/or next_sentence_label")
        if mlm_cache is None and nsp_loss_cache is None:
            raise RuntimeError("backward() needs a forward call with labels and/or "
                               "next_sentence_label first (there is no loss to differentiate)")
        grads = {}
        dh = np.zeros(h_shape, dtype=self.dtype)                                         # (B, T, C)
        dpooled = None
        if mlm_cache is not None:
            dh, g = masked_lm_backward(mlm_cache, mlm_scale)
            add_grads(grads, "bert.embeddings.word_embeddings.", {"weight": g.pop("decoder.weight")})
            add_grads(grads, "cls.predictions.", g)
        if nsp_loss_cache is not None:
            dnsp, _ = ops.cross_entropy_backward(nsp_scale, nsp_loss_cache)
            dpooled, g = nsp_head_backward(dnsp, nsp_cache)
            add_grads(grads, "cls.seq_relationship.", g)
        _, encoder_grads = bert_backward(dh, dpooled, bert_cache, "bert.")
        add_grads(grads, "", encoder_grads)
        return self._zero_fill(grads)


class BertForMaskedLM(Module):
    """BertModel without a pooler + masked-LM head (decoder tied to the word embeddings).

    loss = CE(logits, labels; -100 ignored)
    """

    tied_weights = BertForPreTraining.tied_weights

    def __init__(self, config: BertConfig, seed: int = 0, dtype=np.float32):
        super().__init__(config, seed, dtype)
        init_bert_params(self.params, "bert.", config, self.init_rng, self.dtype, add_pooling_layer=False)
        init_mlm_head(self.params, config, self.init_rng, self.dtype)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None,
                output_hidden_states=False, output_attentions=False,
                predict_masked_only=False) -> MaskedLMOutput:
        """`predict_masked_only` as in BertForPreTraining: logits (N, V) at the labelled positions."""
        config = self.config
        input_ids, attention_mask, token_type_ids = check_inputs(config, input_ids, attention_mask, token_type_ids)
        if labels is not None:
            labels = check_labels(labels, input_ids.shape, config.vocab_size, "labels")
        out, bert_cache = bert_forward(self.params, "bert.", config, input_ids, attention_mask, token_type_ids,
                                       self.rng, self.training, self._unpad(output_attentions),
                                       output_hidden_states)
        logits, loss, mlm_cache = masked_lm_forward(out.last_hidden_state, labels, mlm_head_params(self.params),
                                                    config, predict_masked_only)       # (B, T, V) or (N, V)
        self._keep((bert_cache, mlm_cache if loss is not None else None))
        hidden, att = _select_outputs(out, output_hidden_states, output_attentions)
        return MaskedLMOutput(loss, logits, hidden, att)

    def backward(self, mlm_scale=1.0) -> dict[str, np.ndarray]:
        """Gradient of the last forward's loss (times `mlm_scale`) for every parameter, keyed by HF name."""
        bert_cache, mlm_cache = self._kept("a forward call with labels")
        if mlm_cache is None:
            raise RuntimeError("backward() needs a forward call with labels first "
                               "(there is no loss to differentiate)")
        grads = {}
        dh, g = masked_lm_backward(mlm_cache, mlm_scale)                                 # (B, T, C)
        add_grads(grads, "bert.embeddings.word_embeddings.", {"weight": g.pop("decoder.weight")})
        add_grads(grads, "cls.predictions.", g)
        _, encoder_grads = bert_backward(dh, None, bert_cache, "bert.")
        add_grads(grads, "", encoder_grads)
        return self._zero_fill(grads)
