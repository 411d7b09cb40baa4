"""What pretraining and fine-tuning share: one training step, the run's metrics file
(minibert.files.MetricsLog), the progress bar and the curve.

    grads, outputs = accumulate_gradients(model, [(batch, {}), ...], step)
    grad_norm = optimizer_step(grads, optimizer, lr, max_grad_norm, step)

is one update: the forward with its loss and the backward of each micro-batch (weighted by its
share of the step's loss), gradient clipping, the optimizer step.  A loss or gradient norm that
is not finite stops the run (TrainingError naming the step) before anything is updated.
"""

from __future__ import annotations

import math
from pathlib import Path

from tqdm.auto import tqdm

from .optim import clip_grad_norm


class TrainingError(RuntimeError):
    """Training cannot go on (bad input, a non-finite loss): the message says why."""


def accumulate_gradients(model, micro_batches, step, **forward_kwargs):
    """The summed gradients of micro-batches: `micro_batches` is [(the model's keyword inputs,
    the backward's keyword arguments: how the micro-batch weighs in the step's loss)].  `step`
    (1-based) names the update in errors.  Returns (gradients, the forward outputs)."""
    grads, outputs = None, []
    for batch, weights in micro_batches:
        out = model(**batch, **forward_kwargs)
        if not math.isfinite(out.loss):
            raise TrainingError(f"loss is {out.loss} at step {step}: stopped")
        g = model.backward(**weights)
        if grads is None:
            grads = g
        else:
            for name, value in g.items():
                grads[name] += value
        outputs.append(out)
    return grads, outputs


def optimizer_step(grads, optimizer, lr, max_grad_norm, step) -> float:
    """Clip the gradients to `max_grad_norm` and update; returns the norm before clipping.  A
    norm that is not finite stops the run before anything is updated."""
    grad_norm = clip_grad_norm(grads, max_grad_norm)
    if not math.isfinite(grad_norm):
        raise TrainingError(f"gradient norm is {grad_norm} at step {step}: stopped")
    optimizer.step(grads, lr=lr)
    return grad_norm


def progress_bar(total, desc, unit, enabled=True, initial=0):
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True)


def printer(enabled=True):
    """print for messages between progress-bar updates (tqdm.write), or nothing."""
    return tqdm.write if enabled else (lambda *args, **kwargs: None)


def draw_curve(plot, metrics_path, png_path, log) -> bool:
    """Draw the run's curve with `plot(metrics_path, png_path)` (minibert.tools.viz), when
    matplotlib is installed.  Returns whether a picture was written."""
    try:
        plot(metrics_path, png_path)
    except ImportError:
        log(f"matplotlib is not installed: no {Path(png_path).name} (pip install matplotlib)")
        return False
    return True
