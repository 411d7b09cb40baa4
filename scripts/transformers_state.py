"""The same reference state from HuggingFace transformers: the weights and inputs of a state file
run through transformers' own BERT, its intermediates caught with forward hooks and written
under the reference names (docs/reference-states.md), for `minibert compare`.

    minibert dump --model DIR --head pretraining "I love Korea" --output minibert.safetensors
    python scripts/transformers_state.py minibert.safetensors --output transformers.safetensors
    minibert compare transformers.safetensors minibert.safetensors

Needs torch and transformers (minibert itself does not).  `attention.scores` is not written:
transformers keeps no pre-softmax scores.
"""

import argparse
import json
import sys


from minibert.states import load_state, save_state

HF_CLASSES = {"pretraining": "BertForPreTraining", "mlm": "BertForMaskedLM", "classify": "BertForSequenceClassification",
              "tag": "BertForTokenClassification", "qa": "BertForQuestionAnswering"}
LOGITS = {"prediction_logits": "logits.mlm", "seq_relationship_logits": "logits.nsp", "logits": "logits",
          "start_logits": "logits.start", "end_logits": "logits.end"}


def transformers_state(reference) -> dict:
    """{name: array} from transformers on `reference`'s weights and inputs (its head, dtype, steps)."""
    import torch
    import transformers

    meta = reference.metadata
    dtype = {"float64": torch.float64, "float32": torch.float32}[meta["dtype"]]
    config = transformers.BertConfig(**json.loads(meta["config"]), attn_implementation="eager")
    model = getattr(transformers, HF_CLASSES[meta["head"]])(config).to(dtype).eval()
    params = {k[len("param."):]: torch.tensor(v) for k, v in reference.tensors.items() if k.startswith("param.")}
    missing, unexpected = model.load_state_dict(params, strict=False)
    if unexpected or set(missing) - {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}:
        raise ValueError(f"the state's weights do not fit transformers' model: missing {missing}, unexpected {unexpected}")
    inputs = {k[len("inputs."):]: torch.tensor(v) for k, v in reference.tensors.items() if k.startswith("inputs.")}
    H = config.num_attention_heads
    out = {}

    def record(name, pick=lambda module, args, output: output):
        def hook(module, args, output):
            out[name] = pick(module, args, output).detach().clone()
        return hook

    def heads(name):
        return record(name, lambda m, a, o: o.view(o.shape[0], o.shape[1], H, -1).permute(0, 2, 1, 3))

    bert = model.bert
    hooks = [bert.embeddings.LayerNorm.register_forward_hook(record("embeddings.sum", lambda m, a, o: a[0])),
             bert.embeddings.LayerNorm.register_forward_hook(record("embeddings.output"))]
    for i, layer in enumerate(bert.encoder.layer):
        s, p = layer.attention.self, f"layer.{i}."
        hooks += [s.query.register_forward_hook(heads(p + "attention.q")),
                  s.key.register_forward_hook(heads(p + "attention.k")),
                  s.value.register_forward_hook(heads(p + "attention.v")),
                  s.register_forward_hook(record(p + "attention.context", lambda m, a, o: o[0])),
                  layer.attention.register_forward_hook(record(p + "attention.output", lambda m, a, o: o[0])),
                  layer.intermediate.dense.register_forward_hook(record(p + "ffn.pre_activation")),
                  layer.intermediate.register_forward_hook(record(p + "ffn.post_activation")),
                  layer.register_forward_hook(record(p + "output", lambda m, a, o: o[0] if isinstance(o, tuple) else o))]
    if bert.pooler is not None:
        hooks.append(bert.pooler.register_forward_hook(record("pooler.output")))
    result = model(**inputs, output_attentions=True)
    for h in hooks:
        h.remove()
    for i, probs in enumerate(result.attentions):
        out[f"layer.{i}.attention.probs"] = probs.detach()
    for field, name in LOGITS.items():
        if getattr(result, field, None) is not None:
            out[name] = result[field].detach()
    result.loss.backward()
    out["loss"] = result.loss.detach().reshape(1)
    named = list(model.named_parameters())
    for name, w in reversed(named):
        out["grad." + name] = w.grad.clone()
    steps = int(meta.get("steps", 0))
    if steps:
        hyper = json.loads(meta["adamw"])
        groups = [{"params": [w for n, w in named if not any(d in n for d in hyper["no_decay"])],
                   "weight_decay": hyper["weight_decay"]},
                  {"params": [w for n, w in named if any(d in n for d in hyper["no_decay"])], "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=hyper["lr"], betas=tuple(hyper["betas"]), eps=hyper["eps"])
        losses = []
        for step in range(steps):
            if step:
                opt.zero_grad()
                loss = model(**inputs).loss
                loss.backward()
            else:
                loss = result.loss
            losses.append(loss.detach())
            opt.step()
        out["train.loss"] = torch.stack(losses)
        out.update({"train.param." + n: w.detach().clone() for n, w in named})
    order = [n for n in reference.names if n in out] + [n for n in out if n not in reference]
    return {n: out[n].numpy() for n in order}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("state", help="a state file written by minibert dump (weights, inputs, head)")
    parser.add_argument("--output", default="transformers.safetensors")
    a = parser.parse_args()
    reference = load_state(a.state)
    tensors = transformers_state(reference)
    save_state(a.output, tensors, {"dtype": reference.metadata.get("dtype", "float32"), "producer": "transformers"})
    print(f"wrote {len(tensors)} tensors to {a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
