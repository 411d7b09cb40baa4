"""`minibert explore`: the attention explorer, one self-contained HTML page (tools/explore.py)."""

from __future__ import annotations

from pathlib import Path

from .errors import CommandError


def add_explore_parser(sub):
    p = sub.add_parser("explore", help="an interactive page of a text's attention (HTML, works offline)",
                       description="Write one self-contained HTML page that shows every layer and head's "
                                   "attention for a text (or a pair): lines from each query to each key, every "
                                   "head as a thumbnail, and the arithmetic of one row of attention.  Several "
                                   "--model (or a pretraining run's directory, its snapshots and checkpoints) "
                                   "add a slider through them, and one beside another with the difference.")
    p.add_argument("--model", required=True, action="append", metavar="DIR",
                   help="a checkpoint directory with a tokenizer, or a pretraining run's directory; give it "
                        "again for more models (for instance random weights, pretrained, fine-tuned)")
    p.add_argument("text", help="the sentence")
    p.add_argument("--pair", default=None, help="an optional second sentence (segment B)")
    p.add_argument("--pad-to", type=int, default=None, help="pad to this many tokens to show the mask")
    p.add_argument("--output", default="attention.html", help="the page to write (default: attention.html)")
    p.set_defaults(run=run_explore)


def run_explore(a) -> int:
    from ..tools.explore import explore
    for given in a.model:
        if not Path(given).is_dir():
            raise CommandError(f"--model {given}: no such directory")
    if a.pad_to is not None and a.pad_to < 4:
        raise CommandError(f"--pad-to must be at least 4, got {a.pad_to}")
    if Path(a.output).is_dir():
        raise CommandError(f"--output {a.output} is a directory; name the page to write, e.g. attention.html")
    page = explore(a.model, a.text, pair=a.pair, pad_to=a.pad_to)
    page.save(a.output)
    n = len(page.data["models"])
    print(f"wrote {a.output} ({len(page) / 1e6:.2f} MB, {n} model{'s' if n > 1 else ''}, "
          f"{len(page.data['tokens'])} tokens); open it in a browser")
    return 0
