"""Adam/AdamW against torch.optim, the schedule against HF's, clipping against torch."""

import numpy as np
import pytest
import torch
import transformers

from minibert.training.optim import Adam, AdamW, clip_grad_norm, linear_warmup_decay


def make_params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "encoder.dense.weight": rng.standard_normal((4, 3)),
        "encoder.dense.bias": rng.standard_normal(4),
        "encoder.LayerNorm.weight": rng.standard_normal(3),
        "head.weight": rng.standard_normal((2, 4)),
    }


def fixed_grads(params, step):
    rng = np.random.default_rng(100 + step)
    return {k: rng.standard_normal(v.shape) for k, v in params.items()}


def run_torch(torch_class, params, steps, lr, weight_decay, **kw):
    tensors = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    decay = [t for k, t in tensors.items() if "bias" not in k and "LayerNorm.weight" not in k]
    no_decay = [t for k, t in tensors.items() if "bias" in k or "LayerNorm.weight" in k]
    opt = torch_class([{"params": decay, "weight_decay": weight_decay},
                       {"params": no_decay, "weight_decay": 0.0}], lr=lr, **kw)
    for step in range(steps):
        for k, g in fixed_grads(params, step).items():
            tensors[k].grad = torch.tensor(g)
        opt.step()
    return {k: t.detach().numpy() for k, t in tensors.items()}


@pytest.mark.parametrize("ours_class, torch_class", [(AdamW, torch.optim.AdamW),
                                                     (Adam, torch.optim.Adam)])
def test_matches_torch_over_many_steps(ours_class, torch_class):
    params = make_params()
    expected = run_torch(torch_class, params, steps=25, lr=1e-2, weight_decay=0.1,
                         betas=(0.9, 0.98), eps=1e-6)
    ours = {k: v.copy() for k, v in params.items()}
    opt = ours_class(ours, lr=1e-2, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1)
    for step in range(25):
        opt.step(fixed_grads(params, step))
    for k in params:
        np.testing.assert_allclose(ours[k], expected[k], rtol=1e-6, atol=1e-9, err_msg=k)
        assert not np.allclose(ours[k], params[k]), "parameters must actually move"


def test_no_decay_parameters_are_not_decayed():
    params = {"dense.weight": np.ones(3), "dense.bias": np.ones(3), "LayerNorm.weight": np.ones(3)}
    opt = AdamW(params, lr=0.1, weight_decay=0.5)
    opt.step({k: np.zeros(3) for k in params})        # zero gradient: only decay can move a weight
    np.testing.assert_allclose(params["dense.weight"], 1.0 - 0.1 * 0.5)
    np.testing.assert_array_equal(params["dense.bias"], 1.0)
    np.testing.assert_array_equal(params["LayerNorm.weight"], 1.0)


def test_turning_off_bias_correction_changes_the_first_steps_as_expected():
    """Without correction the first update is lr * (1 - b1) g / (sqrt(1 - b2) |g| + eps), not ~lr."""
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-12
    g = np.array([0.5, -2.0])
    corrected, raw = {"w": np.zeros(2)}, {"w": np.zeros(2)}
    AdamW(corrected, lr=lr, betas=(b1, b2), eps=eps, weight_decay=0.0).step({"w": g})
    AdamW(raw, lr=lr, betas=(b1, b2), eps=eps, weight_decay=0.0, correct_bias=False).step({"w": g})
    np.testing.assert_allclose(corrected["w"], -lr * g / (np.abs(g) + eps), rtol=1e-12)
    expected_raw = -lr * (1 - b1) * g / (np.sqrt(1 - b2) * np.abs(g) + eps)
    np.testing.assert_allclose(raw["w"], expected_raw, rtol=1e-12)
    # (1 - b1) / sqrt(1 - b2) = 0.1 / 0.0316 = 3.16: the raw first step is 3.16x larger.
    np.testing.assert_allclose(raw["w"] / corrected["w"], (1 - b1) / np.sqrt(1 - b2), rtol=1e-5)


def test_schedule_matches_transformers():
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=3e-4)
    sched = transformers.get_linear_schedule_with_warmup(opt, num_warmup_steps=10, num_training_steps=50)
    for step in range(60):
        assert linear_warmup_decay(step, 3e-4, 10, 50) == pytest.approx(sched.get_last_lr()[0], abs=1e-15)
        opt.step()
        sched.step()
    assert linear_warmup_decay(0, 1.0, 10, 50) == 0.0
    assert linear_warmup_decay(10, 1.0, 10, 50) == 1.0
    assert linear_warmup_decay(30, 1.0, 10, 50) == 0.5
    assert linear_warmup_decay(50, 1.0, 10, 50) == 0.0


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clipping_matches_torch(max_norm):
    grads = fixed_grads(make_params(), 0)
    tensors = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads.values()]
    for t, g in zip(tensors, grads.values()):
        t.grad = torch.tensor(g.copy())
    expected_norm = torch.nn.utils.clip_grad_norm_(tensors, max_norm).item()
    norm = clip_grad_norm(grads, max_norm)
    assert norm == pytest.approx(expected_norm, rel=1e-12)
    assert norm == pytest.approx(np.sqrt(sum((g ** 2).sum() for g in fixed_grads(make_params(), 0).values())))
    for t, g in zip(tensors, grads.values()):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12)
    total = np.sqrt(sum((g ** 2).sum() for g in grads.values()))
    assert total == pytest.approx(min(norm, max_norm), rel=1e-5)


def test_state_round_trip_continues_identically():
    params_a = make_params()
    opt_a = AdamW(params_a, lr=1e-2, weight_decay=0.1)
    for step in range(3):
        opt_a.step(fixed_grads(params_a, step))
    state = opt_a.state_dict()
    params_b = {k: v.copy() for k, v in params_a.items()}
    opt_b = AdamW(params_b)
    opt_b.load_state_dict(state)
    for step in range(3, 6):
        opt_a.step(fixed_grads(params_a, step))
        opt_b.step(fixed_grads(params_b, step))
    for k in params_a:
        np.testing.assert_array_equal(params_a[k], params_b[k])


def test_bad_state_and_gradients_are_named():
    params = make_params()
    opt = AdamW(params)
    grads = fixed_grads(params, 0)
    del grads["head.weight"]
    with pytest.raises(KeyError, match="head.weight"):
        opt.step(grads)
    state = opt.state_dict()
    del state["exp_avg"]["encoder.dense.bias"]
    with pytest.raises(KeyError, match="encoder.dense.bias"):
        AdamW(make_params()).load_state_dict(state)


def test_float32_parameters_stay_float32():
    params = {k: v.astype(np.float32) for k, v in make_params().items()}
    opt = AdamW(params, lr=1e-3)
    opt.step({k: g.astype(np.float32) for k, g in fixed_grads(params, 0).items()})
    assert all(p.dtype == np.float32 for p in params.values())
    assert all(m.dtype == np.float32 for m in opt.exp_avg_sq.values())
