"""Shared test tools: the tiny config, finite differences, a relative comparison, the CLI's
one-line errors, a run lock held elsewhere."""

import contextlib
import subprocess
import sys

import numpy as np

from minibert import BertConfig

# Dimensions that all differ, so a swapped axis fails loudly.
B, T, C, H, I, V = 2, 5, 12, 3, 20, 37


def tiny_config(**overrides):
    kwargs = dict(vocab_size=V, hidden_size=C, num_hidden_layers=2, num_attention_heads=H,
                  intermediate_size=I, max_position_embeddings=16, type_vocab_size=2,
                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=0)
    kwargs.update(overrides)
    return BertConfig(**kwargs)


def numerical_grad(loss_fn, x, eps=1e-6):
    """Central differences of the scalar `loss_fn()` with respect to every element of `x`
    (perturbed in place and restored)."""
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        plus = loss_fn()
        x[idx] = old - eps
        minus = loss_fn()
        x[idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


# Finite differences in float64 with eps = 1e-6: truncation error ~eps^2 and round-off
# ~1e-16 |L| / eps ~ 1e-10, so an analytic gradient within 1e-6 relative (plus 1e-8 absolute,
# for gradients that are exactly zero in theory) is right; a wrong term is off by O(1).
FD_RTOL, FD_ATOL = 1e-6, 1e-8


def assert_grad_matches(analytic, loss_fn, x, name):
    numeric = numerical_grad(loss_fn, x)
    assert analytic.shape == x.shape, f"{name}: gradient shape {analytic.shape} != {x.shape}"
    err = np.abs(analytic - numeric).max()
    bound = FD_ATOL + FD_RTOL * np.abs(numeric).max()
    assert err <= bound, f"{name}: finite-difference error {err:.3e} > {bound:.3e}"


def rel_err(ours, ref, floor=0.0):
    """max |ours - ref| / max(max |ref|, floor)."""
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, f"shape {ours.shape} != {ref.shape}"
    return np.abs(ours - ref).max() / max(np.abs(ref).max(), floor, 1e-300)


def one_line_error(capsys, *needles):
    """The CLI's promise: one line on stderr, "minibert: error: ...", never a traceback."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("minibert: error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@contextlib.contextmanager
def lock_held_by_another_process(directory):
    """Another process holds `directory`'s run lock until the block ends (then it is killed, as
    a crashed run would be).  Yields that process's id."""
    holder = subprocess.Popen([sys.executable, "-c", "import time; from minibert.files import RunLock\n"
                               f"with RunLock({str(directory)!r}):\n    print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()
