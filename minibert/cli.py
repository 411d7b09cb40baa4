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

Bad input ends with a one-line error and exit status 2; nothing prints a NumPy traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path


def _error(message: str) -> int:
    from .training.distributed import launch_rank
    rank = launch_rank()
    where = f" (rank {rank})" if rank is not None else ""
    print(f"minibert: error{where}: {message}", file=sys.stderr, flush=True)
    return 2


# ---- pretrain -------------------------------------------------------------------------------

def add_pretrain_parser(sub):
    from .data.pretraining import OBJECTIVES
    from .models.presets import PRESETS
    from .training.pretrain import PretrainArgs
    d = PretrainArgs()
    p = sub.add_parser("pretrain", help="pretrain a BERT (MLM + NSP, or MLM alone) on a text corpus",
                       description="Pretrain BERT on a corpus in BERT's format: one sentence a line, a blank "
                                   "line between documents (.txt or .txt.gz); from random weights or, with "
                                   "--init-from, continuing a pretrained checkpoint.  Defaults train the tiny "
                                   "model with masked LM + next sentence prediction on the shipped King James "
                                   "Bible in about 11 minutes on 2 cores.  Where google-research/bert's "
                                   "create_pretraining_data.py / run_pretraining.py have a flag, it is "
                                   "accepted under their name too (--num-train-steps, --learning-rate, ...).  "
                                   "Data-parallel on several processes or machines: mpirun -np N minibert pretrain "
                                   "... (needs mpi4py and an MPI: pip install -e \".[mpi]\").")
    p.add_argument("--corpus", default=d.corpus,
                   help="a corpus file, a directory of .txt/.txt.gz files, a glob pattern, or a comma-separated "
                        "list of them (default: the shipped data/kjv.txt.gz)")
    p.add_argument("--output", default=d.output_dir, help=f"run directory (default: {d.output_dir})")
    p.add_argument("--objective", default=d.objective, choices=list(OBJECTIVES),
                   help="mlm+nsp: BERT's sentence pairs (BertForPreTraining); mlm: masked LM alone on "
                        "full-sentence packs, RoBERTa-style (BertForMaskedLM) (default: mlm+nsp)")
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
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_pretrain)


def run_pretrain(a) -> int:
    from .checkpoints import CheckpointError
    from .files import RunDirectoryInUse
    from .training.pretrain import PretrainArgs, TrainingError, pretrain
    if a.resume:
        defaults = build_parser().parse_args(["pretrain"])
        ignored = [f"--{k.replace('_', '-')}" for k, v in vars(a).items()
                   if k not in RESUME_OPTIONS and v != getattr(defaults, k, v)]
        if ignored:
            return _error(f"--resume continues the run in {a.output} with the options it was started with "
                          f"(its args.json); it takes only --output, --steps and --quiet, not {', '.join(ignored)}")
        args = PretrainArgs(output_dir=a.output)
    else:
        args = PretrainArgs(corpus=a.corpus, output_dir=a.output, objective=a.objective, init_from=a.init_from,
                            model_size=a.model_size, config_file=a.config, vocab_size=a.vocab_size,
                            tokenizer=a.tokenizer, max_seq_length=a.max_seq_length, batch_size=a.batch_size,
                            grad_accum=a.grad_accum, dtype=a.dtype, cache_dir=a.cache_dir,
                            learning_rate=a.lr, warmup_steps=a.warmup_steps, seed=a.seed, dropout=a.dropout,
                            eval_every=a.eval_every, save_every=a.save_every, masked_lm_prob=a.masked_lm_prob,
                            max_predictions_per_seq=a.max_predictions_per_seq, short_seq_prob=a.short_seq_prob,
                            whole_word_mask=a.do_whole_word_mask, dynamic_masking=not a.static_masking,
                            dupe_factor=a.dupe_factor, unigram_bias_init=not a.no_unigram_bias)
        if a.steps is not None:
            args.max_steps = a.steps
    try:
        result = pretrain(args, resume=a.resume, max_steps=a.steps if a.resume else None,
                          progress=not a.quiet)
    except (TrainingError, CheckpointError, RunDirectoryInUse, FileNotFoundError, ValueError, MemoryError) as e:
        return _error(str(e))
    except OSError as e:                                       # e.g. the disk is full
        return _error(_os_error(e))
    from .training.distributed import world
    if world().rank != 0:                                    # rank 0 speaks for the job
        return 130 if result.interrupted else 0
    if result.interrupted:
        print(f"interrupted at step {result.step}: saved {result.last_checkpoint}; continue with "
              f"minibert pretrain --resume --output {result.output_dir}", file=sys.stderr)
        return 130
    ev = result.last_eval
    curve = f"; curve in {result.curve}" if result.curve else ""
    print(f"\ndone: {result.step} steps; model in {result.model_dir}; metrics in "
          f"{result.output_dir / 'metrics.jsonl'}{curve}")
    if ev:
        nsp = f", NSP accuracy {ev['nsp_accuracy']:.3f}" if "nsp_accuracy" in ev else ""
        print(f"held-out: MLM accuracy {ev['mlm_accuracy']:.3f} (most-frequent-token baseline "
              f"{ev['mlm_baseline_accuracy']:.3f}){nsp}")
    print(f'try: minibert fill-mask --model {result.model_dir} "And God said, Let there be [MASK]."')
    return 0


RESUME_OPTIONS = {"resume", "output", "steps", "quiet", "run", "command"}


def _os_error(e: OSError) -> str:
    """An operating-system error in one line: the file and the reason (e.g. a full disk)."""
    where = f"{e.filename}: " if e.filename else ""
    return f"{where}{e.strerror or e}"


# ---- fill-mask ------------------------------------------------------------------------------

def add_fill_mask_parser(sub):
    p = sub.add_parser("fill-mask", help="predict the [MASK] tokens of a sentence",
                       description="Print the most likely tokens for each [MASK] in each text (a masked-LM "
                                   "or pretraining checkpoint, ours or transformers').")
    p.add_argument("--model", required=True, help="checkpoint directory with a tokenizer (e.g. runs/pretrain/model)")
    p.add_argument("text", nargs="+", help='one or more sentences with [MASK], e.g. "And God said, Let there be [MASK]."')
    p.add_argument("--top-k", type=int, default=5, help="how many candidates to print (default: 5)")
    p.add_argument("--json", action="store_true",
                   help="print transformers' fill-mask pipeline output (score, token, token_str, sequence) as JSON")
    p.set_defaults(run=run_fill_mask)


def run_fill_mask(a) -> int:

    from .checkpoints import CheckpointError
    from .tools.fill_mask import fill_mask, load_masked_lm
    if not Path(a.model).is_dir():
        return _error(f"model directory not found: {a.model}")
    try:
        model, info = load_masked_lm(a.model)
        if model.tokenizer is None:
            return _error(f"{a.model} has no tokenizer files (tokenizer.json or vocab.txt)")
        if any(k.startswith(("cls.predictions", "vocab_")) for k in info["missing_keys"]):
            print("warning: the checkpoint has no MLM head; its predictions are random", file=sys.stderr)
        results = fill_mask(model, a.text, a.top_k)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        return _error(str(e))
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


# ---- finetune -------------------------------------------------------------------------------

def add_finetune_parser(sub):
    from .training.finetune import FinetuneArgs
    from .training.tasks import TASKS
    d = FinetuneArgs("", "", "", "")
    p = sub.add_parser("finetune", help="fine-tune a checkpoint on a classification, pair, tagging or QA task",
                       description="Fine-tune a BERT checkpoint (ours or HuggingFace's) on a task. Formats: "
                                   "classify: TSV sentence<TAB>label; pair: TSV a<TAB>b<TAB>label; "
                                   "tag: CoNLL columns (token ... tag); qa: SQuAD v1.1 JSON.")
    p.add_argument("--model", help="checkpoint directory with a tokenizer")
    p.add_argument("--task", choices=list(TASKS))
    p.add_argument("--train", help="training file")
    p.add_argument("--eval", help="evaluation file (scored every epoch, or every --eval-steps)")
    p.add_argument("--output", default=d.output_dir, help=f"output directory (default: {d.output_dir})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"(default: {d.epochs})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"(default: {d.batch_size})")
    p.add_argument("--grad-accum", type=int, default=d.grad_accum,
                   help="micro-batches of --batch-size per optimizer step (default: 1)")
    p.add_argument("--lr", type=float, default=d.learning_rate, help=f"peak learning rate (default: {d.learning_rate})")
    p.add_argument("--max-length", type=int, default=d.max_length, help=f"tokens per example (default: {d.max_length})")
    p.add_argument("--trainable-layers", type=int, default=None,
                   help="train only the head and the top N encoder layers (0: frozen encoder); default all")
    p.add_argument("--doc-stride", type=int, default=None,
                   help="qa: context tokens that neighbouring windows share (default: max-length // 3)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--eval-steps", type=int, default=None,
                   help="evaluate (and checkpoint) every N steps instead of after every epoch")
    p.add_argument("--early-stopping-patience", type=int, default=None,
                   help="stop after N evaluations without a better score (default: never)")
    p.add_argument("--resume", action="store_true",
                   help="go on with the interrupted run in --output from its last checkpoint, with the "
                        "options it was started with")
    p.add_argument("--overwrite-output-dir", action="store_true",
                   help="replace a run already in --output (default: refuse)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_finetune)


def run_finetune(a) -> int:
    from .checkpoints import CheckpointError
    from .training.finetune import FinetuneArgs, finetune
    if a.resume:
        defaults = build_parser().parse_args(["finetune"])
        ignored = [f"--{k.replace('_', '-')}" for k, v in vars(a).items()
                   if k not in RESUME_OPTIONS and v != getattr(defaults, k, v)]
        if ignored:
            return _error(f"--resume goes on with the run in {a.output} with the options it was started with "
                          f"(its args.json); it takes only --output and --quiet, not {', '.join(ignored)}")
        args = None
    else:
        missing = [f"--{name}" for name in ("model", "task", "train", "eval") if getattr(a, name) is None]
        if missing:
            return _error(f"finetune needs {', '.join(missing)} (or --resume --output DIR)")
        args = FinetuneArgs(model=a.model, task=a.task, train_file=a.train, eval_file=a.eval,
                            output_dir=a.output, epochs=a.epochs, batch_size=a.batch_size,
                            grad_accum=a.grad_accum, learning_rate=a.lr, max_length=a.max_length, trainable_layers=a.trainable_layers,
                            doc_stride=a.doc_stride, seed=a.seed, eval_steps=a.eval_steps,
                            early_stopping_patience=a.early_stopping_patience,
                            overwrite_output_dir=a.overwrite_output_dir)
    try:
        result = finetune(args, progress=not a.quiet, resume=a.resume, output_dir=a.output)
    except (CheckpointError, FileNotFoundError, ValueError, RuntimeError, MemoryError) as e:
        return _error(str(e))
    except OSError as e:                                       # e.g. the disk is full
        return _error(_os_error(e))
    if result.interrupted:
        print(f"interrupted at step {result.step}: saved a checkpoint; go on with "
              f"minibert finetune --resume --output {result.output_dir}", file=sys.stderr)
        return 130
    print(f"done: best {result.metric_name} {result.best_metric:.4f}; model in {result.best_dir}")
    return 0


# ---- predict --------------------------------------------------------------------------------

def add_predict_parser(sub):
    from .training.tasks import TASKS
    p = sub.add_parser("predict", help="predict with a fine-tuned model: labels, tags or answers",
                       description="Run a fine-tuned checkpoint on new inputs and write one JSON line per input. "
                                   "Inputs as for finetune, labels optional: classify: TSV sentence[<TAB>label]; "
                                   "pair: TSV a<TAB>b[<TAB>label]; tag: CoNLL (the word in the first column); "
                                   "qa: SQuAD v1.1 JSON.")
    p.add_argument("--model", required=True, help="a fine-tuned checkpoint directory (e.g. runs/finetune/best)")
    p.add_argument("--input", required=True, help="the file to predict")
    p.add_argument("--output", default=None, help="JSON lines file to write (default: standard output)")
    p.add_argument("--task", choices=list(TASKS), default=None,
                   help="the input's format (default: the task the model was fine-tuned on)")
    p.add_argument("--batch-size", type=int, default=32, help="(default: 32)")
    p.add_argument("--max-length", type=int, default=None, help="tokens per input (default: the model's limit)")
    p.add_argument("--doc-stride", type=int, default=None, help="qa: context tokens windows share (default: max-length // 3)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_predict)


def run_predict(a) -> int:
    from .checkpoints import CheckpointError
    from .tools.predict import load_task_model, predict_file
    if not Path(a.model).is_dir():
        return _error(f"model directory not found: {a.model}")
    try:
        model = load_task_model(a.model)
        if model.tokenizer is None:
            return _error(f"{a.model} has no tokenizer files (tokenizer.json or vocab.txt)")
        records, summary = predict_file(model, a.input, task=a.task, batch_size=a.batch_size,
                                        max_length=a.max_length, doc_stride=a.doc_stride, progress=not a.quiet)
    except (CheckpointError, FileNotFoundError, ValueError, TypeError) as e:
        return _error(str(e))
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if a.output:
        try:
            Path(a.output).write_text(lines, encoding="utf-8")
        except OSError as e:
            return _error(_os_error(e))
        print(f"wrote {len(records)} predictions to {a.output}{summary}", file=sys.stderr)
    else:
        sys.stdout.write(lines)
        if summary:
            print(summary.lstrip("; "), file=sys.stderr)
    return 0


# ---- dump / compare -------------------------------------------------------------------------

def add_dump_parser(sub):
    from .states import ADAMW, HEADS
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
    from .checkpoints import CheckpointError
    from .states import dump
    try:
        state = dump(model=a.model, config=a.config, head=a.head, texts=a.texts, ids=a.ids, dtype=a.dtype,
                     steps=a.steps, seed=a.seed, output=a.output)
    except (CheckpointError, FileNotFoundError, ValueError, TypeError) as e:
        return _error(str(e))
    except OSError as e:
        return _error(_os_error(e))
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
    from .states import compare_states, live_state, load_state
    if (a.second is None) == (a.live is None):
        return _error("compare needs a second state file, or --live minibert")
    try:
        first = load_state(a.first)
        second = live_state(first) if a.live else load_state(a.second)
        comparison = compare_states(first, second, rtol=a.rtol, atol=a.atol)
    except (FileNotFoundError, ValueError, KeyError) as e:
        return _error(str(e))
    table = comparison.table()
    if a.only_differences:
        lines = table.splitlines()
        table = "\n".join(lines[:1] + [line for line in lines[1:] if "DIFF" in line or line.startswith("only")])
    print(table)
    print(comparison.message())
    return 0 if comparison.ok else 1


# ---- info / attention ---------------------------------------------------------------------------

def add_info_parser(sub):
    from .models.presets import PRESETS
    p = sub.add_parser("info", help="sizes and parameter counts of a named size or a checkpoint",
                       description="Print layers, heads, sizes, parameters per part and memory for a "
                                   f"named size ({', '.join(PRESETS)}) or a checkpoint directory.")
    p.add_argument("model", help="a size name or a directory with config.json")
    p.set_defaults(run=run_info)


def run_info(a) -> int:
    from .config import BertConfig, DistilBertConfig
    from .models.presets import PRESETS, preset_config
    from .tools.info import describe
    try:
        if a.model in PRESETS:
            config = preset_config(a.model)
        elif Path(a.model, "config.json").is_file():
            path = Path(a.model, "config.json")
            kind = json.loads(path.read_text()).get("model_type", "bert")
            config_class = {"bert": BertConfig, "distilbert": DistilBertConfig}.get(kind)
            if config_class is None:
                return _error(f"{path} describes a {kind!r} model; minibert knows bert and distilbert")
            config = config_class.from_json_file(path)
        else:
            return _error(f"{a.model!r} is neither a size name ({', '.join(PRESETS)}) nor a directory "
                          f"with config.json")
    except (ValueError, FileNotFoundError) as e:
        return _error(str(e))
    print(describe(config, a.model))
    return 0


def add_attention_parser(sub):
    p = sub.add_parser("attention", help="draw a sentence's attention maps, one per head, as a PNG",
                       description="Draw the attention probabilities of every head of one layer for a "
                                   "sentence (or a pair), tokens on both axes.")
    p.add_argument("--model", required=True, help="checkpoint directory with a tokenizer")
    p.add_argument("text", help="the sentence")
    p.add_argument("--pair", default=None, help="an optional second sentence (segment B)")
    p.add_argument("--layer", type=int, default=-1, help="which layer, 0-based; -1 the last (default)")
    p.add_argument("--pad-to", type=int, default=None, help="pad to this many tokens to show the mask")
    p.add_argument("--output", default="attention.png", help="the PNG to write (default: attention.png)")
    p.set_defaults(run=run_attention)


def run_attention(a) -> int:
    from .checkpoints import CheckpointError
    from .models.bert import BertModel
    if not Path(a.model).is_dir():
        return _error(f"model directory not found: {a.model}")
    from .tools.viz import plot_attention
    if importlib.util.find_spec("matplotlib") is None:       # viz imports it only when drawing
        return _error("drawing needs matplotlib: pip install matplotlib")
    try:
        model = BertModel.from_pretrained(a.model)
        if model.tokenizer is None:
            return _error(f"{a.model} has no tokenizer files (tokenizer.json or vocab.txt)")
        plot_attention(model, a.text, a.output, layer=a.layer, text_pair=a.pair, pad_to=a.pad_to)
    except ImportError as e:
        return _error(f"drawing needs matplotlib ({e}): pip install matplotlib")
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        return _error(str(e))
    except OSError as e:
        return _error(_os_error(e))
    print(f"wrote {a.output}")
    return 0


# ---- entry point ----------------------------------------------------------------------------

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
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .training.distributed import launched_by_mpi, world
    if not launched_by_mpi():
        return args.run(args)
    # Under mpirun every rank runs this; one that fails stops them all (MPI Abort), never a hang.
    try:
        ranks = world()
    except RuntimeError as e:                                # launched by mpirun, but no mpi4py
        return _error(str(e))
    try:
        code = args.run(args)
    except BaseException as e:
        ranks.abort(f"minibert: error (rank {ranks.rank}): {type(e).__name__}: {e}; stopping every rank")
    if code and ranks.size > 1:
        ranks.abort(f"minibert: rank {ranks.rank} stopped with exit status {code}; stopping every rank", code)
    return code


if __name__ == "__main__":
    sys.exit(main())
