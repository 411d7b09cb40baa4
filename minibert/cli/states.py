"""`minibert dump` and `minibert compare`: reference states, written and walked tensor by tensor."""

from __future__ import annotations

from .errors import CommandError


def add_dump_parser(sub):
    from ..states import ADAMW, HEADS
    p = sub.add_parser("dump", help="write a reference state: inputs, every intermediate, gradients, K steps",
                       description="Write one safetensors file with everything a BERT computes on a batch, "
                                   "dropout off: the inputs, the weights, every intermediate under documented "
                                   "names (docs/reference-states.md), the logits and loss, every parameter's "
                                   f"gradient and, with --steps K, K AdamW steps ({ADAMW}; no decay on biases "
                                   "and LayerNorm weights).  For checking another BERT against minibert.")
    p.add_argument("texts", nargs="*", help='the batch; "A ||| B" for a sentence pair')
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a checkpoint directory (ours or transformers'), with a tokenizer for texts")
    source.add_argument("--config", help="a config.json: a model with random weights drawn from --seed")
    p.add_argument("--ids", default=None, help='token ids instead of texts, as JSON: "[[2, 45, 3], [2, 7, 9, 3]]"')
    p.add_argument("--head", choices=list(HEADS), default="pretraining", help="(default: pretraining)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64", help="(default: float64)")
    p.add_argument("--steps", type=int, default=0, help="AdamW steps to record (default: 0)")
    p.add_argument("--seed", type=int, default=0, help="weights (with --config) and labels (default: 0)")
    p.add_argument("--output", default="state.safetensors", help="(default: state.safetensors)")
    p.set_defaults(run=run_dump)


def run_dump(a) -> int:
    from ..states import dump
    state = dump(model=a.model, config=a.config, head=a.head, texts=a.texts, ids=a.ids, dtype=a.dtype,
                 steps=a.steps, seed=a.seed, output=a.output)
    print(f"wrote {len(state)} tensors to {a.output}")
    return 0


def add_compare_parser(sub):
    p = sub.add_parser("compare", help="compare two reference states tensor by tensor; name the first divergence",
                       description="Walk two state files (or one against a live minibert run on its weights and "
                                   "inputs) in computation order, print name, shape, max abs and max relative error "
                                   "per tensor, and name the first tensor beyond the tolerance.  Exit status 1 on "
                                   "a divergence, 0 when all agree.")
    p.add_argument("first", help="a state file (yours)")
    p.add_argument("second", nargs="?", help="the reference state file")
    p.add_argument("--live", choices=["minibert"], default=None,
                   help="compare FIRST with minibert run now on FIRST's weights and inputs")
    p.add_argument("--rtol", type=float, default=None, help="relative tolerance (default: 1e-9 float64, 1e-4 float32)")
    p.add_argument("--atol", type=float, default=None, help="absolute tolerance (default: 1e-12 float64, 1e-6 float32)")
    p.add_argument("--only-differences", action="store_true", help="print only the rows that differ")
    p.set_defaults(run=run_compare)


def run_compare(a) -> int:
    from ..states import compare_states, live_state, load_state
    if (a.second is None) == (a.live is None):
        raise CommandError("compare needs a second state file, or --live minibert")
    first = load_state(a.first)
    second = live_state(first) if a.live else load_state(a.second)
    comparison = compare_states(first, second, rtol=a.rtol, atol=a.atol)
    table = comparison.table()
    if a.only_differences:
        lines = table.splitlines()
        table = "\n".join(lines[:1] + [line for line in lines[1:] if "DIFF" in line or line.startswith("only")])
    print(table)
    print(comparison.message())
    return 0 if comparison.ok else 1
