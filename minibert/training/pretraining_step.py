"""One pretraining step and the held-out evaluation: the losses and counts of either pretraining
model's output (BertForPreTraining: MLM + NSP; BertForMaskedLM: MLM alone), the gradient of a
global batch however it is split into micro-batches and MPI ranks, and the line an evaluation
prints.  `pretrain.py` runs the loop around them."""

from __future__ import annotations

import numpy as np

from ..data.pretraining import collate
from ..layers.cross_entropy import IGNORE_INDEX
from .loop import accumulate_gradients, optimizer_step


def mlm_logits(out):
    """The masked-LM logits of either pretraining model's output."""
    return out["prediction_logits"] if "prediction_logits" in out else out["logits"]


def batch_metrics(out, batch):
    """Correct and scored counts of one batch: MLM at the masked positions; NSP (0, 0 without it)."""
    masked_labels = batch["labels"][batch["labels"] != IGNORE_INDEX]
    mlm_correct = int((mlm_logits(out).argmax(-1) == masked_labels).sum())
    if "next_sentence_label" not in batch:
        return mlm_correct, len(masked_labels), 0, 0
    nsp_correct = int((out.seq_relationship_logits.argmax(-1) == batch["next_sentence_label"]).sum())
    return mlm_correct, len(masked_labels), nsp_correct, len(batch["next_sentence_label"])


def mlm_and_nsp_losses(out):
    """(MLM loss, NSP loss or 0.0) of either pretraining model's output."""
    if "mlm_loss" in out:
        return out.mlm_loss, out.nsp_loss
    return out.loss, 0.0


def evaluate(model, examples, batch_size, baseline_id=None) -> dict:
    """Loss and accuracy on held-out examples (dropout off); NSP's only where the examples have it."""
    model.eval()
    totals = np.zeros(6)        # mlm loss * n, nsp loss * b, mlm correct, n, nsp correct, b
    baseline_hits, count = 0, 0
    for start in range(0, len(examples), batch_size):
        batch = collate(examples[start:start + batch_size])
        out = model(**batch, predict_masked_only=True)
        mc, n, nc, b = batch_metrics(out, batch)
        mlm_loss, nsp_loss = mlm_and_nsp_losses(out)
        totals += (mlm_loss * n, nsp_loss * b, mc, n, nc, b)
        count += len(batch["input_ids"])
        if baseline_id is not None:
            baseline_hits += int((batch["labels"] == baseline_id).sum())
    model.train()
    mlm_loss, nsp_loss, mc, n, nc, b = totals
    n = max(n, 1)                           # held-out text with nothing to mask scores 0, not 0/0
    result = {"loss": mlm_loss / n, "mlm_loss": mlm_loss / n, "mlm_accuracy": mc / n, "examples": count}
    if b:
        result.update(loss=mlm_loss / n + nsp_loss / b, nsp_loss=nsp_loss / b, nsp_accuracy=nc / b)
    if baseline_id is not None:
        result["mlm_baseline_accuracy"] = baseline_hits / n
    return result


def accumulate_step(model, micro_batches, optimizer, lr, max_grad_norm, step, ranks, stop=False):
    """One optimizer step over this rank's micro-batches and every other rank's: the gradient of the
    global batch's loss, the mean over all its masked tokens (MLM) and sentences (NSP), however the
    batch is split.  Micro-batch i weighs its mean losses by n_i / N (masked tokens) and b_i / B
    (sentences) in the backward; the ranks' sums are then added up (MPI allreduce) and every rank
    takes the same clipped AdamW step.  Returns the window sums, the gradient norm before
    clipping, and whether any rank asked to stop (Ctrl-C)."""
    counts = np.array([sum(int((m["labels"] != IGNORE_INDEX).sum()) for m in micro_batches),
                       sum(len(m["input_ids"]) for m in micro_batches), float(stop)])
    n_total, b_total, stops = ranks.sum(counts)
    weighted = []
    for batch in micro_batches:
        weights = dict(mlm_scale=int((batch["labels"] != IGNORE_INDEX).sum()) / max(n_total, 1))
        if "next_sentence_label" in batch:
            weights["nsp_scale"] = len(batch["input_ids"]) / b_total
        weighted.append((batch, weights))
    grads, outputs = accumulate_gradients(model, weighted, step, predict_masked_only=True)
    sums = np.zeros(7)                                  # mlm loss * n, nsp loss * b, mc, n, nc, b, tokens
    for batch, out in zip(micro_batches, outputs):
        mc, n, nc, b = batch_metrics(out, batch)
        mlm_loss, nsp_loss = mlm_and_nsp_losses(out)
        sums += (mlm_loss * n, nsp_loss * b, mc, n, nc, b, int(batch["attention_mask"].sum()))
    ranks.allreduce_grads(grads)
    sums = ranks.sum(sums)
    grad_norm = optimizer_step(grads, optimizer, lr, max_grad_norm, step)
    mlm, nsp = sums[0] / max(n_total, 1), sums[1] / max(sums[5], 1)
    totals = dict(loss=mlm + nsp, mlm=mlm, nsp=nsp, mc=int(sums[2]), n=int(sums[3]), nc=int(sums[4]),
                  b=int(sums[5]), tokens=int(sums[6]))
    return totals, grad_norm, bool(stops)


def describe_eval(ev) -> str:
    """One line for a held-out evaluation."""
    nsp = f", NSP accuracy {ev['nsp_accuracy']:.3f}" if "nsp_accuracy" in ev else ""
    return (f"held-out MLM accuracy {ev['mlm_accuracy']:.3f} (most-frequent-token baseline "
            f"{ev['mlm_baseline_accuracy']:.3f}){nsp}, loss {ev['loss']:.3f}")
