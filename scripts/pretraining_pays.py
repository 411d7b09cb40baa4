"""What pretraining buys: the same fine-tuning from the pretrained model and from random weights.

    python scripts/pretraining_pays.py [--model runs/pretrain/model] [--seeds 0 1 2]

Both runs fine-tune BertForSequenceClassification on the shipped movie-review sentiment data
(data/sentiment: train for training, dev to pick the best epoch, test scored once) with the same
configuration, tokenizer, hyper-parameters and budget; the only difference is where the encoder's
weights start: the main job's pretrained model (`python -m minibert pretrain`), or a random
initialisation of the same config (BERT's own, initializer_range 0.02).  That is the claim of the
BERT paper, section 5.2 and table 6, at the scale of one laptop's 11 minutes.
"""

import argparse
import json
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="runs/pretrain/model", help="the pretrained model (the main job's)")
    parser.add_argument("--output", default="runs/pretraining-pays")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--json", default=None, help="also write the results here")
    a = parser.parse_args()
    if not (Path(a.model) / "config.json").is_file():
        parser.error(f"{a.model} has no pretrained model: run `python -m minibert pretrain` first")
    out = Path(a.output)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "random-init"
        results = {"pretrained": [], "random": []}
        for seed in a.seeds:
            # the same config and tokenizer, the weights drawn as BERT draws them
            model = BertModel(BertConfig.from_json_file(Path(a.model) / "config.json"), seed=seed)
            model.tokenizer = BertTokenizer.from_pretrained(a.model)
            model.save_pretrained(scratch)
            for name, start in (("pretrained", a.model), ("random", scratch)):
                t0 = time.perf_counter()
                run = finetune(FinetuneArgs(model=str(start), task="classify", train_file=str(DATA / "train.tsv"),
                                            eval_file=str(DATA / "dev.tsv"), output_dir=str(out / f"{name}-{seed}"),
                                            epochs=a.epochs, batch_size=a.batch_size, learning_rate=a.lr,
                                            max_length=a.max_length, seed=seed, overwrite_output_dir=True),
                               progress=False)
                acc = test_accuracy(run.best_dir)
                results[name].append({"seed": seed, "dev_accuracy": run.best_metric, "test_accuracy": acc,
                                      "minutes": (time.perf_counter() - t0) / 60})
                print(f"seed {seed}, {name:>10} start: dev accuracy {run.best_metric:.3f}, test accuracy {acc:.3f} "
                      f"({results[name][-1]['minutes']:.1f} min)")
    for name, runs in results.items():
        accs = [r["test_accuracy"] for r in runs]
        print(f"{name:>10}: test accuracy {np.mean(accs):.3f} (seeds {', '.join(f'{x:.3f}' for x in accs)})")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
