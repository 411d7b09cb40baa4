"""The pretraining race (scripts/bench_pretrain.py --against transformers) runs the same job on
both sides: from the same initial weights, on the same examples in the same order, with the same
schedule, clipping and weight decay, transformers' BertForPreTraining + torch's AdamW track
minibert step for step.  A short run is checked here; the race itself is a benchmark."""

import importlib.util
import json
import pathlib

import numpy as np


def load_script():
    path = pathlib.Path(__file__).parent.parent / "scripts" / "bench_pretrain.py"
    spec = importlib.util.spec_from_file_location("bench_pretrain", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_both_sides_of_the_race_train_the_same_job(tmp_path):
    import torch
    torch.set_num_threads(2)
    race = load_script()
    # a short warmup, so that the weights move well away from the start within the 20 steps
    args = race.PretrainArgs(output_dir=str(tmp_path / "minibert"), max_steps=20, warmup_steps=2, log_every=10,
                             eval_every=10, save_every=20, max_eval_examples=128)
    result, clock = race.run_minibert(args)
    assert result.step == 20 and sorted(clock.at_step) == list(range(1, 21))
    records = [json.loads(line) for line in (tmp_path / "minibert" / "metrics.jsonl").read_text().splitlines()]
    ours_losses = [r["loss"] for r in records if r["split"] == "train"]
    ours_eval = [r["mlm_accuracy"] for r in records if r["split"] == "eval"]

    curve, steps, baseline, theirs_losses = race.run_transformers(args, tmp_path / "transformers", budget=1e9)
    assert steps == 20 and [c[1] for c in curve] == [10, 20]
    # float32 on both sides: the same mean loss over each log interval (steps 1-10, 11-20), while
    # the loss falls by far more than the tolerance
    assert ours_losses[0] - ours_losses[1] > 50 * 1e-4 * ours_losses[0]
    np.testing.assert_allclose(theirs_losses, ours_losses, rtol=1e-4)
    # held-out MLM accuracy at the same steps, on the same examples: within a few predictions
    np.testing.assert_allclose([c[2] for c in curve], ours_eval, atol=0.01)
    assert 0.0 < baseline < 0.2
