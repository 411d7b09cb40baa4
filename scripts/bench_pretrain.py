"""Benchmark the default pretraining run (the README's main job) end to end.

    python scripts/bench_pretrain.py [--output runs/bench-pretrain] [--steps N]

Runs `minibert pretrain` with its defaults on the shipped corpus, then reports wall time,
training tokens/s, held-out MLM accuracy against the most-frequent-token baseline, held-out NSP
accuracy, and fill-mask on a few sentences in the corpus' style.  Targets (issue 4), for 2 CPU
cores: at most 15 minutes, MLM accuracy at least twice the baseline, NSP accuracy at least 70%.
"""

import argparse
import json
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="runs/bench-pretrain", help="run directory (replaced)")
    parser.add_argument("--steps", type=int, default=None, help="override the default number of steps")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    a = parser.parse_args()

    out = Path(a.output)
    if out.exists():
        shutil.rmtree(out)
    args = PretrainArgs(output_dir=str(out))
    if a.steps:
        args.max_steps = a.steps
    start = time.perf_counter()
    result = pretrain(args)
    wall = time.perf_counter() - start

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


if __name__ == "__main__":
    main()
