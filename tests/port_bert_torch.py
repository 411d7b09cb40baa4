"""A worked example for `minibert.testing`: a small BERT for pretraining written from scratch in
plain PyTorch (not transformers, not minibert), the way someone porting BERT would write theirs,
producing its tensors under the reference-state names (docs/reference-states.md).

    state = run_port(load_state("state.safetensors"))       # {name: numpy array}
    assert_state_close(state, reference)

`bugs` plants the two mistakes the tests expect `compare` to find: "ln_eps" (LayerNorm eps 1e-5
instead of the config's 1e-12) and "scale_after_softmax" (1/sqrt(D) applied to the probabilities
instead of the scores).
"""

import json
import math

import numpy as np
import torch
import torch.nn.functional as F


def run_port(reference, bugs=()):
    config = json.loads(reference.metadata["config"])
    steps = int(reference.metadata.get("steps", 0))
    hyper = json.loads(reference.metadata["adamw"])
    W = {k[len("param."):]: torch.tensor(v, requires_grad=True) for k, v in reference.tensors.items()
         if k.startswith("param.")}
    inputs = {k[len("inputs."):]: torch.tensor(v) for k, v in reference.tensors.items() if k.startswith("inputs.")}
    out = {}
    loss = forward(W, inputs, config, bugs, out)
    loss.backward()
    out["loss"] = loss.detach().reshape(1)
    for name, w in reversed(list(W.items())):
        out["grad." + name] = w.grad.clone()
    if steps:
        decay = [w for n, w in W.items() if not any(nd in n for nd in hyper["no_decay"])]
        rest = [w for n, w in W.items() if any(nd in n for nd in hyper["no_decay"])]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": hyper["weight_decay"]},
                                 {"params": rest, "weight_decay": 0.0}],
                                lr=hyper["lr"], betas=tuple(hyper["betas"]), eps=hyper["eps"])
        losses = [loss.detach()]
        opt.step()
        for _ in range(steps - 1):
            opt.zero_grad()
            loss = forward(W, inputs, config, bugs, {})
            loss.backward()
            losses.append(loss.detach())
            opt.step()
        out["train.loss"] = torch.stack(losses)
        for name, w in W.items():
            out["train.param." + name] = w.detach().clone()
    return {k: v.detach().numpy() for k, v in out.items()}


def forward(W, inputs, config, bugs, out):
    """BertForPreTraining's forward and loss, recording the intermediates into `out`."""
    eps = 1e-5 if "ln_eps" in bugs else config["layer_norm_eps"]
    H, L = config["num_attention_heads"], config["num_hidden_layers"]
    ids, types, mask = inputs["input_ids"], inputs["token_type_ids"], inputs["attention_mask"]
    B, T = ids.shape
    g = lambda name: W["bert." + name]                                    # noqa: E731

    def norm(x, prefix):
        return F.layer_norm(x, x.shape[-1:], g(prefix + ".weight"), g(prefix + ".bias"), eps)

    emb = g("embeddings.word_embeddings.weight")[ids] + g("embeddings.position_embeddings.weight")[:T] \
        + g("embeddings.token_type_embeddings.weight")[types]
    out["embeddings.sum"] = emb
    x = out["embeddings.output"] = norm(emb, "embeddings.LayerNorm")
    blocked = (mask == 0)[:, None, None, :]                               # (B, 1, 1, T): padded keys
    for i in range(L):
        p = f"encoder.layer.{i}."
        q, k, v = (torch.einsum("btc,oc->bto", x, g(p + f"attention.self.{n}.weight")) + g(p + f"attention.self.{n}.bias")
                   for n in ("query", "key", "value"))
        q, k, v = (t.view(B, T, H, -1).permute(0, 2, 1, 3) for t in (q, k, v))   # (B, H, T, D)
        D = q.shape[-1]
        if "scale_after_softmax" in bugs:
            scores = torch.einsum("bhqd,bhkd->bhqk", q, k).masked_fill(blocked, -math.inf)
            probs = scores.softmax(-1) / math.sqrt(D)
        else:
            scores = (torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(D)).masked_fill(blocked, -math.inf)
            probs = scores.softmax(-1)
        context = torch.einsum("bhqk,bhkd->bqhd", probs, v).reshape(B, T, H * D)
        a = norm(x + F.linear(context, g(p + "attention.output.dense.weight"), g(p + "attention.output.dense.bias")),
                 p + "attention.output.LayerNorm")
        pre = F.linear(a, g(p + "intermediate.dense.weight"), g(p + "intermediate.dense.bias"))
        post = F.gelu(pre)
        y = norm(a + F.linear(post, g(p + "output.dense.weight"), g(p + "output.dense.bias")), p + "output.LayerNorm")
        for key, value in (("attention.q", q), ("attention.k", k), ("attention.v", v), ("attention.scores", scores),
                           ("attention.probs", probs), ("attention.context", context), ("attention.output", a),
                           ("ffn.pre_activation", pre), ("ffn.post_activation", post), ("output", y)):
            out[f"layer.{i}.{key}"] = value
        x = y
    pooled = out["pooler.output"] = torch.tanh(F.linear(x[:, 0], g("pooler.dense.weight"), g("pooler.dense.bias")))
    t = F.layer_norm(F.gelu(F.linear(x, W["cls.predictions.transform.dense.weight"],
                                     W["cls.predictions.transform.dense.bias"])), (x.shape[-1],),
                     W["cls.predictions.transform.LayerNorm.weight"], W["cls.predictions.transform.LayerNorm.bias"], eps)
    mlm = out["logits.mlm"] = t @ g("embeddings.word_embeddings.weight").T + W["cls.predictions.bias"]
    nsp = out["logits.nsp"] = F.linear(pooled, W["cls.seq_relationship.weight"], W["cls.seq_relationship.bias"])
    return F.cross_entropy(mlm.reshape(B * T, -1), inputs["labels"].reshape(-1), ignore_index=-100) \
        + F.cross_entropy(nsp, inputs["next_sentence_label"])


def as_numpy_state(tensors):
    return {k: np.asarray(v) for k, v in tensors.items()}
