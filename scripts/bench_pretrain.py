"""Benchmark the default pretraining run (the README's main job) end to end.

    python scripts/bench_pretrain.py [--output runs/bench-pretrain] [--steps N]
    python scripts/bench_pretrain.py --against transformers [--plot docs/pretraining_race.png]

Runs `minibert pretrain` with its defaults on the shipped corpus, then reports wall time,
training tokens/s, held-out MLM accuracy against the most-frequent-token baseline, held-out NSP
accuracy, and fill-mask on a few sentences in the corpus' style.  Targets (issue 4), for 2 CPU
cores: at most 15 minutes, MLM accuracy at least twice the baseline, NSP accuracy at least 70%.

`--against transformers` races the same job run by transformers' BertForPreTraining and torch's
AdamW: the same tokenizer, examples in the same order, held-out examples, initial weights, batch,
learning-rate schedule, weight decay and clipping; the same number of threads.  transformers
trains for minibert's wall-clock time (evaluation excluded on both sides), is evaluated at the
same steps and at the end of its time, and both held-out MLM-accuracy curves are drawn against
wall time on one picture.
"""

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from minibert.runtime import configure_runtime

configure_runtime()             # as the `minibert` command does, before NumPy loads (minibert/runtime.py)

from minibert import BertForPreTraining  # noqa: E402
from minibert.tools.fill_mask import fill_mask  # noqa: E402
from minibert.training.pretrain import PretrainArgs, pretrain  # noqa: E402

PROBES = ["In the beginning God created the heaven and the [MASK].",
          "And God said, Let there be [MASK]: and there was light.",
          "The LORD is my [MASK]; I shall not want.",
          "And the [MASK] of the LORD came unto me, saying,"]


class TrainingClock:
    """Seconds of a run's training, evaluation left out: minibert's evaluations are timed by
    wrapping the function the trainer calls."""

    def __init__(self):
        self.start, self.eval_seconds, self.at_step = time.perf_counter(), 0.0, {}

    def now(self):
        return time.perf_counter() - self.start - self.eval_seconds

    def timed_evaluate(self, evaluate):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return evaluate(*args, **kwargs)
            finally:
                self.eval_seconds += time.perf_counter() - t
        return wrapper


def run_minibert(args):
    """The default job, with the training clock at every step."""
    import minibert.training.pretrain as trainer
    clock = TrainingClock()
    evaluate = trainer.evaluate
    trainer.evaluate = clock.timed_evaluate(evaluate)
    try:
        result = pretrain(args, on_step=lambda step, model, record: clock.at_step.__setitem__(step, clock.now()))
    finally:
        trainer.evaluate = evaluate
    return result, clock


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="runs/bench-pretrain", help="run directory (replaced)")
    parser.add_argument("--steps", type=int, default=None, help="override the default number of steps")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--against", choices=["transformers"], default=None,
                        help="race the same job run by transformers and torch for the same wall-clock time")
    parser.add_argument("--plot", default=None, help="with --against: draw both curves into this PNG")
    parser.add_argument("--threads", type=int, default=2, help="with --against: torch's threads")
    a = parser.parse_args()

    out = Path(a.output)
    if out.exists():
        shutil.rmtree(out)
    args = PretrainArgs(output_dir=str(out / "minibert" if a.against else out))
    if a.steps:
        args.max_steps = a.steps
    start = time.perf_counter()
    result, clock = run_minibert(args)
    wall = time.perf_counter() - start
    if a.against:
        race(args, result, clock, out, a)
        return

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    tokens_per_s = sum(r["tokens_per_s"] for r in train) / len(train)
    ev = result.last_eval
    model = BertForPreTraining.from_pretrained(result.model_dir)
    print(f"\n== default pretraining run: {args.model_size} model, {result.step} steps of "
          f"{args.batch_size} x {args.max_seq_length} tokens ==")
    print(f"wall time              {wall / 60:.1f} min (target: at most 15)")
    print(f"training throughput    {tokens_per_s:,.0f} tokens/s")
    ratio = ev["mlm_accuracy"] / ev["mlm_baseline_accuracy"]
    print(f"held-out MLM accuracy  {ev['mlm_accuracy']:.3f}  vs most-frequent-token baseline "
          f"{ev['mlm_baseline_accuracy']:.3f}: {ratio:.2f}x (target: at least 2x)")
    print(f"held-out NSP accuracy  {ev['nsp_accuracy']:.3f} (target: at least 0.70)")
    print("fill-mask:")
    probes = {}
    for text in PROBES:
        candidates = fill_mask(model, text, top_k=3)
        probes[text] = [(c["token_str"], c["score"]) for c in candidates]
        shown = ", ".join(f"{c['token_str']} ({c['score']:.2f})" for c in candidates)
        print(f"  {text:<58} -> {shown}")
    if a.json:
        Path(a.json).write_text(json.dumps({
            "wall_s": wall, "steps": result.step, "tokens_per_s": tokens_per_s, "eval": ev,
            "mlm_over_baseline": ratio, "fill_mask": probes}, indent=1))


# ---- the race against transformers ------------------------------------------------------

def race(args, result, clock, out, a):
    """transformers on minibert's job for minibert's training time; both curves."""
    import torch
    torch.set_num_threads(a.threads)
    records = [json.loads(line) for line in (Path(args.output_dir) / "metrics.jsonl").read_text().splitlines()]
    ours = [(clock.at_step[r["step"]], r["step"], r["mlm_accuracy"]) for r in records if r["split"] == "eval"]
    budget = clock.at_step[result.step]
    theirs, steps, baseline, window_losses = run_transformers(args, out / "transformers", budget)
    our_first = next(r["loss"] for r in records if r["split"] == "train")
    print(f"\n== the race: minibert against transformers + torch, {args.model_size} model, "
          f"{args.batch_size} x {args.max_seq_length} tokens a step, {budget / 60:.1f} min of training each ==")
    print(f"torch {torch.__version__}, {a.threads} threads; minibert on NumPy's BLAS; OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    print(f"{'':<14}{'steps':>7}{'steps/s':>9}{'final held-out MLM accuracy':>30}")
    for name, curve, n in (("minibert", ours, result.step), ("transformers", theirs, steps)):
        print(f"{name:<14}{n:>7}{n / budget:>9.2f}{curve[-1][2]:>30.3f}")
    print(f"difference at the budget: {ours[-1][2] - theirs[-1][2]:+.3f} (most-frequent-token baseline "
          f"{baseline:.3f})")
    print(f"the same job on both sides: mean training loss of the first {args.log_every} steps, minibert "
          f"{our_first:.4f}, transformers {window_losses[0]:.4f}")
    if a.plot:
        draw_race(ours, theirs, baseline, a.plot, args)
        print(f"picture: {a.plot}")
    if a.json:
        Path(a.json).write_text(json.dumps({"budget_s": budget, "minibert": ours, "transformers": theirs,
                                            "minibert_steps": result.step, "transformers_steps": steps,
                                            "baseline": baseline}, indent=1))


def run_transformers(args, run_dir, budget):
    """The same job with transformers' BertForPreTraining and torch's AdamW, from the same initial
    weights, for `budget` seconds of training.  Returns [(seconds, step, held-out MLM accuracy)],
    the steps taken, the baseline accuracy, and the mean training loss of every log_every steps
    (as minibert's metrics.jsonl logs it)."""
    import torch
    import transformers

    from minibert.data.pretraining import collate
    from minibert.training.distributed import world
    from minibert.training.optim import NO_DECAY, linear_warmup_decay
    from minibert.training.pretrain import initial_model, prepare_inputs
    run_dir.mkdir(parents=True, exist_ok=True)
    inputs = prepare_inputs(args, run_dir, False, print, world())
    start = initial_model(args, inputs, print)                 # what minibert started from
    hf = transformers.BertForPreTraining(transformers.BertConfig(**start.config.to_dict()))
    missing, unexpected = hf.load_state_dict({k: torch.tensor(v) for k, v in start.params.items()}, strict=False)
    if unexpected or any(not k.startswith("cls.predictions.decoder") for k in missing):
        raise SystemExit(f"weights did not load into transformers: missing {missing}, unexpected {unexpected}")
    named = list(hf.named_parameters())
    groups = [{"params": [p for n, p in named if not any(nd in n for nd in NO_DECAY)],
               "weight_decay": args.weight_decay},
              {"params": [p for n, p in named if any(nd in n for nd in NO_DECAY)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=args.learning_rate, eps=1e-6)

    def evaluate():
        hf.eval()
        correct = total = hits = 0
        with torch.no_grad():
            for i in range(0, len(inputs.eval_examples), args.batch_size):
                batch = collate(inputs.eval_examples[i:i + args.batch_size])
                logits = hf(input_ids=torch.tensor(batch["input_ids"]), attention_mask=torch.tensor(batch["attention_mask"]),
                            token_type_ids=torch.tensor(batch["token_type_ids"])).prediction_logits.numpy()
                scored = batch["labels"] != -100
                correct += int((logits.argmax(-1)[scored] == batch["labels"][scored]).sum())
                total += int(scored.sum())
                hits += int((batch["labels"][scored] == inputs.baseline_id).sum())
        hf.train()
        return correct / total, hits / total

    clock = TrainingClock()
    curve, step, epoch, losses = [], 0, 0, []
    hf.train()
    while step < args.max_steps and clock.now() < budget:
        examples = inputs.train_data.epoch(epoch)
        for b in range(len(examples) // args.batch_size):
            if step >= args.max_steps or clock.now() >= budget:
                break
            batch = {k: torch.tensor(v) for k, v in collate(examples[b * args.batch_size:(b + 1) * args.batch_size]).items()}
            for g in opt.param_groups:
                g["lr"] = linear_warmup_decay(step, args.learning_rate, args.warmup_steps, args.max_steps)
            loss = hf(**batch).loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(hf.parameters(), args.max_grad_norm)
            opt.step()
            step += 1
            losses.append(loss.item())
            if step % args.eval_every == 0:
                seconds = clock.now()
                t = time.perf_counter()
                accuracy, baseline = evaluate()
                clock.eval_seconds += time.perf_counter() - t
                curve.append((seconds, step, accuracy))
                print(f"transformers step {step}: held-out MLM accuracy {accuracy:.3f} ({seconds / 60:.1f} min)")
        epoch += 1
    seconds = clock.now()
    accuracy, baseline = evaluate()
    if not curve or curve[-1][1] != step:
        curve.append((seconds, step, accuracy))
    n = args.log_every
    return curve, step, baseline, [sum(losses[i:i + n]) / n for i in range(0, len(losses) - n + 1, n)]


def draw_race(ours, theirs, baseline, path, args):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    for name, curve in (("minibert (NumPy)", ours), ("transformers + torch", theirs)):
        ax.plot([c[0] / 60 for c in curve], [c[2] for c in curve], marker="o", markersize=3, label=name)
    ax.axhline(baseline, color="grey", linestyle=":", label="most frequent token")
    ax.set_xlabel("training wall time (minutes, 2 CPU cores)")
    ax.set_ylabel("held-out MLM accuracy")
    ax.set_title(f"The main job ({args.model_size} BERT, KJV), the same data and schedule", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
