"""Every layer's hand-written backward against float64 finite differences, on both tiers: the
textbook layers (minibert.layers) and the fast kernels (minibert.kernels); the model's building
blocks on both through minibert.ops (the `tier` fixture).

Each check draws a random upstream gradient dy (an all-ones dy can hide a wrong dx: LayerNorm's
is then zero) and differentiates L = sum(forward(...) * dy) with respect to every input and
every parameter.  Tolerance: helpers.assert_grad_matches (1e-6 relative).
"""

import numpy as np
import pytest
from helpers import B, C, H, I, T, V, assert_grad_matches, tiny_config

from minibert import kernels, layers
from minibert.layers.activations import ACTIVATIONS
from minibert.layers.attention import attention_mask_bias
from minibert.models.bert import init_bert_params
from minibert.models.bert_tasks import sequence_loss_backward, sequence_loss_forward
from minibert.models.embeddings import embeddings_backward, embeddings_forward
from minibert.models.encoder import (encoder_backward, encoder_forward, encoder_layer_backward,
                                     encoder_layer_forward, pooler_backward, pooler_forward)
from minibert.models.heads import mlm_head_backward, mlm_head_forward
from minibert.models.params import subdict

TIERS = pytest.mark.parametrize("F", [layers, kernels], ids=["reference", "fast"])


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def randn(rng, *shape):
    return rng.standard_normal(shape)


def check_layer(forward, backward, arrays, rng):
    """forward() -> y;  backward(dy) -> dict of gradients named like `arrays` (which forward reads)."""
    y = forward()
    dy = rng.standard_normal(y.shape)
    grads = backward(dy)
    assert set(grads) == set(arrays), f"gradients for {sorted(grads)}, expected {sorted(arrays)}"
    for name, x in arrays.items():
        assert_grad_matches(grads[name], lambda: float((forward() * dy).sum()), x, name)


def check_pair(forward, backward, inputs, params, rng):
    """A layer pair of the convention y, cache = forward(*inputs, **params); dx, grads = backward(dy, cache),
    with one input whose gradient is dx."""
    cache = {}

    def fwd():
        y, cache["c"] = forward(*inputs.values(), **params)
        return y

    def bwd(dy):
        dx, grads = backward(dy, cache["c"])
        return {next(iter(inputs)): dx, **grads}

    check_layer(fwd, bwd, {**inputs, **params}, rng)


@TIERS
def test_linear(F, rng):
    check_pair(F.linear_forward, F.linear_backward, {"x": randn(rng, B, T, C)},
               {"weight": randn(rng, I, C), "bias": randn(rng, I)}, rng)


@TIERS
def test_layer_norm(F, rng):
    check_pair(lambda x, weight, bias: F.layer_norm_forward(x, weight, bias, 1e-12), F.layer_norm_backward,
               {"x": randn(rng, B, T, C) * 3 + 1}, {"weight": randn(rng, C), "bias": randn(rng, C)}, rng)


@TIERS
def test_add_layer_norm(F, rng):
    """LayerNorm(x + residual): both terms get the gradient of the sum, returned once."""
    residual = randn(rng, B, T, C)
    check_pair(lambda x, weight, bias: F.add_layer_norm_forward(x, residual, weight, bias, 1e-12),
               F.add_layer_norm_backward, {"x": randn(rng, B, T, C) * 3 + 1},
               {"weight": randn(rng, C), "bias": randn(rng, C)}, rng)
    x, w, b = randn(rng, B, T, C), randn(rng, C), randn(rng, C)
    check_pair(lambda residual: F.add_layer_norm_forward(x, residual, w, b, 1e-12),
               lambda dy, cache: (F.add_layer_norm_backward(dy, cache)[0], {}), {"residual": residual}, {}, rng)


@TIERS
@pytest.mark.parametrize("padding_idx", [None, 0], ids=["no-padding", "padding-0"])
def test_embedding_scatter_add(F, rng, padding_idx):
    ids = rng.integers(0, V, (B, T))
    ids[0, :3] = 4                                   # a repeated id: gradients must add up
    ids[1, 0] = 0
    w = randn(rng, V, C)
    cache = {}

    def fwd():
        y, cache["c"] = F.embedding_forward(ids, w, padding_idx)
        return y

    def bwd(dy):
        dx, g = F.embedding_backward(dy, cache["c"])
        assert dx is None
        return {"w": g["weight"]}

    if padding_idx is None:
        check_layer(fwd, bwd, {"w": w}, rng)
    else:   # the padding row gets no gradient (torch.nn.Embedding(padding_idx=0)); others as usual
        y = fwd()
        dy = rng.standard_normal(y.shape)
        g = bwd(dy)["w"]
        assert np.all(g[0] == 0.0)
        expected = np.zeros_like(w)
        for (b, t), i in np.ndenumerate(ids):
            expected[i] += dy[b, t]
        np.testing.assert_allclose(g[1:], expected[1:], rtol=1e-12)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation(rng, name):
    forward, backward = ACTIVATIONS[name]
    check_pair(forward, backward, {"x": randn(rng, B, T, I) * 2}, {}, rng)


def test_fast_gelu(rng):
    check_pair(kernels.gelu_forward, kernels.gelu_backward, {"x": randn(rng, B, T, I) * 2}, {}, rng)


@TIERS
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_linear_activation(F, rng, activation):
    x = randn(rng, B, T, C)
    check_pair(lambda x, weight, bias: F.linear_activation_forward(x, weight, bias, activation),
               F.linear_activation_backward, {"x": x}, {"weight": randn(rng, I, C), "bias": randn(rng, I)}, rng)
    before = x.copy()
    F.linear_activation_forward(x, randn(rng, I, C), randn(rng, I), activation)
    assert np.array_equal(x, before), "the input was changed"


@pytest.mark.parametrize("F", [layers, kernels], ids=["reference", "fast"])
def test_softmax(F, rng):
    check_pair(F.softmax_forward, F.softmax_backward, {"x": randn(rng, B, H, T, T) * 3}, {}, rng)


def test_dropout_backward_reuses_mask(rng):
    x = randn(rng, B, T, C)

    def forward(x):   # the same seed every call: the same mask, so the function is differentiable
        return layers.dropout_forward(x, 0.3, np.random.default_rng(7), training=True)

    check_pair(forward, layers.dropout_backward, {"x": x}, {}, rng)
    y, mask = forward(x)
    assert 0.5 < (mask == 0).mean() / 0.3 < 1.5 and np.array_equal(y[mask == 0], np.zeros((mask == 0).sum()))
    assert layers.dropout_forward(x, 0.3, None, training=False)[0] is x


@TIERS
def test_cross_entropy_with_ignored_rows(F, rng):
    logits = randn(rng, 7, V)
    labels = np.array([3, -100, 0, 36, -100, 5, 5])
    cache = {}

    def loss():
        value, cache["c"] = F.cross_entropy_forward(logits, labels)
        return value

    loss()
    dlogits, grads = F.cross_entropy_backward(1.0, cache["c"])
    assert grads == {} and np.all(dlogits[labels == -100] == 0.0)
    assert_grad_matches(dlogits, loss, logits, "logits")
    everything_ignored = np.full(7, -100)
    value, cache = F.cross_entropy_forward(logits, everything_ignored)
    assert value == 0.0 and not F.cross_entropy_backward(1.0, cache)[0].any()


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


@TIERS
@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_self_attention(F, rng, dropout):
    p = _layer_params(tiny_config(), rng, "encoder.layer.0.attention.self.")
    mask_bias = _mask_bias()

    def forward(x, **params):
        return F.self_attention_forward(x, mask_bias, params, H, dropout, np.random.default_rng(3), training=True)

    check_pair(forward, F.self_attention_backward, {"x": randn(rng, B, T, C)}, p, rng)
    # The key bias adds the same q.b_k to every score in a row; softmax ignores that shift,
    # so its gradient is zero in exact arithmetic.
    y, cache = forward(randn(rng, B, T, C), **p)
    _, g = F.self_attention_backward(rng.standard_normal(y.shape), cache)
    assert np.abs(g["key.bias"]).max() < 1e-12
    assert cache["probs"].shape == (B, H, T, T) and np.all(cache["probs"][1, :, :, 3:] == 0)


@TIERS
@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_packed_self_attention(F, rng, dropout):
    """Attention on packed rows (models/packing.py): 2 sequences of 3 tokens, then 1 of 5."""
    p = _layer_params(tiny_config(), rng, "encoder.layer.0.attention.self.")
    groups = ((0, 2, 3), (6, 1, 5))

    def forward(x, **params):
        return F.packed_self_attention_forward(x, groups, params, H, dropout, np.random.default_rng(3),
                                               training=True)

    check_pair(forward, F.packed_self_attention_backward, {"x": randn(rng, 11, C)}, p, rng)


@pytest.mark.parametrize("act", ["gelu", "relu", "gelu_new"])
def test_encoder_layer(rng, act, tier):
    config = tiny_config(hidden_act=act, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    p = _layer_params(config, rng, "encoder.layer.1.")
    mask_bias = _mask_bias()

    def forward(x, **params):
        return encoder_layer_forward(x, mask_bias, params, config, np.random.default_rng(11), True)

    check_pair(forward, encoder_layer_backward, {"x": randn(rng, B, T, C)}, p, rng)


def test_encoder_stack(rng, tier):
    config = tiny_config()
    p = _layer_params(config, rng, "encoder.")
    mask_bias = _mask_bias()

    def forward(x, **params):
        y, hidden, att, caches = encoder_forward(x, mask_bias, params, config, None, False)
        return y, caches

    check_pair(forward, encoder_backward, {"x": randn(rng, B, T, C)}, p, rng)


def test_pooler(rng, tier):
    p = _layer_params(tiny_config(), rng, "pooler.")
    check_pair(lambda h, **params: pooler_forward(h, params), pooler_backward, {"h": randn(rng, B, T, C)}, p, rng)


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_embeddings(rng, tier, packed):
    config = tiny_config(hidden_dropout_prob=0.1)
    p = _layer_params(config, rng, "embeddings.")
    ids = rng.integers(0, V, (B, T))
    ids[0, :2] = 5                                  # a repeated id
    ids[1, -1] = config.pad_token_id                # a padding id: its row gets no gradient
    types = np.array([[0, 0, 1, 1, 1], [0, 0, 0, 1, 1]])
    position_ids = None
    if packed:         # the rows of a packed batch (models/packing.py): (N,) ids, each with its position
        position_ids = np.tile(np.arange(T), B)[1:]
        ids, types = ids.reshape(-1)[1:], types.reshape(-1)[1:]

    def fwd():
        y, cache = embeddings_forward(ids, types, p, config, np.random.default_rng(2), True, position_ids)
        fwd.cache = cache
        return y

    # The padding row of the word embeddings is excluded from the finite-difference check by
    # design (torch does the same); check it is zero, and the rest against finite differences.
    y = fwd()
    dy = rng.standard_normal(y.shape)
    dx, grads = embeddings_backward(dy, fwd.cache)
    assert dx is None and set(grads) == set(p)
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


def test_mlm_head(rng, tier):
    """The decoder matrix is the word-embedding table, read and differentiated as `decoder.weight`."""
    config = tiny_config()
    p = {"transform.dense.weight": randn(rng, C, C), "transform.dense.bias": randn(rng, C),
         "transform.LayerNorm.weight": randn(rng, C), "transform.LayerNorm.bias": randn(rng, C),
         "bias": randn(rng, V), "decoder.weight": randn(rng, V, C)}
    check_pair(lambda h, **params: mlm_head_forward(h, params, config), mlm_head_backward,
               {"h": randn(rng, B, T, C)}, p, rng)


@pytest.mark.parametrize("num_labels", [1, 4], ids=["mse", "cross-entropy"])
def test_sequence_classification_loss(rng, num_labels, tier):
    logits = randn(rng, 6, num_labels)
    labels = rng.standard_normal(6) if num_labels == 1 else rng.integers(0, num_labels, 6)
    cache = {}

    def loss():
        value, cache["c"] = sequence_loss_forward(logits, labels)
        return value

    loss()
    dlogits, _ = sequence_loss_backward(1.0, cache["c"])
    assert_grad_matches(dlogits, loss, logits, "logits")
