"""`minibert pretrain`: the options (google-research/bert's names accepted too) and the run's last lines."""

from __future__ import annotations

import sys

from .errors import CommandError
from .resume import add_run_options, refuse_other_options


def add_pretrain_parser(sub):
    from ..data.pretraining import OBJECTIVES
    from ..models.presets import PRESETS
    from ..training.pretrain import PretrainArgs
    d = PretrainArgs()
    p = sub.add_parser("pretrain", help="pretrain a BERT (MLM + NSP, or MLM alone) on a text corpus",
                       description="Pretrain BERT on a corpus in BERT's format: one sentence a line, a blank "
                                   "line between documents (.txt or .txt.gz), or the text of a task file (.tsv, .csv, .jsonl, "
                                   ".conll: masked LM alone, its dev/test sentences left out); from random weights or, with "
                                   "--init-from, continuing a pretrained checkpoint.  Defaults train the tiny "
                                   "model with masked LM + next sentence prediction on the shipped King James "
                                   "Bible in about 11 minutes on 2 cores.  Where google-research/bert's "
                                   "create_pretraining_data.py / run_pretraining.py have a flag, it is "
                                   "accepted under their name too (--num-train-steps, --learning-rate, ...).  "
                                   "Data-parallel on several processes or machines: mpirun -np N minibert pretrain "
                                   "... (needs mpi4py and an MPI: pip install -e \".[mpi]\").")
    p.add_argument("--corpus", default=d.corpus,
                   help="a corpus file, a directory of .txt/.txt.gz files, a glob pattern, or a comma-separated "
                        "list of them (default: the shipped data/kjv.txt.gz); or a task file (.tsv, .csv, "
                        ".jsonl, .conll) whose text is read, labels ignored, each example one document")
    p.add_argument("--text-column", default=None, metavar="NAME",
                   help="a task file's text column, by name or 0-based position (default: a .tsv's columns but "
                        "the last; a .csv's or .jsonl's sentence1+sentence2, text, sentence, ...)")
    p.add_argument("--exclude", default=None, metavar="FILES",
                   help="evaluation file(s), comma-separated, whose sentences are left out of the corpus (the "
                        "dev and test files beside a corpus file named train.* are left out always)")
    p.add_argument("--output", default=d.output_dir, help=f"run directory (default: {d.output_dir})")
    p.add_argument("--objective", default=d.objective, choices=list(OBJECTIVES),
                   help="mlm+nsp: BERT's sentence pairs (BertForPreTraining); mlm: masked LM alone on "
                        "full-sentence packs, RoBERTa-style (BertForMaskedLM) (default: mlm for a task file, "
                        "whose examples have no next sentence; mlm+nsp for text in documents)")
    p.add_argument("--init-from", default=None, metavar="DIR",
                   help="continue pretraining this checkpoint (ours or transformers', with its tokenizer) "
                        "instead of starting from random weights; a missing MLM head is made fresh")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--model-size", default=d.model_size, choices=list(PRESETS),
                      help=f"named model size (default: {d.model_size})")
    size.add_argument("--config", help="a config.json for the model instead of a named size")
    p.add_argument("--vocab-size", type=int, default=d.vocab_size, help=f"WordPiece vocabulary (default: {d.vocab_size})")
    p.add_argument("--cache-dir", default=None,
                   help="where the tokenized corpus is kept, memory-mapped, for the next run "
                        "(default: $MINIBERT_CACHE or ~/.cache/minibert)")
    p.add_argument("--tokenizer", default=None,
                   help="a directory with tokenizer.json or vocab.txt (or a vocab.txt) to use instead of training "
                        "a vocabulary (default: the shipped corpus' own data/kjv-vocab.txt, else trained)")
    p.add_argument("--max-seq-length", type=int, default=d.max_seq_length, help=f"tokens per example (default: {d.max_seq_length})")
    p.add_argument("--batch-size", "--train-batch-size", dest="batch_size", type=int, default=d.batch_size,
                   help=f"examples per step (default: {d.batch_size})")
    p.add_argument("--grad-accum", type=int, default=d.grad_accum,
                   help="micro-batches per optimizer step: the step sees batch-size x grad-accum x MPI ranks "
                        "examples (default: 1)")
    p.add_argument("--dtype", choices=["float32", "float64"], default=d.dtype,
                   help="float64 to check that splits of a batch train the same (default: float32)")
    p.add_argument("--steps", "--num-train-steps", dest="steps", type=int, default=None,
                   help=f"optimizer steps (default: {d.max_steps})")
    p.add_argument("--lr", "--learning-rate", dest="lr", type=float, default=d.learning_rate,
                   help=f"peak learning rate (default: {d.learning_rate})")
    p.add_argument("--warmup-steps", "--num-warmup-steps", dest="warmup_steps", type=int, default=d.warmup_steps,
                   help=f"linear warmup (default: {d.warmup_steps})")
    p.add_argument("--seed", "--random-seed", dest="seed", type=int, default=d.seed, help=f"random seed (default: {d.seed})")
    p.add_argument("--eval-every", type=int, default=d.eval_every, help=f"steps between evaluations (default: {d.eval_every})")
    p.add_argument("--save-every", type=int, default=d.save_every, help=f"steps between checkpoints (default: {d.save_every})")
    p.add_argument("--snapshot-steps", default=d.snapshot_steps, metavar="STEPS",
                   help="also keep the model after these steps (0 = the initial weights), e.g. 0,100,1000, in "
                        "OUTPUT/snapshots/step-N: never pruned, for minibert explore --model OUTPUT to show how "
                        "training shaped attention (default: none; checkpoints are kept as always)")
    p.add_argument("--masked-lm-prob", type=float, default=d.masked_lm_prob,
                   help=f"fraction of each sequence to predict (default: {d.masked_lm_prob})")
    p.add_argument("--max-predictions-per-seq", type=int, default=d.max_predictions_per_seq,
                   help=f"at most this many predictions per sequence (default: {d.max_predictions_per_seq})")
    p.add_argument("--short-seq-prob", type=float, default=d.short_seq_prob,
                   help=f"mlm+nsp: chance of a shorter target length for a document (default: {d.short_seq_prob})")
    p.add_argument("--do-whole-word-mask", action="store_true", help="mask all pieces of a word together")
    p.add_argument("--static-masking", action="store_true",
                   help="draw masks once (--dupe-factor copies) instead of anew every epoch")
    p.add_argument("--dupe-factor", type=int, default=d.dupe_factor, help="copies with different masks (static masking)")
    p.add_argument("--no-unigram-bias", action="store_true",
                   help="start a new MLM output bias at zero (as transformers) instead of at the log "
                        "frequencies of the training tokens")
    p.add_argument("--dropout", type=float, default=d.dropout,
                   help="hidden and attention dropout (default: 0 for a new model, the checkpoint's own "
                        "with --init-from)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --output from its last checkpoint, with the options it "
                        "was started with (--steps may extend it)")
    add_run_options(p, run_pretrain)


def run_pretrain(a) -> int:
    from ..training.distributed import world
    from ..training.pretrain import PretrainArgs, pretrain
    if a.resume:
        refuse_other_options(a, takes="--output, --steps and --quiet")
        args = PretrainArgs(output_dir=a.output)
    else:
        args = PretrainArgs(corpus=a.corpus, output_dir=a.output, objective=a.objective, init_from=a.init_from,
                            text_column=a.text_column, exclude=a.exclude,
                            model_size=a.model_size, config_file=a.config, vocab_size=a.vocab_size,
                            tokenizer=a.tokenizer, max_seq_length=a.max_seq_length, batch_size=a.batch_size,
                            grad_accum=a.grad_accum, dtype=a.dtype, cache_dir=a.cache_dir,
                            learning_rate=a.lr, warmup_steps=a.warmup_steps, seed=a.seed, dropout=a.dropout,
                            eval_every=a.eval_every, save_every=a.save_every, snapshot_steps=a.snapshot_steps,
                            masked_lm_prob=a.masked_lm_prob,
                            max_predictions_per_seq=a.max_predictions_per_seq, short_seq_prob=a.short_seq_prob,
                            whole_word_mask=a.do_whole_word_mask, dynamic_masking=not a.static_masking,
                            dupe_factor=a.dupe_factor, unigram_bias_init=not a.no_unigram_bias)
        if a.steps is not None:
            args.max_steps = a.steps
    result = pretrain(args, resume=a.resume, max_steps=a.steps if a.resume else None, progress=not a.quiet)
    code = 128 + result.stop_signal if result.interrupted else 0    # 130 for Ctrl-C, 143 for SIGTERM
    if world().rank != 0:                                    # rank 0 speaks for the job
        return code
    if result.interrupted:
        print(f"interrupted at step {result.step}: saved {result.last_checkpoint}; continue with "
              f"minibert pretrain --resume --output {result.output_dir}", file=sys.stderr)
        return code
    ev = result.last_eval
    curve = f"; curve in {result.curve}" if result.curve else ""
    print(f"\ndone: {result.step} steps; model in {result.model_dir}; metrics in "
          f"{result.output_dir / 'metrics.jsonl'}{curve}")
    if ev:
        nsp = f", NSP accuracy {ev['nsp_accuracy']:.3f}" if "nsp_accuracy" in ev else ""
        print(f"held-out: MLM accuracy {ev['mlm_accuracy']:.3f} (most-frequent-token baseline "
              f"{ev['mlm_baseline_accuracy']:.3f}){nsp}")
    if result.fill_mask_example:
        print(f'try: minibert fill-mask --model {result.model_dir} "{result.fill_mask_example}"')
    return 0
