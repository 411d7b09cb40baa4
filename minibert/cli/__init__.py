"""The `minibert` command line (also `python -m minibert`).

    minibert pretrain [--model-size tiny] [--steps N] [--output runs/pretrain] ...
    minibert pretrain --resume --output runs/pretrain
    minibert fill-mask --model runs/pretrain/model "In the beginning God created the [MASK]."
    minibert finetune --model DIR --task {classify,pair,tag,qa} --train FILE --eval FILE
    minibert predict --model runs/finetune/best --input FILE [--output predictions.jsonl]
    minibert dump --model DIR --head pretraining "I love Korea" --output state.safetensors
    minibert compare mine.safetensors state.safetensors      # exit 1 at the first divergence
    minibert info base                       # sizes, parameters per part, memory
    minibert attention --model DIR "I love Korea" --output attention.png
    minibert explore --model DIR "I love Korea" [--pair "..."] --output attention.html

One module per command (pretrain, fill_mask, finetune, predict, states: dump and compare, info:
info and attention, explore); `errors.run_command` is the one boundary: bad input ends with a one-line
error and exit status 2, never a NumPy traceback.
"""

from __future__ import annotations

import argparse
import sys

from .errors import run_command, say_error
from .fill_mask import add_fill_mask_parser
from .explore import add_explore_parser
from .finetune import add_finetune_parser
from .info import add_attention_parser, add_info_parser
from .predict import add_predict_parser
from .pretrain import add_pretrain_parser
from .states import add_compare_parser, add_dump_parser


def build_parser():
    parser = argparse.ArgumentParser(prog="minibert", description="BERT in NumPy: pretrain, inspect, predict.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_pretrain_parser(sub)
    add_fill_mask_parser(sub)
    add_finetune_parser(sub)
    add_predict_parser(sub)
    add_dump_parser(sub)
    add_compare_parser(sub)
    add_info_parser(sub)
    add_attention_parser(sub)
    add_explore_parser(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from ..training.distributed import launched_by_mpi, world
    if not launched_by_mpi():
        return run_command(args.run, args)
    # Under mpirun every rank runs this; one that fails stops them all (MPI Abort), never a hang.
    # A stop the ranks agreed on (Ctrl-C, SIGTERM: exit status 128 + the signal) ends each by itself.
    try:
        ranks = world()
    except RuntimeError as e:                                # launched by mpirun, but no mpi4py
        return say_error(str(e))
    try:
        code = run_command(args.run, args)
    except BaseException as e:
        ranks.abort(f"minibert: error (rank {ranks.rank}): {type(e).__name__}: {e}; stopping every rank")
    if code and code < 128 and ranks.size > 1:
        ranks.abort(f"minibert: rank {ranks.rank} stopped with exit status {code}; stopping every rank", code)
    return code
