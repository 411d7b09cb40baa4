"""`minibert fill-mask`: the likeliest tokens for each [MASK] of each text."""

from __future__ import annotations

import json
import sys

from .errors import CommandError


def add_fill_mask_parser(sub):
    p = sub.add_parser("fill-mask", help="predict the [MASK] tokens of a sentence",
                       description="Print the most likely tokens for each [MASK] in each text (a masked-LM "
                                   "or pretraining checkpoint, ours or transformers').")
    p.add_argument("--model", required=True, help="checkpoint directory with a tokenizer (e.g. runs/pretrain/model)")
    p.add_argument("text", nargs="+", help='one or more sentences with [MASK], e.g. "And God said, Let there be [MASK]."')
    p.add_argument("--top-k", type=int, default=5, help="how many candidates to print (default: 5)")
    p.add_argument("--targets", default=None, metavar="WORD,WORD,...",
                   help="score only these candidate words (as the pipeline's targets=; a word that is not "
                        "in the vocabulary is scored by its first WordPiece, with a warning)")
    p.add_argument("--json", action="store_true",
                   help="print transformers' fill-mask pipeline output (score, token, token_str, sequence) as JSON")
    p.set_defaults(run=run_fill_mask)


def run_fill_mask(a) -> int:
    from ..checkpoints import checkpoint_with_tokenizer
    from ..tools.fill_mask import fill_mask, load_masked_lm
    model, info = load_masked_lm(checkpoint_with_tokenizer(a.model))
    if any(k.startswith(("cls.predictions", "vocab_")) for k in info["missing_keys"]):
        print("warning: the checkpoint has no MLM head; its predictions are random", file=sys.stderr)
    targets = None if a.targets is None else [w.strip() for w in a.targets.split(",") if w.strip()]
    if targets is not None and not targets:
        raise CommandError(f"--targets {a.targets!r} names no word: give comma-separated words")
    results = fill_mask(model, a.text, a.top_k, targets=targets)
    if a.json:
        print(json.dumps(results[0] if len(a.text) == 1 else results, indent=1, ensure_ascii=False))
        return 0
    for text, result in zip(a.text, results):
        per_mask = [result] if isinstance(result[0], dict) else result
        print(text)
        for i, candidates in enumerate(per_mask, start=1):
            print(f"[MASK] {i}:" if len(per_mask) > 1 else "[MASK]:")
            for c in candidates:
                print(f"  {c['token_str']:<15} {c['score']:.3f}")
    return 0
