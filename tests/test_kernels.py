"""Each fast kernel (minibert.kernels) against the textbook layer it stands for (minibert.layers),
forward and backward, on random inputs: odd shapes and single rows, masked and fully masked rows,
rows of inf and NaN, rows far below their matrix's max.

Tolerances, relative to the largest value of each tensor (NaN where the textbook has NaN):
  float64: 1e-12 (the same arithmetic in another order: products flattened, sums blocked);
  float32: 2e-6 for the elementwise layers (a few roundings), 1e-5 where a matrix product or a
  long sum is reordered (attention, linear layers, the loss over a vocabulary).  LayerNorm in
  float32 loses more on a row whose mean is far from zero against its spread (x - mean cancels,
  in any float32 LayerNorm): there a row's bound grows by eps32 * C * |mean| / std.
"""

import numpy as np
import pytest

from minibert import kernels, layers
from minibert.layers.activations import ACTIVATIONS

DTYPES = pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
SHAPES = pytest.mark.parametrize("shape", [(1, 1, 8), (2, 7, 13), (3, 5, 64)], ids=["one-row", "odd", "wide"])


def tol(dtype, product=False):
    return 1e-12 if dtype == np.float64 else (1e-5 if product else 2e-6)


def assert_equal_within(fast, ref, rtol, what=""):
    """Recursively over dicts / tuples / arrays / floats."""
    if isinstance(ref, dict):
        assert set(fast) == set(ref), what
        for k in ref:
            assert_equal_within(fast[k], ref[k], rtol, f"{what}[{k}]")
        return
    if isinstance(ref, (tuple, list)):
        for i, (a, b) in enumerate(zip(fast, ref)):
            assert_equal_within(a, b, rtol, f"{what}[{i}]")
        return
    if ref is None:
        assert fast is None, what
        return
    fast, ref = np.asarray(fast), np.asarray(ref)
    assert fast.shape == ref.shape and fast.dtype == ref.dtype, f"{what}: {fast.shape} {fast.dtype} vs {ref.shape} {ref.dtype}"
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(ref), err_msg=f"{what}: NaN positions")
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(fast[~finite & ~np.isnan(ref)], ref[~finite & ~np.isnan(ref)], err_msg=what)
    scale = np.abs(ref[finite]).max() if finite.any() else 1.0
    err = np.abs(fast[finite] - ref[finite]).max() if finite.any() else 0.0
    assert err <= rtol * max(scale, np.finfo(ref.dtype).tiny), f"{what}: error {err:.2e} > {rtol:.0e} x {scale:.2e}"


def both(name, *args, **kwargs):
    """(fast, reference) results of one op on copies of the same arguments; neither may change
    its inputs (the layers are pure functions)."""
    results = []
    for tier in (kernels, layers):
        copies = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        results.append(getattr(tier, name)(*copies, **kwargs))
        for a, c in zip(args, copies):
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(c, a, err_msg=f"{tier.__name__}.{name} changed its input")
    return tuple(results)


def randn(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


@DTYPES
@SHAPES
def test_linear(dtype, shape):
    rng = np.random.default_rng(0)
    x, w, b = randn(rng, shape, dtype), randn(rng, (11, shape[-1]), dtype), randn(rng, (11,), dtype)
    (y_f, c_f), (y_r, c_r) = both("linear_forward", x, w, b)
    assert_equal_within(y_f, y_r, tol(dtype, True), "y")
    dy = randn(rng, y_r.shape, dtype)
    assert_equal_within(kernels.linear_backward(dy, c_f), layers.linear_backward(dy, c_r), tol(dtype, True), "grads")


@DTYPES
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_linear_activation(dtype, activation):
    rng = np.random.default_rng(1)
    x, w, b = randn(rng, (2, 7, 13), dtype, 2), randn(rng, (17, 13), dtype), randn(rng, (17,), dtype)
    (y_f, c_f), (y_r, c_r) = both("linear_activation_forward", x, w, b, activation)
    assert_equal_within(y_f, y_r, tol(dtype, True), "y")
    dy = randn(rng, y_r.shape, dtype)
    assert_equal_within(kernels.linear_activation_backward(dy, c_f), layers.linear_activation_backward(dy, c_r),
                        tol(dtype, True), "grads")


@DTYPES
def test_gelu(dtype):
    """The float32 polynomial against scipy's erf: within 2 eps32 max(|x|, 1) (see the bound in
    test_against_transformers), which the relative 2e-6 covers on this range."""
    rng = np.random.default_rng(2)
    x = randn(rng, (9, 31), dtype, 4)
    x[0, :5] = [0.0, -0.0, 30.0, -30.0, 1e-30]
    (y_f, c_f), (y_r, c_r) = both("gelu_forward", x)
    assert_equal_within(y_f, y_r, tol(dtype), "y")
    dy = randn(rng, x.shape, dtype)
    assert_equal_within(kernels.gelu_backward(dy, c_f), layers.gelu_backward(dy, c_r), 2 * tol(dtype), "dx")


def special_rows(x):
    """Rows of the kinds a kernel may get wrong: constant, far below the rest, huge, inf, NaN."""
    x[0, 0] = 3.0                                   # constant row: variance 0
    if x.shape[0] > 1:
        x[1, 1] -= 300.0                            # far below the rest of its matrix
        x[1, 2] *= 1e4
        x[1, 3, 0] = np.inf
        x[1, 4, 1] = np.nan
    return x


@DTYPES
@SHAPES
@pytest.mark.filterwarnings("ignore:invalid value encountered")     # inf - inf, as in the textbook
def test_layer_norm_and_add_layer_norm(dtype, shape):
    rng = np.random.default_rng(3)
    x = special_rows(randn(rng, shape, dtype, 3)) if shape[1] >= 5 else randn(rng, shape, dtype)
    residual, w, b = randn(rng, shape, dtype), randn(rng, shape[-1:], dtype), randn(rng, shape[-1:], dtype)
    dy = randn(rng, shape, dtype)
    (y_f, c_f), (y_r, c_r) = both("layer_norm_forward", x, w, b, 1e-12)
    assert_rows_within(y_f, y_r, x, "layer_norm")
    dx_f, g_f = kernels.layer_norm_backward(dy, c_f)
    dx_r, g_r = layers.layer_norm_backward(dy, c_r)
    assert_rows_within(dx_f, dx_r, x, "dx")
    if np.isfinite(x).all():                        # one non-finite row makes every sum over rows NaN
        assert_equal_within(g_f, g_r, tol(dtype, True), "grads")
    (y_f, c_f), (y_r, c_r) = both("add_layer_norm_forward", x, residual, w, b, 1e-12)
    assert_rows_within(y_f, y_r, x + residual, "add_layer_norm")
    assert_rows_within(kernels.add_layer_norm_backward(dy, c_f)[0], layers.add_layer_norm_backward(dy, c_r)[0],
                       x + residual, "dx")


def assert_rows_within(fast, ref, x, what):
    """LayerNorm's outputs row by row: tol(dtype), plus eps * C * |mean| / std of the row's input."""
    dtype = ref.dtype.type
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(ref), err_msg=f"{what}: NaN positions")
    x64 = x.astype(np.float64).reshape(-1, x.shape[-1])
    fast, ref = fast.reshape(x64.shape), ref.reshape(x64.shape)
    for r in np.flatnonzero(np.isfinite(x64).all(-1)):
        spread = x64[r].std()
        cond = abs(x64[r].mean()) / spread if spread > 0 else 0.0
        bound = (tol(dtype) + np.finfo(dtype).eps * x64.shape[1] * cond) * max(np.abs(ref[r]).max(), 1e-30)
        assert np.abs(fast[r] - ref[r]).max() <= bound, f"{what}, row {r}"


@DTYPES
@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_softmax(dtype):
    """The fast kernel shifts each (R, K) matrix by its max and redoes underflowing rows with
    their own max: masked keys (the dtype's minimum), a fully masked row, rows of +inf and NaN,
    rows far below the matrix's max, huge values, a single row."""
    rng = np.random.default_rng(0)
    x = randn(rng, (3, 6, 7), np.float64, 4)
    x[0, 1] -= 200.0                       # exps underflow against the matrix's max
    x[0, 2] -= 60.0                        # small but normal: kept without a redo
    x[1, 3] = np.finfo(dtype).min          # every key masked
    x[1, 0, 4:] = np.finfo(dtype).min      # some keys masked
    x[1, 4, 2] = np.inf
    x[1, 5, 0] = np.nan
    x[2] *= 1e3
    x[2, :, 1:] -= 500.0
    x = x.astype(dtype)
    (y_f, c_f), (y_r, c_r) = both("softmax_forward", x)
    assert_equal_within(y_f, y_r, tol(dtype), "softmax")
    np.testing.assert_allclose(y_f[1, 3], 1.0 / 7, rtol=tol(dtype))      # uniform, as torch
    assert np.all(y_f[1, 0, 4:] == 0)
    dy = randn(rng, x.shape, dtype)
    assert_equal_within(kernels.softmax_backward(dy, c_f), layers.softmax_backward(dy, c_r), tol(dtype), "dx")
    one_row = randn(rng, (1, 5), dtype)
    assert_equal_within(kernels.softmax_forward(one_row)[0], layers.softmax_forward(one_row)[0], tol(dtype))


@DTYPES
@pytest.mark.parametrize("K", [8, 19, 128])
@pytest.mark.filterwarnings("ignore:overflow encountered")
@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_softmax_long_rows(dtype, K):
    """Rows long enough for the kernel's 8 running maxima and a tail after them: the max at every
    position of a row, a NaN or +inf in the lanes and in the tail (the row is NaN), the masked
    minimum, plain, masked and backward against the textbook."""
    from minibert.kernels.softmax import masked_softmax_forward
    rng = np.random.default_rng(K)
    x = randn(rng, (2, K + 4, K), dtype, 3)
    for j in range(K):
        x[0, j, j] = 1000.0                # the max at position j (exp overflows unless shifted by it)
    x[1, 0, 3] = np.nan
    x[1, 1, K - 1] = np.nan
    x[1, 2, 5] = np.inf
    x[1, 3, K - 1] = np.inf
    x[1, 4, : K // 2] = np.finfo(dtype).min
    (y_f, c_f), (y_r, c_r) = both("softmax_forward", x)
    assert_equal_within(y_f, y_r, tol(dtype), "softmax")
    assert np.isnan(y_f[1, :4]).all() and not np.isnan(y_f[1, 4:]).any()
    dy = randn(rng, x.shape, dtype)
    ok = ~np.isnan(y_r).any(-1)
    assert_equal_within(kernels.softmax_backward(dy, c_f)[0][ok], layers.softmax_backward(dy, c_r)[0][ok], tol(dtype), "dx")
    mask = np.ones((2, K), dtype=np.int64)
    mask[1, K // 3:] = 0
    bias = layers.attention_mask_bias(mask, dtype)
    scores = x[:, None]                                                   # (2, 1, K + 4, K)
    y_m, _ = masked_softmax_forward(scores.copy(), bias)
    assert_equal_within(y_m, layers.softmax_forward(scores + bias)[0], tol(dtype), "masked softmax")
    assert np.all(y_m[1, 0, 5:, K // 3:] == 0)          # (row 4: every score the minimum, uniform)


@DTYPES
def test_masked_softmax(dtype):
    """kernels.softmax.masked_softmax_forward(S, M) against the textbook's softmax(S + M): padded
    keys get exactly 0, a sequence with every key padded is uniform (as torch), a NaN spreads
    over its row only."""
    from minibert.kernels.softmax import masked_softmax_forward
    rng = np.random.default_rng(11)
    scores = randn(rng, (3, 2, 5, 6), dtype, 4)
    mask = np.ones((3, 6), dtype=np.int64)
    mask[1, 4:] = 0
    mask[2, :] = 0
    scores[0, 1, 2, 3] = np.nan
    bias = layers.attention_mask_bias(mask, dtype)
    y_f, _ = masked_softmax_forward(scores.copy(), bias)
    y_r, _ = layers.softmax_forward(scores + bias)
    assert_equal_within(y_f, y_r, tol(dtype), "masked softmax")
    assert np.all(y_f[1, :, :, 4:] == 0)
    np.testing.assert_allclose(y_f[2], 1.0 / 6, rtol=tol(dtype))
    assert np.isnan(y_f[0, 1, 2]).all() and not np.isnan(np.delete(y_f[0, 1], 2, axis=0)).any()


@DTYPES
@pytest.mark.parametrize("padding_idx", [None, 0])
def test_embedding_backward(dtype, padding_idx):
    rng = np.random.default_rng(4)
    ids = rng.integers(0, 9, (3, 11))
    ids[0, :4] = 2                                  # runs of one id
    ids[2, -3:] = 0
    w = randn(rng, (9, 6), dtype)
    (y_f, c_f), (y_r, c_r) = both("embedding_forward", ids, w, padding_idx)
    assert_equal_within(y_f, y_r, 0.0, "lookup")
    dy = randn(rng, y_r.shape, dtype)
    assert_equal_within(kernels.embedding_backward(dy, c_f), layers.embedding_backward(dy, c_r), tol(dtype), "grads")


@DTYPES
def test_cross_entropy(dtype):
    rng = np.random.default_rng(5)
    logits = randn(rng, (13, 50), dtype, 3)
    logits[2] *= 1e3                                 # far-apart logits
    labels = rng.integers(0, 50, 13)
    labels[[1, 5, 6]] = -100
    for labels_case in (labels, np.full(13, -100), labels[:1]):
        z = logits[:len(labels_case)]
        (loss_f, c_f), (loss_r, c_r) = both("cross_entropy_forward", z, labels_case)
        assert_equal_within(loss_f, loss_r, tol(dtype, True), "loss")
        assert_equal_within(kernels.cross_entropy_backward(0.5, c_f), layers.cross_entropy_backward(0.5, c_r),
                            tol(dtype), "dlogits")


def attention_params(rng, C, dtype):
    return {f"{n}.{k}": randn(rng, (C, C) if k == "weight" else (C,), dtype)
            for n in ("query", "key", "value") for k in ("weight", "bias")}


def assert_attention_tiers_agree(name, x, where, params, H, dropout, dtype, rng):
    """kernels.{name}_forward / _backward against layers.{name}_*: the context, the probabilities,
    dx and every gradient; dropout drawn from generators of one seed.  `where` is the mask bias
    (padded) or the groups (packed)."""
    fast = getattr(kernels, f"{name}_forward")(x, where, params, H, dropout, np.random.default_rng(9), True)
    ref = getattr(layers, f"{name}_forward")(x, where, params, H, dropout, np.random.default_rng(9), True)
    assert_equal_within(fast[0], ref[0], tol(dtype, True), "context")
    assert_equal_within(fast[1]["probs"], ref[1]["probs"], tol(dtype, True), "probs")
    dy = randn(rng, x.shape, dtype)
    dx_f, g_f = getattr(kernels, f"{name}_backward")(dy, fast[1])
    dx_r, g_r = getattr(layers, f"{name}_backward")(dy, ref[1])
    assert_equal_within(dx_f, dx_r, tol(dtype, True), "dx")
    for k in g_r:
        if k != "key.bias":                         # zero in theory: both are round-off
            assert_equal_within(g_f[k], g_r[k], tol(dtype, True), k)
    assert np.abs(g_f["key.bias"]).max() <= 100 * np.finfo(dtype).eps * np.abs(g_r["key.weight"]).max()


@DTYPES
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_self_attention(dtype, dropout):
    """Padded keys, a sequence whose every key is padding, dropout with the same generator."""
    rng = np.random.default_rng(6)
    B, T, C, H = 3, 7, 12, 3
    x = randn(rng, (B, T, C), dtype)
    params = attention_params(rng, C, dtype)
    mask = np.ones((B, T), dtype=np.int64)
    mask[1, 4:] = 0
    mask[2, :] = 0                                  # nothing to attend to: uniform, as torch
    bias = layers.attention_mask_bias(mask, dtype)
    assert_attention_tiers_agree("self_attention", x, bias, params, H, dropout, dtype, rng)


@DTYPES
@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_packed_self_attention(dtype, dropout):
    """Packed rows (models/packing.py): groups of one and of several sequences, a one-token
    sequence, and a group large enough to be cut among the threads; dropout with the same
    generator draws the same masks."""
    rng = np.random.default_rng(8)
    C, H = 12, 3
    groups = ((0, 1, 1), (1, 3, 4), (13, 1, 6), (19, 9, 5))
    x = randn(rng, (64, C), dtype)
    params = attention_params(rng, C, dtype)
    assert_attention_tiers_agree("packed_self_attention", x, groups, params, H, dropout, dtype, rng)


@DTYPES
@pytest.mark.parametrize("decoupled, correct_bias", [(True, True), (False, True), (True, False)],
                         ids=["adamw", "adam-l2", "no-bias-correction"])
def test_adam_update(dtype, decoupled, correct_bias):
    """Five steps of both updates from the same state, with and without weight decay."""
    rng = np.random.default_rng(7)
    start = [randn(rng, (37, 5), dtype) for _ in range(3)]      # param, m, v (v >= 0)
    start[2] = np.abs(start[2]) * 1e-3
    results = []
    for F in (kernels, layers):
        p, m, v = (a.copy() for a in start)
        for step in range(1, 6):
            g = randn(np.random.default_rng(step), p.shape, dtype)
            F.adam_update(p, g, m, v, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, step=step,
                          weight_decay=0.1 if step % 2 else 0.0, decoupled=decoupled, correct_bias=correct_bias)
        results.append((p, m, v))
    assert_equal_within(results[0], results[1], tol(dtype), "param, m, v")
    assert not np.array_equal(results[0][0], start[0])


@DTYPES
def test_whole_training_step_is_the_same_in_both_tiers(dtype):
    """A pretraining step with dropout on -- forward, loss, backward, AdamW -- from the same weights
    and the same dropout generator: both tiers draw the same masks and end on the same weights."""
    import copy

    from helpers import tiny_config

    from minibert import AdamW, BertForPreTraining, ops
    config = tiny_config(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    start = BertForPreTraining(config, seed=3, dtype=dtype).train()
    rng = np.random.default_rng(8)
    ids = rng.integers(1, config.vocab_size, (2, 9))
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    labels = np.where(rng.random(ids.shape) < 0.3, ids, -100)
    results = []
    for reference in (False, True):
        model = copy.deepcopy(start)
        optimizer = AdamW(model.params, lr=1e-2)
        with ops.reference_layers(reference):
            out = model(ids, mask, labels=labels, next_sentence_label=[0, 1])
            optimizer.step(model.backward())
        results.append((out.loss, model.params))
    assert_equal_within(results[0][0], results[1][0], tol(dtype, True), "loss")
    # The key biases' gradients are zero in theory, round-off on both sides; Adam's first step
    # moves each weight by about lr whatever the gradient's size, so they are left out.
    keep = [k for k in start.params if not k.endswith("attention.self.key.bias")]
    assert_equal_within({k: results[0][1][k] for k in keep}, {k: results[1][1][k] for k in keep},
                        1e-10 if dtype == np.float64 else 1e-4, "weights after the step")


def test_elementary_functions_within_their_stated_bounds():
    """minibert/kernels/elementary.py's float32 polynomials against float64, on a dense grid and the
    edges: exp relative error < 1 eps32 (0 below the float32 range, inf above, NaN kept); the normal
    CDF within 3 eps32 absolute (A & S's 1.5e-7 / 2 plus float32 rounding) and its Gaussian within
    eps32 (2 + x^2 / 2) relative (the rounded argument); tanh absolute error < 2 eps32; erf (the
    rational form) absolute error < 3 eps32, and GELU from it, x (1 + erf(x / sqrt 2)) / 2, within
    2 eps32 max(|x|, 1).  float64 arguments take the C library's functions."""
    from numba import njit
    from scipy.special import erf as erf64
    from scipy.special import ndtr

    from minibert.kernels.elementary import erf, exp, normal_cdf, tanh

    @njit(fastmath={"contract"})
    def apply(x, out):
        for i in range(x.shape[0]):
            out[0, i] = exp(x[i])
            out[1, i], out[2, i] = normal_cdf(x[i])
            out[3, i] = tanh(x[i])
            out[4, i] = erf(x[i])
            out[5, i] = x.dtype.type(0.5) * x[i] * (x.dtype.type(1.0) + erf(x[i] * x.dtype.type(0.7071067811865476)))

    eps = np.finfo(np.float32).eps
    x = np.concatenate([np.linspace(-87, 88, 400_001), np.linspace(-9, 9, 200_001)]).astype(np.float32)
    out = np.empty((6, x.size), dtype=np.float32)
    apply(x, out)
    x64 = x.astype(np.float64)
    ref_exp = np.exp(x64)
    normal = (ref_exp > np.finfo(np.float32).tiny) & (ref_exp < np.finfo(np.float32).max)
    assert np.max(np.abs(out[0] - ref_exp)[normal] / ref_exp[normal]) < eps
    assert np.max(np.abs(out[1] - ndtr(x64))) < 3 * eps
    gauss = np.exp(-0.5 * x64 * x64)
    tiny_ok = gauss > 1e-30              # -x^2 / 2 is rounded in float32 first: eps x^2 / 2 more
    assert np.all(np.abs(out[2] - gauss)[tiny_ok] / gauss[tiny_ok] < (eps * (2 + 0.5 * x64 * x64))[tiny_ok])
    assert np.max(np.abs(out[3] - np.tanh(x64))) < 2 * eps
    assert np.max(np.abs(out[4] - erf64(x64))) < 3 * eps
    gelu = 0.5 * x64 * (1.0 + erf64(x64 / np.sqrt(2.0)))
    assert np.max(np.abs(out[5] - gelu) / np.maximum(np.abs(x64), 1.0)) < 2 * eps
    edges = np.array([np.nan, np.inf, -np.inf, -1e30, -88.0, 89.0, 0.0], dtype=np.float32)
    out = np.empty((6, edges.size), dtype=np.float32)
    apply(edges, out)
    np.testing.assert_array_equal(out[0], [np.nan, np.inf, 0.0, 0.0, 0.0, np.inf, 1.0])
    np.testing.assert_array_equal(out[3, 1:], [1.0, -1.0, -1.0, -1.0, 1.0, 0.0])
    np.testing.assert_array_equal(out[4, 1:], [1.0, -1.0, -1.0, -1.0, 1.0, 0.0])
    np.testing.assert_array_equal(out[5], [np.nan, np.inf, np.nan, -0.0, -0.0, 89.0, 0.0])   # as x Phi(x)
    x64 = np.array([-3.0, 0.5, 7.0])
    out64 = np.empty((6, 3))
    apply(x64, out64)
    np.testing.assert_allclose(out64[0], np.exp(x64), rtol=1e-15)
    from scipy.special import erf
    np.testing.assert_allclose(out64[1], 0.5 * (1.0 + erf(x64 * np.sqrt(0.5))), rtol=1e-15)   # the textbook's
    np.testing.assert_allclose(out64[3], np.tanh(x64), rtol=1e-15)
    np.testing.assert_allclose(out64[4], erf(x64), rtol=1e-15)


@pytest.mark.parametrize("slot", [1, 2, 3])
def test_outputs_are_placed_apart_from_their_inputs(slot):
    """kernels.memory.empty_apart: the new array starts slot KiB past its neighbour modulo 4 KiB
    (never a few bytes past it, where every load would wait on a store: 4K aliasing), with the
    asked shape and dtype, writable, and it outlives the buffer it was cut from."""
    from minibert.kernels.memory import empty_apart
    for like in (np.empty((37, 5), np.float32), np.empty((4096, 512), np.float32)[1:], np.empty(3, np.float64)):
        out = empty_apart(like, slot)
        assert (out.ctypes.data - like.ctypes.data) % 4096 == slot * 1024
        assert out.shape == like.shape and out.dtype == like.dtype and out.flags.c_contiguous
        out[...] = 7.0
        assert np.all(out == 7.0)
    other = empty_apart(like, 1, shape=(2, 6), dtype=np.int64)
    assert other.shape == (2, 6) and other.dtype == np.int64
    assert (other.ctypes.data - like.ctypes.data) % 4096 == 1024
