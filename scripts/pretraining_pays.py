"""What pretraining buys: the same fine-tuning from the pretrained model and from random weights.

    python scripts/pretraining_pays.py [--model runs/pretrain/model] [--seeds 0 1 2]

Both starts fine-tune BertForSequenceClassification on the shipped movie-review sentiment data
(data/sentiment: train for training, dev to choose, test scored once) with the same configuration,
tokenizer and budget (epochs, batch size, schedule); the only difference is where the encoder's
weights start: the main job's pretrained model (`python -m minibert pretrain`), or a random
initialisation of the same config (BERT's own, initializer_range 0.02).  That is the claim of the
BERT paper (section 5.2, table 6) at the scale of one laptop's 11 minutes.

To be fair to both, each start gets its own learning rate: the best on dev among --lrs with the
first seed; then every seed runs at it, and the test accuracies are averaged.  With
--train-fractions the same is done on a random part of the training set too (pretraining should
matter more when labelled data is scarce).
"""

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from minibert import BertConfig, BertForSequenceClassification, BertModel, BertTokenizer
from minibert.data.finetuning import read_tsv
from minibert.tools.predict import predict
from minibert.training.finetune import FinetuneArgs, finetune

DATA = Path(__file__).resolve().parent.parent / "data" / "sentiment"


def test_accuracy(best_dir) -> float:
    texts, _, labels = read_tsv(DATA / "test.tsv")
    model = BertForSequenceClassification.from_pretrained(best_dir)
    predicted = predict(model, texts, batch_size=64)
    return float(np.mean([p["label"] == gold for p, gold in zip(predicted, labels)]))


def train_subset(fraction, directory: Path) -> Path:
    """The training file, or a random `fraction` of its lines (fixed seed) written beside it."""
    if fraction >= 1:
        return DATA / "train.tsv"
    lines = (DATA / "train.tsv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    kept = random.Random(20181011).sample(rows, int(round(len(rows) * fraction)))
    path = directory / f"train-{fraction}.tsv"
    path.write_text("\n".join([header, *kept]) + "\n", encoding="utf-8")
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="runs/pretrain/model", help="the pretrained model (the main job's)")
    parser.add_argument("--output", default="runs/pretraining-pays")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3])
    parser.add_argument("--train-fractions", type=float, nargs="+", default=[1.0, 0.1])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--json", default=None, help="also write the results here")
    a = parser.parse_args()
    if not (Path(a.model) / "config.json").is_file():
        parser.error(f"{a.model} has no pretrained model: run `python -m minibert pretrain` first")
    out = Path(a.output)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def run(start, fraction, lr, seed):
            model_dir = a.model
            if start == "random":          # the same config and tokenizer, the weights drawn as BERT draws them
                model = BertModel(BertConfig.from_json_file(Path(a.model) / "config.json"), seed=seed)
                model.tokenizer = BertTokenizer.from_pretrained(a.model)
                model_dir = model.save_pretrained(tmp / f"random-{seed}")
            t0 = time.perf_counter()
            result = finetune(FinetuneArgs(model=str(model_dir), task="classify",
                                           train_file=str(train_subset(fraction, tmp)),
                                           eval_file=str(DATA / "dev.tsv"),
                                           output_dir=str(out / f"{start}-{fraction}-{lr}-{seed}"),
                                           epochs=a.epochs, batch_size=a.batch_size, learning_rate=lr,
                                           max_length=a.max_length, seed=seed, overwrite_output_dir=True),
                              progress=False)
            record = {"start": start, "train_fraction": fraction, "lr": lr, "seed": seed,
                      "dev_accuracy": result.best_metric, "test_accuracy": test_accuracy(result.best_dir),
                      "minutes": (time.perf_counter() - t0) / 60}
            results.append(record)
            print(f"{start:>10} start, {fraction:.0%} of train, lr {lr:g}, seed {seed}: dev {record['dev_accuracy']:.3f}, "
                  f"test {record['test_accuracy']:.3f} ({record['minutes']:.1f} min)", flush=True)
            return record

        summary = []
        for fraction in a.train_fractions:
            for start in ("pretrained", "random"):
                tried = [run(start, fraction, lr, a.seeds[0]) for lr in a.lrs]
                best = max(tried, key=lambda r: r["dev_accuracy"])
                runs = [best] + [run(start, fraction, best["lr"], seed) for seed in a.seeds[1:]]
                accs = [r["test_accuracy"] for r in runs]
                summary.append({"start": start, "train_fraction": fraction, "lr": best["lr"],
                                "test_accuracy_mean": float(np.mean(accs)), "test_accuracies": accs})
    print()
    for s in summary:
        print(f"{s['start']:>10} start, {s['train_fraction']:.0%} of train (lr {s['lr']:g}): test accuracy "
              f"{s['test_accuracy_mean']:.3f} (seeds {', '.join(f'{x:.3f}' for x in s['test_accuracies'])})")
    if a.json:
        Path(a.json).write_text(json.dumps({"runs": results, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
