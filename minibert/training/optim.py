"""Adam, AdamW, the warmup/decay schedule and gradient clipping.

The optimizers hold the state (the moments m and v of every parameter, the step t); the update
of one parameter is the layer `adam_update` (minibert/layers/adam.py has the equations), run
through minibert.ops like every layer.  `Adam` adds L2 weight decay to the gradient (g + wd p, as
torch.optim.Adam); `AdamW` (Loshchilov & Hutter 2019) decays the weight directly, p = p - lr wd p,
as torch.optim.AdamW and the original BERT optimizer.  The original BERT release has no bias correction
(`correct_bias=False`): m and v are used as they are.

Weight decay skips parameters whose name matches `no_decay` (biases and LayerNorm weights, as
in BERT).  State is keyed by parameter name, so it can be saved and restored with the model.
"""

from __future__ import annotations

import math

import numpy as np

from .. import ops

NO_DECAY = ("bias", "LayerNorm.weight")


class Adam:
    decoupled = False        # weight decay added to the gradient (L2), as torch.optim.Adam

    def __init__(self, params: dict[str, np.ndarray], lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=0.0, correct_bias=True, no_decay=NO_DECAY):
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"lr, eps and weight_decay must be non-negative, got {lr}, {eps}, {weight_decay}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        self.params = params
        self.lr, self.betas, self.eps = lr, tuple(betas), eps
        self.weight_decay, self.correct_bias = weight_decay, correct_bias
        self.no_decay = tuple(no_decay)
        self.t = 0
        self.exp_avg = {k: np.zeros_like(p) for k, p in params.items()}
        self.exp_avg_sq = {k: np.zeros_like(p) for k, p in params.items()}

    def decays(self, name: str) -> bool:
        return self.weight_decay > 0 and not any(nd in name for nd in self.no_decay)

    def step(self, grads: dict[str, np.ndarray], lr: float | None = None) -> None:
        """Update every parameter in place from `grads` (keyed like the parameters)."""
        missing = [k for k in self.params if k not in grads]
        if missing:
            raise KeyError(f"no gradient for parameters: {', '.join(missing[:5])}"
                           + (" ..." if len(missing) > 5 else ""))
        lr = self.lr if lr is None else float(lr)
        self.t += 1
        for name, p in self.params.items():
            ops.adam_update(p, grads[name], self.exp_avg[name], self.exp_avg_sq[name], lr=lr,
                            betas=self.betas, eps=self.eps, step=self.t,
                            weight_decay=self.weight_decay if self.decays(name) else 0.0,
                            decoupled=self.decoupled, correct_bias=self.correct_bias)

    # ---- saving and restoring ----------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "t": self.t, "lr": self.lr, "betas": list(self.betas), "eps": self.eps,
            "weight_decay": self.weight_decay, "correct_bias": self.correct_bias,
            "no_decay": list(self.no_decay), "decoupled": self.decoupled,
            "exp_avg": {k: v.copy() for k, v in self.exp_avg.items()},
            "exp_avg_sq": {k: v.copy() for k, v in self.exp_avg_sq.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("decoupled", self.decoupled) != self.decoupled:
            raise ValueError(f"optimizer state is for {'AdamW' if state['decoupled'] else 'Adam'}, "
                             f"not {type(self).__name__}")
        for moments in ("exp_avg", "exp_avg_sq"):
            names = set(state[moments])
            if names != set(self.params):
                missing = sorted(set(self.params) - names)
                unexpected = sorted(names - set(self.params))
                raise KeyError(f"optimizer state {moments} does not match the parameters: "
                               f"missing {missing}, unexpected {unexpected}")
            for k, v in state[moments].items():
                if np.shape(v) != self.params[k].shape:
                    raise ValueError(f"optimizer state {moments}[{k}] has shape {np.shape(v)}, "
                                     f"parameter has {self.params[k].shape}")
        self.t = int(state["t"])
        self.lr, self.betas, self.eps = state["lr"], tuple(state["betas"]), state["eps"]
        self.weight_decay, self.correct_bias = state["weight_decay"], state["correct_bias"]
        self.no_decay = tuple(state["no_decay"])
        for k in self.params:
            np.copyto(self.exp_avg[k], state["exp_avg"][k])
            np.copyto(self.exp_avg_sq[k], state["exp_avg_sq"][k])


class AdamW(Adam):
    """Adam with decoupled weight decay (torch.optim.AdamW defaults: weight_decay=0.01)."""
    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                 correct_bias=True, no_decay=NO_DECAY):
        super().__init__(params, lr, betas, eps, weight_decay, correct_bias, no_decay)


def linear_warmup_decay(step: int, peak_lr: float, warmup_steps: int, total_steps: int) -> float:
    """The learning rate for update number `step` (0-based), as HF get_linear_schedule_with_warmup:

        lr = peak * step / warmup                              for step < warmup
        lr = peak * max(0, (total - step) / (total - warmup))  afterwards
    """
    if step < warmup_steps:
        return peak_lr * step / max(1, warmup_steps)
    return peak_lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients in place so that their global L2 norm is at most `max_norm`.

    norm = sqrt(sum over every gradient of sum(g^2));  if norm > max_norm: g *= max_norm / (norm + 1e-6)
    (torch.nn.utils.clip_grad_norm_).  Returns the norm before clipping.
    """
    norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))
    coef = max_norm / (norm + 1e-6)
    if coef < 1.0:
        for g in grads.values():
            g *= coef
    return norm
