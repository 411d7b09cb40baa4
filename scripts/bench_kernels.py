"""minibert's fused steps against PyTorch's same operations, on the shapes of each model size.

    python scripts/bench_model.py --workload kernels          # as part of the model benchmark
    python scripts/bench_kernels.py --sizes tiny minilm base  # alone

Each row is one step of a training step at batch 32, sequence 128 (N = 4,096 rows), float32:

  linear+GELU        x W^T + b, then GELU (exact)             (N, C) -> (N, 4C)
  linear+GELU bwd    dx, dW, db of the above
  add+LayerNorm      LayerNorm(x + residual)                   (N, C)
  add+LayerNorm bwd  dx, dweight, dbias
  masked softmax     softmax(scores + padding mask)            (B, H, T, T), a quarter of the keys padded
  softmax bwd
  attention          the Q, K, V projection and softmax(Q K^T / sqrt D + mask) V in the heads:
                     (B, T, C) -> (B, T, C) (PyTorch: F.linear and scaled_dot_product_attention)
  attention bwd      dx and the projections' gradients
  packed attention   the same batch with its padding removed (minibert's packed path; PyTorch has
                     no packed CPU attention, so its padded attention is the peer)
  AdamW              one update of every parameter of the model (PyTorch: torch.optim.AdamW, default)
  cross-entropy      forward + backward at the masked positions (15% of N) over the 30,522 words
  embedding          the word lookup and its scatter-add gradient

Both sides run on the same inputs with the same threads; ours is checked against PyTorch's result
first.  Time: best and median of the repeats, interleaved; ratio = PyTorch's time / ours (above 1:
minibert is faster).
"""

import argparse
import statistics
import time

from minibert.runtime import configure_runtime

configure_runtime()

import numpy as np  # noqa: E402

SIZES = {"tiny": (2, 128, 2), "mini": (4, 256, 4), "small": (4, 512, 8), "minilm": (6, 384, 12), "base": (12, 768, 12)}
BATCH, SEQ, VOCAB, MASK_RATE = 32, 128, 30522, 0.15


def _time(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _time_warm(fn, settle=0.03):
    """Run fn untimed for `settle` seconds (at least once), then time one more call.  Each library
    leaves its worker threads busy-waiting after it returns (PyTorch's OpenMP threads for several
    milliseconds, OpenBLAS's, Numba's TBB workers): the untimed calls hold the cores until the other
    side's threads have gone to sleep, so neither is timed on cores the other still spins on."""
    t0 = time.perf_counter()
    fn()
    while time.perf_counter() - t0 < settle:
        fn()
    return _time(fn)


def race(ours, theirs, repeats):
    """Best and median seconds of each, interleaved, after one untimed run of each."""
    ours(), theirs()
    a, b = [], []
    for _ in range(repeats):
        a.append(_time_warm(ours))
        b.append(_time_warm(theirs))
    return min(a), statistics.median(a), min(b), statistics.median(b)


def check(ours, theirs, what, rtol=2e-4):
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    err = np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-30)
    if not err <= rtol:
        raise AssertionError(f"{what}: minibert and PyTorch differ by {err:.1e} of the largest value")


def cases(size, rng):
    """(name, ours(), theirs()) for every fused step at this size; each pair checked equal first."""
    import torch
    import torch.nn.functional as F

    from minibert import kernels
    L, C, H = SIZES[size]
    N, D, f32 = BATCH * SEQ, C // H, np.float32
    T = SEQ
    t = torch.from_numpy

    def randn(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(f32)

    out = []
    # linear + GELU
    x, w, b, dy4 = randn(N, C), randn(4 * C, C, scale=C ** -0.5), randn(4 * C), randn(N, 4 * C)
    xt, wt, bt = (t(a).requires_grad_() for a in (x, w, b))
    check(kernels.linear_activation_forward(x, w, b, "gelu")[0], F.gelu(F.linear(xt, wt, bt)).detach(), "linear+GELU")
    out.append(("linear+GELU", lambda x=x, w=w, b=b: kernels.linear_activation_forward(x, w, b, "gelu"),
                lambda x=xt.detach(), w=wt.detach(), b=bt.detach(): F.gelu(F.linear(x, w, b))))
    _, cache = kernels.linear_activation_forward(x, w, b, "gelu")
    yt = F.gelu(F.linear(xt, wt, bt))
    dyt = t(dy4)
    check(kernels.linear_activation_backward(dy4, cache)[0], torch.autograd.grad(yt, xt, dyt, retain_graph=True)[0],
          "linear+GELU bwd")
    out.append(("linear+GELU bwd", lambda: kernels.linear_activation_backward(dy4, cache),
                lambda y=yt, inputs=(xt, wt, bt), dy=dyt: torch.autograd.grad(y, inputs, dy, retain_graph=True)))
    # add + LayerNorm
    x, r, g, beta, dy = randn(N, C), randn(N, C), randn(C), randn(C), randn(N, C)
    xt, rt, gt, betat = (t(a).requires_grad_() for a in (x, r, g, beta))
    check(kernels.add_layer_norm_forward(x, r, g, beta, 1e-12)[0],
          F.layer_norm(xt + rt, (C,), gt, betat, 1e-12).detach(), "add+LayerNorm")
    out.append(("add+LayerNorm", lambda x=x: kernels.add_layer_norm_forward(x, r, g, beta, 1e-12),
                lambda x=xt.detach(), r=rt.detach(), g=gt.detach(), b=betat.detach(): F.layer_norm(x + r, (C,), g, b,
                                                                                                 1e-12)))
    _, cache_ln = kernels.add_layer_norm_forward(x, r, g, beta, 1e-12)
    yt = F.layer_norm(xt + rt, (C,), gt, betat, 1e-12)
    dyt = t(dy)
    check(kernels.add_layer_norm_backward(dy, cache_ln)[0], torch.autograd.grad(yt, xt, dyt, retain_graph=True)[0],
          "add+LayerNorm bwd")
    out.append(("add+LayerNorm bwd", lambda dy=dy: kernels.add_layer_norm_backward(dy, cache_ln),
                lambda y=yt, inputs=(xt, gt, betat), dy=dyt: torch.autograd.grad(y, inputs, dy, retain_graph=True)))
    # masked softmax
    lengths = rng.integers(T // 2, T + 1, BATCH)
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)
    bias = (1.0 - mask[:, None, None, :].astype(f32)) * np.finfo(f32).min
    scores, dp = randn(BATCH, H, T, T, scale=3.0), randn(BATCH, H, T, T)
    from minibert.kernels.softmax import masked_softmax_forward
    check(masked_softmax_forward(scores, bias)[0], F.softmax(t(scores) + t(bias), -1), "masked softmax")
    out.append(("masked softmax", lambda: masked_softmax_forward(scores, bias),
                lambda: F.softmax(t(scores) + t(bias), -1)))
    probs = masked_softmax_forward(scores, bias)[0]
    pt = t(probs)
    check(kernels.softmax_backward(dp, probs)[0], torch._softmax_backward_data(t(dp), pt, -1, torch.float32),
          "softmax bwd")
    out.append(("softmax bwd", lambda: kernels.softmax_backward(dp, probs),
                lambda: torch._softmax_backward_data(t(dp), pt, -1, torch.float32)))
    # self-attention: the Q, K, V projection, then softmax(Q K^T / sqrt D + mask) V in the heads
    from minibert.models.packing import pack_batch
    x = randn(BATCH, T, C)
    attn_params = {f"{n}.{k}": randn(*((C, C) if k == "weight" else (C,)), scale=C ** -0.5)
              for n in ("query", "key", "value") for k in ("weight", "bias")}
    x_t = t(x).requires_grad_()
    w_t = {k: t(v).requires_grad_() for k, v in attn_params.items()}
    keep = t(mask.astype(bool))[:, None, None, :]

    def theirs_attention(x_in=x_t):
        q, k, v = (F.linear(x_in, w_t[f"{n}.weight"], w_t[f"{n}.bias"]).reshape(BATCH, T, H, D).transpose(1, 2)
                   for n in ("query", "key", "value"))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=keep).transpose(1, 2).reshape(BATCH, T, C)

    ctx, cache_a = kernels.self_attention_forward(x, bias, attn_params, H, 0.0, None, False)
    ctx_t = theirs_attention()
    real = mask.astype(bool)
    check(ctx[real], ctx_t.detach()[t(real)], "attention")
    out.append(("attention", lambda: kernels.self_attention_forward(x, bias, attn_params, H, 0.0, None, False),
                lambda: theirs_attention(x_t.detach())))
    dctx = randn(BATCH, T, C)
    dctx_t = t(dctx)
    grad_inputs = (x_t, *w_t.values())
    out.append(("attention bwd", lambda: kernels.self_attention_backward(dctx, cache_a),
                lambda: torch.autograd.grad(ctx_t, grad_inputs, dctx_t, retain_graph=True)))
    # the same batch packed: only the real tokens, sequences of their own lengths
    packing = pack_batch(mask)
    x_p = packing.pack(x)
    ctx_p, cache_p = kernels.packed_self_attention_forward(x_p, packing.groups, attn_params, H, 0.0, None, False)
    out.append(("packed attention", lambda: kernels.packed_self_attention_forward(x_p, packing.groups, attn_params, H,
                                                                                  0.0, None, False),
                lambda: theirs_attention(x_t.detach())))
    dctx_p = packing.pack(dctx)
    out.append(("packed attention bwd", lambda: kernels.packed_self_attention_backward(dctx_p, cache_p),
                lambda: torch.autograd.grad(ctx_t, grad_inputs, dctx_t, retain_graph=True)))
    # AdamW over every parameter of the model
    shapes = [(VOCAB, C), (512, C), (2, C), (C,), (C,)] + L * [(C, C), (C,), (C, C), (C,), (C, C), (C,), (C, C), (C,),
                                                             (C,), (C,), (4 * C, C), (4 * C,), (C, 4 * C), (C,),
                                                             (C,), (C,)]
    params = [randn(*s, scale=0.02) for s in shapes]
    grads = [randn(*s, scale=1e-3) for s in shapes]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    tparams = [torch.nn.Parameter(t(p.copy())) for p in params]
    for tp, gr in zip(tparams, grads):
        tp.grad = t(gr)
    opt = torch.optim.AdamW(tparams, lr=1e-4, weight_decay=0.01)
    state = {"step": 0}

    def ours_adam():
        state["step"] += 1
        for p, gr, (m, v) in zip(params, grads, moments):
            kernels.adam_update(p, gr, m, v, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, step=state["step"],
                                weight_decay=0.01, decoupled=True, correct_bias=True)
    out.append(("AdamW", ours_adam, opt.step))
    # cross-entropy at the masked positions, forward and backward
    n_masked = int(N * MASK_RATE)
    logits, labels = randn(n_masked, VOCAB, scale=2.0), rng.integers(0, VOCAB, n_masked)
    lt, labt = t(logits).requires_grad_(), t(labels)

    def ours_ce():
        loss, c = kernels.cross_entropy_forward(logits, labels)
        return kernels.cross_entropy_backward(1.0, c)[0]

    def theirs_ce():
        loss = F.cross_entropy(lt, labt)
        return torch.autograd.grad(loss, lt)[0]
    check(ours_ce(), theirs_ce(), "cross-entropy")
    out.append(("cross-entropy", ours_ce, theirs_ce))
    # the word embedding: lookup and its gradient
    ids = rng.integers(0, VOCAB, (BATCH, T))
    table, dy = randn(VOCAB, C), randn(BATCH, T, C)
    table_t, ids_t, dy_t = t(table).requires_grad_(), t(ids), t(dy)

    def ours_embedding():
        _, c = kernels.embedding_forward(ids, table)
        return kernels.embedding_backward(dy, c)[1]["weight"]

    def theirs_embedding():
        return torch.autograd.grad(F.embedding(ids_t, table_t), table_t, dy_t)[0]
    check(ours_embedding(), theirs_embedding(), "embedding")
    out.append(("embedding", ours_embedding, theirs_embedding))
    # (each closure above binds what it times as default arguments: later names are reused)
    return out


def bench_kernels(sizes, repeats, threads):
    """Rows of {size, step, ours_ms_best, ours_ms_median, torch_ms_best, torch_ms_median, ratio_best,
    ratio_median}, printed as they come."""
    import torch
    torch.set_num_threads(threads)
    rows = []
    print(f"{'size':<8}{'fused step':<22}{'minibert ms':>12}{'PyTorch ms':>12}{'ratio best':>12}{'median':>8}")
    for size in sizes:
        for name, ours, theirs in cases(size, np.random.default_rng(0)):
            a_best, a_med, b_best, b_med = race(ours, theirs, repeats)
            row = dict(size=size, step=name, ours_ms_best=1e3 * a_best, ours_ms_median=1e3 * a_med,
                       torch_ms_best=1e3 * b_best, torch_ms_median=1e3 * b_med,
                       ratio_best=b_best / a_best, ratio_median=b_med / a_med)
            rows.append(row)
            print(f"{size:<8}{name:<22}{row['ours_ms_best']:>12.2f}{row['torch_ms_best']:>12.2f}"
                  f"{row['ratio_best']:>12.2f}{row['ratio_median']:>8.2f}", flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="PyTorch's threads (minibert's: configure_runtime)")
    a = parser.parse_args()
    bench_kernels(a.sizes, a.repeats, a.threads)


if __name__ == "__main__":
    main()
