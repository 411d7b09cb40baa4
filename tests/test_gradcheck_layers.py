"""Every layer's hand-written backward against float64 finite differences.

Each check draws a random upstream gradient dy (an all-ones dy can hide a wrong dx: LayerNorm's
is then zero) and differentiates L = sum(forward(...) * dy) with respect to every input and
every parameter.
"""

import numpy as np
import pytest
from helpers import B, C, H, I, T, V, assert_grad_matches, tiny_config

from minibert import activations, layers
from minibert.attention import attention_mask_bias, self_attention_backward, self_attention_forward
from minibert.embeddings import embeddings_backward, embeddings_forward
from minibert.encoder import (add_norm_backward, add_norm_forward, encoder_backward,
                              encoder_forward, encoder_layer_backward, encoder_layer_forward,
                              pooler_backward, pooler_forward)
from minibert.heads import mlm_head_backward, mlm_head_forward
from minibert.losses import cross_entropy_backward, cross_entropy_forward
from minibert.modeling import init_bert_params
from minibert.params import subdict


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def randn(rng, *shape):
    return rng.standard_normal(shape)


def check_layer(forward, backward, arrays, rng):
    """forward(**arrays) -> y;  backward(dy) -> dict of gradients named like `arrays`."""
    y = forward()
    dy = rng.standard_normal(y.shape)
    grads = backward(dy)
    assert set(grads) == set(arrays), f"gradients for {sorted(grads)}, expected {sorted(arrays)}"
    for name, x in arrays.items():
        assert_grad_matches(grads[name], lambda: float((forward() * dy).sum()), x, name)


def test_linear(rng):
    x, w, b = randn(rng, B, T, C), randn(rng, I, C), randn(rng, I)
    cache = {}

    def fwd():
        y, cache["c"] = layers.linear_forward(x, w, b)
        return y

    def bwd(dy):
        dx, g = layers.linear_backward(dy, cache["c"])
        return {"x": dx, "w": g["weight"], "b": g["bias"]}

    check_layer(fwd, bwd, {"x": x, "w": w, "b": b}, rng)


def test_layer_norm(rng):
    x, w, b = randn(rng, B, T, C) * 3 + 1, randn(rng, C), randn(rng, C)
    cache = {}

    def fwd():
        y, cache["c"] = layers.layer_norm_forward(x, w, b, 1e-12)
        return y

    def bwd(dy):
        dx, g = layers.layer_norm_backward(dy, cache["c"])
        return {"x": dx, "w": g["weight"], "b": g["bias"]}

    check_layer(fwd, bwd, {"x": x, "w": w, "b": b}, rng)


def test_layer_norm_of_a_sum_with_the_residual(rng):
    """layer_norm_forward(x, ..., residual=r) is LayerNorm(x + r): both terms get the gradient
    of the sum, which the backward returns once."""
    x, r, w, b = randn(rng, B, T, C) * 3 + 1, randn(rng, B, T, C), randn(rng, C), randn(rng, C)
    cache = {}

    def fwd():
        y, cache["c"] = layers.layer_norm_forward(x, w, b, 1e-12, residual=r)
        return y

    def bwd(dy):
        dsum, g = layers.layer_norm_backward(dy, cache["c"])
        return {"x": dsum, "r": dsum, "w": g["weight"], "b": g["bias"]}

    check_layer(fwd, bwd, {"x": x, "r": r, "w": w, "b": b}, rng)
    plain, _ = layers.layer_norm_forward(x + r, w, b, 1e-12)
    assert np.array_equal(fwd(), plain)


@pytest.mark.parametrize("padding_idx", [None, 0])
def test_embedding_scatter_add(rng, padding_idx):
    ids = np.array([[0, 3, 3, 7, 0], [3, 1, 0, 7, 7]])         # repeated ids must add up
    w = randn(rng, 9, C)
    cache = {}

    def fwd():
        y, cache["c"] = layers.embedding_forward(ids, w)
        return y

    def bwd(dy):
        return {"w": layers.embedding_backward(dy, cache["c"], padding_idx)["weight"]}

    if padding_idx is None:
        check_layer(fwd, bwd, {"w": w}, rng)
    else:   # the padding row gets no gradient (torch.nn.Embedding(padding_idx=0)); others as usual
        y = fwd()
        dy = rng.standard_normal(y.shape)
        g = bwd(dy)["w"]
        assert np.all(g[0] == 0.0)
        expected = np.zeros_like(w)
        np.add.at(expected, ids.reshape(-1), dy.reshape(-1, C))
        np.testing.assert_allclose(g[1:], expected[1:], rtol=1e-12)


@pytest.mark.parametrize("name", ["gelu", "gelu_new", "relu"])
def test_activation(rng, name):
    fwd_fn, bwd_fn = activations.ACT2FN[name]
    x = randn(rng, B, T, I) * 2
    cache = {}

    def fwd():
        y, cache["c"] = fwd_fn(x)
        return y

    check_layer(fwd, lambda dy: {"x": bwd_fn(dy, cache["c"])}, {"x": x}, rng)


@pytest.mark.parametrize("name", ["gelu", "gelu_new", "relu", "tanh"])
def test_activation_of_a_biased_input(rng, name):
    """act_forward(x, bias=b) is act(x + b), with x turned into x + b in place (it is the fresh
    output of a linear layer called without its bias).  The bias's gradient is dx summed over
    the rows, the sum linear_backward returns."""
    fwd_fn, bwd_fn = activations.ACT2FN[name] if name != "tanh" else (activations.tanh_forward,
                                                                     activations.tanh_backward)
    x, b = randn(rng, B, T, I) * 2, randn(rng, I)
    cache = {}

    def fwd():
        y, cache["c"] = fwd_fn(x.copy(), bias=b)
        return y

    def bwd(dy):
        dx = bwd_fn(dy, cache["c"])
        return {"x": dx, "b": dx.sum((0, 1))}

    check_layer(fwd, bwd, {"x": x, "b": b}, rng)
    shifted = x.copy()
    y, _ = fwd_fn(shifted, bias=b)
    assert np.array_equal(shifted, x + b)
    assert np.array_equal(y, fwd_fn(x + b)[0])


def test_tanh(rng):
    x = randn(rng, B, C)
    cache = {}

    def fwd():
        y, cache["c"] = activations.tanh_forward(x)
        return y

    check_layer(fwd, lambda dy: {"x": activations.tanh_backward(dy, cache["c"])}, {"x": x}, rng)


def test_softmax(rng):
    x = randn(rng, B, H, T, T) * 3
    cache = {}

    def fwd():
        y, cache["c"] = layers.softmax_forward(x)
        return y

    check_layer(fwd, lambda dy: {"x": layers.softmax_backward(dy, cache["c"])}, {"x": x}, rng)


@pytest.mark.filterwarnings("ignore:invalid value encountered")     # the inf row: inf - inf, as torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_rows_far_below_their_matrix_max(dtype):
    """Softmax shifts each (R, K) matrix by its max, and redoes with the row's own max a row whose
    exps underflow.  Against the textbook per-row shift in float64: rows spread over 500 units, a
    row entirely masked (the dtype's minimum everywhere), rows of +inf and NaN, huge values."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6, 7)) * 4
    x[0, 1] -= 200.0                       # exps underflow against the matrix's max
    x[0, 2] -= 60.0                        # small but normal: kept without a redo
    x[1, 3] = np.finfo(dtype).min          # every key masked
    x[1, 4, 2] = np.inf
    x[1, 5, 0] = np.nan
    x[2] *= 1e3
    x[2, :, 1:] -= 500.0
    x = x.astype(dtype)
    ours, _ = layers.softmax_forward(x)
    x64 = x.astype(np.float64)
    with np.errstate(invalid="ignore"):
        e = np.exp(x64 - x64.max(-1, keepdims=True))
        truth = e / e.sum(-1, keepdims=True)
    assert ours.dtype == dtype
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(truth))
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(ours, truth, rtol=tol, atol=tol * 1e-3, equal_nan=True)
    np.testing.assert_allclose(ours[1, 3], 1.0 / 7)                        # uniform, as torch


def test_dropout_backward_reuses_mask(rng):
    x = randn(rng, B, T, C)
    cache = {}

    def fwd():   # the same seed every call: the same mask, so the function is differentiable
        y, cache["c"] = layers.dropout_forward(x, 0.3, np.random.default_rng(7), training=True)
        return y

    check_layer(fwd, lambda dy: {"x": layers.dropout_backward(dy, cache["c"])}, {"x": x}, rng)


def test_cross_entropy_with_ignored_rows(rng):
    logits = randn(rng, 7, V)
    labels = np.array([3, -100, 0, 36, -100, 5, 5])
    cache = {}

    def loss():
        value, cache["c"] = cross_entropy_forward(logits, labels)
        return value

    loss()
    dlogits = cross_entropy_backward(cache["c"])
    assert np.all(dlogits[labels == -100] == 0.0)
    assert_grad_matches(dlogits, loss, logits, "logits")


def _layer_params(config, rng, prefix):
    params = {}
    init_bert_params(params, "", config, np.random.default_rng(0), np.float64)
    for v in params.values():          # non-trivial values everywhere (LayerNorm gamma 1, beta 0 hide bugs)
        v += rng.standard_normal(v.shape) * 0.3
    return subdict(params, prefix)


def _mask_bias():
    mask = np.ones((B, T), dtype=np.int64)
    mask[1, 3:] = 0                    # the second sequence has two padding positions
    return attention_mask_bias(mask, np.float64)


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_self_attention(rng, dropout):
    config = tiny_config()
    p = _layer_params(config, rng, "encoder.layer.0.attention.self.")
    x = randn(rng, B, T, C)
    mask_bias = _mask_bias()
    cache = {}

    def fwd():
        ctx, probs, cache["c"] = self_attention_forward(x, mask_bias, p, H, dropout,
                                                        np.random.default_rng(3), training=True)
        return ctx

    def bwd(dy):
        dx, g = self_attention_backward(dy, cache["c"], H)
        return {"x": dx, **g}

    check_layer(fwd, bwd, {"x": x, **p}, rng)
    # The key bias adds the same q.b_k to every score in a row; softmax ignores that shift,
    # so its gradient is zero in exact arithmetic.
    assert np.abs(bwd(rng.standard_normal((B, T, C)))["key.bias"]).max() < 1e-12


def test_add_norm(rng):
    config = tiny_config(hidden_dropout_prob=0.1)
    p = _layer_params(config, rng, "encoder.layer.0.output.")
    h, residual = randn(rng, B, T, I), randn(rng, B, T, C)
    cache = {}

    def fwd():
        y, cache["c"] = add_norm_forward(h, residual, p, config, np.random.default_rng(5), True, 0.1)
        return y

    def bwd(dy):
        dh, dres, g = add_norm_backward(dy, cache["c"])
        return {"h": dh, "residual": dres, **g}

    check_layer(fwd, bwd, {"h": h, "residual": residual, **p}, rng)


@pytest.mark.parametrize("act", ["gelu", "relu", "gelu_new"])
def test_encoder_layer(rng, act):
    config = tiny_config(hidden_act=act, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    p = _layer_params(config, rng, "encoder.layer.1.")
    x, mask_bias = randn(rng, B, T, C), _mask_bias()
    cache = {}

    def fwd():
        y, probs, cache["c"] = encoder_layer_forward(x, mask_bias, p, config,
                                                     np.random.default_rng(11), True)
        return y

    def bwd(dy):
        dx, g = encoder_layer_backward(dy, cache["c"])
        return {"x": dx, **g}

    check_layer(fwd, bwd, {"x": x, **p}, rng)


def test_encoder_stack(rng):
    config = tiny_config()
    p = _layer_params(config, rng, "encoder.")
    x, mask_bias = randn(rng, B, T, C), _mask_bias()
    cache = {}

    def fwd():
        y, hidden, att, cache["c"] = encoder_forward(x, mask_bias, p, config, None, False)
        return y

    def bwd(dy):
        dx, g = encoder_backward(dy, cache["c"])
        return {"x": dx, **g}

    check_layer(fwd, bwd, {"x": x, **p}, rng)


def test_pooler(rng):
    config = tiny_config()
    p = _layer_params(config, rng, "pooler.")
    h = randn(rng, B, T, C)
    cache = {}

    def fwd():
        y, cache["c"] = pooler_forward(h, p)
        return y

    def bwd(dy):
        dh, g = pooler_backward(dy, cache["c"])
        return {"h": dh, **g}

    check_layer(fwd, bwd, {"h": h, **p}, rng)


def test_embeddings(rng):
    config = tiny_config(hidden_dropout_prob=0.1)
    p = _layer_params(config, rng, "embeddings.")
    ids = rng.integers(0, V, (B, T))
    ids[0, :2] = 5                                  # a repeated id
    ids[1, -1] = config.pad_token_id                # a padding id: its row gets no gradient
    types = np.array([[0, 0, 1, 1, 1], [0, 0, 0, 1, 1]])
    cache = {}

    def fwd():
        y, cache["c"] = embeddings_forward(ids, types, p, config, np.random.default_rng(2), True)
        return y

    def bwd(dy):
        return embeddings_backward(dy, cache["c"])

    # The padding row of the word embeddings is excluded from the finite-difference check by
    # design (torch does the same); check it is zero, and the rest against finite differences.
    y = fwd()
    dy = rng.standard_normal(y.shape)
    grads = bwd(dy)
    assert np.all(grads["word_embeddings.weight"][config.pad_token_id] == 0.0)
    for name, x in p.items():
        analytic = grads[name]
        loss = lambda: float((fwd() * dy).sum())   # noqa: E731
        if name == "word_embeddings.weight":
            numeric_rows = np.arange(V) != config.pad_token_id
            sub = x[numeric_rows]                    # a copy; each evaluation writes it back

            def loss_rows():
                x[numeric_rows] = sub
                return loss()

            assert_grad_matches(analytic[numeric_rows], loss_rows, sub, name)
        else:
            assert_grad_matches(analytic, loss, x, name)


def test_mlm_head(rng):
    config = tiny_config()
    p = {"transform.dense.weight": randn(rng, C, C), "transform.dense.bias": randn(rng, C),
         "transform.LayerNorm.weight": randn(rng, C), "transform.LayerNorm.bias": randn(rng, C),
         "bias": randn(rng, V)}
    word_embeddings = randn(rng, V, C)
    h = randn(rng, B, T, C)
    cache = {}

    def fwd():
        y, cache["c"] = mlm_head_forward(h, p, word_embeddings, config)
        return y

    def bwd(dy):
        dh, g, dwe = mlm_head_backward(dy, cache["c"])
        return {"h": dh, "word_embeddings": dwe, **g}

    check_layer(fwd, bwd, {"h": h, "word_embeddings": word_embeddings, **p}, rng)


@pytest.mark.parametrize("num_labels", [1, 4], ids=["mse", "cross-entropy"])
def test_sequence_classification_loss(rng, num_labels):
    from minibert.tasks import sequence_loss_backward, sequence_loss_forward
    logits = randn(rng, 6, num_labels)
    labels = rng.standard_normal(6) if num_labels == 1 else rng.integers(0, num_labels, 6)
    cache = {}

    def loss():
        value, cache["c"] = sequence_loss_forward(logits, labels)
        return value

    loss()
    assert_grad_matches(sequence_loss_backward(cache["c"]), loss, logits, "logits")
