"""Pretraining: masked LM + next sentence prediction (or masked LM alone) on a corpus, from raw
text to a checkpoint, from random weights or continuing a pretrained checkpoint.

    run = pretrain(PretrainArgs(corpus="data/kjv.txt.gz", output_dir="runs/pretrain"))
    run = pretrain(PretrainArgs(corpus="my-domain.txt", objective="mlm", init_from="path/to/bert"))

objective "mlm+nsp" trains BertForPreTraining on BERT's sentence pairs; "mlm" trains
BertForMaskedLM on full-sentence packs (RoBERTa; transformers' run_mlm.py).  With `init_from`
(ours or a transformers checkpoint, with its tokenizer) the model starts from those weights and
reads the corpus with that tokenizer; a checkpoint without an MLM head (a BertModel) gets a fresh
one, and says so.

The run directory holds
    args.json                   the arguments (what `resume` reads back)
    tokenizer/                  the WordPiece vocabulary of the run
    metrics.jsonl               one JSON line per log interval ("train") and per evaluation ("eval")
    curve.png                   loss and accuracy curves (when matplotlib is installed)
    checkpoint-0000500/         HF checkpoint + tokenizer + optimizer.safetensors + trainer_state.json
    model/                      the final model with its tokenizer (HF format)

Training never loses work: a checkpoint directory is written under a temporary name and renamed
into place, so the newest complete one is always readable; `resume=True` continues from it with
the same subsequent losses as an uninterrupted run (the data of an epoch is a function of the
seed, and the dropout generator's state is saved); a NaN or infinite loss stops the run naming
the step, leaving the last good checkpoint; Ctrl-C or SIGTERM (to one rank or all) finishes the
current step on every rank, saves and exits.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checkpoints import checkpoint_with_tokenizer
from ..config import BertConfig
from ..data.pretraining import (OBJECTIVES, DocumentView, PretrainingData, Shard, Vocab, collate, corpus_files,
                                split_indices)
from ..data.token_cache import TokenizedCorpus, corpus_fingerprint
from ..files import MetricsLog, RunLock, remove_temporaries, write_atomic
from ..models.bert import BertForMaskedLM, BertForPreTraining
from ..models.presets import preset_config
from ..models.sizes import check_fits_in_memory
from ..tokenization import BertTokenizer
from ..tools.viz import plot_training_curve
from .checkpointing import checkpoint_dirs, read_run_args, resume_from, save_checkpoint, save_snapshot
from .distributed import StopRequest, world
from .loop import TrainingError, draw_curve, printer, progress_bar
from .optim import AdamW, linear_warmup_decay
from .pretraining_corpus import check_held_out, corpus_reader, default_objective, training_text
from .pretraining_step import accumulate_step, describe_eval, evaluate


# The shipped corpus, found beside the package in a source checkout (`pip install -e .`), and its
# WordPiece vocabulary (scripts/build_vocab.py; data/README.md says why it is shipped).
DEFAULT_CORPUS = str(Path(__file__).resolve().parents[2] / "data" / "kjv.txt.gz")
SHIPPED_VOCAB = Path(DEFAULT_CORPUS).with_name("kjv-vocab.txt")


@dataclass
class PretrainArgs:
    corpus: str = DEFAULT_CORPUS
    output_dir: str = "runs/pretrain"
    objective: str | None = None               # "mlm+nsp", or "mlm": masked LM alone, on full-sentence packs;
                                               # None: the corpus decides (mlm for a task file, else mlm+nsp)
    text_column: str | None = None             # a task file's text column (name or 0-based position)
    exclude: str | None = None                 # evaluation files whose sentences are never pretrained on
                                               # (comma-separated; beside train.* its dev/test files always)
    init_from: str | None = None               # continue a pretrained checkpoint (with its tokenizer)
    model_size: str = "tiny"                   # a preset name (minibert.models.presets) ...
    config_file: str | None = None             # ... or a config.json (its vocab_size is replaced)
    vocab_size: int = 8000
    tokenizer: str | None = None               # a tokenizer directory (or a vocab.txt) instead of training one;
                                               # None: the shipped vocabulary for the shipped corpus at
                                               # the default vocab_size, else one trained on the corpus
    dropout: float | None = None               # hidden and attention dropout; None: 0 for a new model
                                               # (small data, short runs), the checkpoint's own with init_from
    max_seq_length: int = 64
    batch_size: int = 64                       # examples per micro-batch of one process
    grad_accum: int = 1                        # micro-batches per optimizer step (global batch =
                                               # batch_size x grad_accum x MPI ranks)
    dtype: str = "float32"                     # "float64" to check that splits of a batch agree
    cache_dir: str | None = None               # where tokenized corpora are kept (default: $MINIBERT_CACHE
                                               # or ~/.cache/minibert)
    max_steps: int = 4400
    learning_rate: float = 1e-3
    warmup_steps: int = 150
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 0
    eval_fraction: float = 0.03                # of the documents, held out
    max_eval_examples: int = 512
    eval_every: int = 250
    save_every: int = 250
    log_every: int = 10
    keep_checkpoints: int = 2
    snapshot_steps: str = ""                    # "0,100,1000": the model kept after these steps in
                                               # RUN/snapshots/ (for minibert explore), beside checkpoints
    short_seq_prob: float = 0.1
    masked_lm_prob: float = 0.15
    max_predictions_per_seq: int = 20
    whole_word_mask: bool = False
    dynamic_masking: bool = True
    dupe_factor: int = 1
    unigram_bias_init: bool = True              # start the MLM output bias at log unigram frequencies

    def validate(self, resuming: bool = False):
        """Check every option (and that the files named exist) before a run touches its directory.
        A resumed run reads its own tokenizer and checkpoints: `init_from` may have moved since."""
        if self.dtype not in ("float32", "float64"):
            raise TrainingError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.objective not in OBJECTIVES:
            raise TrainingError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.init_from is not None:
            clashing = [name for name, value in (("config_file", self.config_file), ("tokenizer", self.tokenizer))
                        if value is not None]
            clashing += [name for name in ("model_size", "vocab_size")
                         if getattr(self, name) != getattr(PretrainArgs, name)]
            if clashing:
                raise TrainingError(f"init_from {self.init_from} brings its own config and tokenizer: drop "
                                    f"{', '.join(clashing)}")
            if not resuming:
                checkpoint_with_tokenizer(self.init_from, option="--init-from")
        if self.config_file is not None and not Path(self.config_file).is_file():
            raise TrainingError(f"--config {self.config_file}: no such file (a model's config.json)")
        if self.tokenizer is not None and not Path(self.tokenizer).exists():
            raise TrainingError(f"--tokenizer {self.tokenizer}: no such directory or vocab.txt")
        for name in ("vocab_size", "max_seq_length", "batch_size", "grad_accum", "max_steps", "eval_every",
                     "save_every", "log_every", "keep_checkpoints", "max_predictions_per_seq",
                     "dupe_factor", "max_eval_examples"):
            if getattr(self, name) <= 0:
                raise TrainingError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_seq_length < 8:
            raise TrainingError(f"max_seq_length must be at least 8, got {self.max_seq_length}")
        if not 0.0 < self.masked_lm_prob < 1.0:
            raise TrainingError(f"masked_lm_prob must be in (0, 1), got {self.masked_lm_prob}")
        for name in ("warmup_steps", "weight_decay", "max_grad_norm"):
            if not getattr(self, name) >= 0:
                raise TrainingError(f"{name} must be non-negative, got {getattr(self, name)}")
        self.snapshot_step_set()
        if not self.learning_rate > 0:
            raise TrainingError(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0.0 <= self.eval_fraction < 1.0 or not 0.0 <= self.short_seq_prob <= 1.0:
            raise TrainingError(f"eval_fraction must be in [0, 1) and short_seq_prob in [0, 1], got "
                                f"{self.eval_fraction}, {self.short_seq_prob}")

    def snapshot_step_set(self) -> set[int]:
        """The steps of `snapshot_steps`, checked: integers from 0 (the initial weights) to max_steps."""
        words = [w.strip() for w in self.snapshot_steps.split(",") if w.strip()]
        try:
            steps = {int(w) for w in words}
        except ValueError:
            raise TrainingError(f"snapshot_steps must be step numbers separated by commas (0,100,1000), got "
                                f"{self.snapshot_steps!r}") from None
        outside = sorted(s for s in steps if not 0 <= s <= self.max_steps)
        if outside:
            raise TrainingError(f"snapshot_steps {', '.join(map(str, outside))} outside the run's steps "
                                f"0..{self.max_steps}")
        return steps


@dataclass
class RunResult:
    output_dir: Path
    step: int
    model_dir: Path | None           # the final model (None when stopped early)
    interrupted: bool = False
    last_eval: dict | None = None
    curve: Path | None = None        # curve.png, when matplotlib drew it
    last_checkpoint: Path | None = None
    stop_signal: int | None = None   # signal.SIGINT or SIGTERM when interrupted
    fill_mask_example: str | None = None   # a held-out sentence with a [MASK]


# ---- the run --------------------------------------------------------------------------------

def _make_output_dir(run_dir: Path):
    if run_dir.exists() and not run_dir.is_dir():
        raise TrainingError(f"output {run_dir} is a file, not a directory: choose another --output")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise TrainingError(f"output directory {run_dir} is not writable ({e.strerror})") from None


def _check_output(run_dir: Path, resume: bool):
    if not resume and (checkpoint_dirs(run_dir) or (run_dir / "metrics.jsonl").exists()):
        raise TrainingError(f"{run_dir} already holds a run: pass --resume to continue it, or "
                            f"choose another --output")
    if resume and not (run_dir / "args.json").is_file():
        raise TrainingError(f"nothing to resume in {run_dir}: it has no args.json")
    for name in ("model", "tokenizer"):
        if (run_dir / name).is_symlink():
            raise TrainingError(f"{run_dir / name} is a symbolic link (to {os.readlink(run_dir / name)}): "
                                f"minibert will not write through it; remove the link or choose another --output")


def _check_world_size(run_dir: Path, ranks):
    """A run resumes on as many MPI processes as wrote its newest checkpoint (the batches would be
    split differently on another number)."""
    for path in reversed(checkpoint_dirs(run_dir)):
        try:
            state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
            size = int(state.get("world_size", 1))
        except (OSError, ValueError, TypeError, AttributeError):
            continue                                        # damaged: resume_from skips it too
        if size != ranks.size:
            raise TrainingError(f"{path} was written by a run of {size} MPI process(es): resume it with as "
                                f"many (mpirun -np {size}); with {ranks.size} the batches would be split "
                                f"differently")
        return


def _model_config(args: PretrainArgs, vocab_size: int) -> BertConfig:
    """A new model's config: the preset or config file, the tokenizer's vocabulary, the dropout."""
    if args.config_file:
        config = BertConfig.from_json_file(args.config_file)
        config.vocab_size = vocab_size
        config.pad_token_id = 0
        config.validate()
    else:
        config = preset_config(args.model_size, vocab_size=vocab_size)
    p = 0.0 if args.dropout is None else args.dropout
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = p
    config.validate()
    return config


def build_model(args: PretrainArgs, tokenizer, log):
    """The model to train: new, or `init_from`'s weights (a missing MLM head fresh, and said).
    Returns (model, whether its MLM head is new)."""
    model_class = BertForPreTraining if args.objective == "mlm+nsp" else BertForMaskedLM
    if args.init_from is None:
        config = _model_config(args, tokenizer.vocab_size)
        check_fits_in_memory(config, np.dtype(args.dtype), copies=4,
                             what="training with Adam (weights, gradients, two moments)")
        return model_class(config, seed=args.seed, dtype=np.dtype(args.dtype)), True
    overrides = {}
    if args.dropout is not None:
        overrides = dict(hidden_dropout_prob=args.dropout, attention_probs_dropout_prob=args.dropout)
    model, info = model_class.from_pretrained(args.init_from, seed=args.seed, output_loading_info=True,
                                              dtype=np.dtype(args.dtype), **overrides)
    check_fits_in_memory(model.config, np.float32, copies=3, what="training with Adam (gradients, two moments)")
    fresh = info["missing_keys"]
    log(f"continuing from {args.init_from} ({info['weights_file']})" +
        (f"; new, randomly initialised: {', '.join(fresh)}" if fresh else ""))
    return model, "cls.predictions.bias" in fresh


def pretrain(args: PretrainArgs | None = None, resume: bool = False, max_steps: int | None = None,
             progress: bool = True, on_step=None) -> RunResult:
    """Run (or, with `resume`, continue) pretraining.  `max_steps` overrides the stored value on
    resume.  `on_step(step, model, record)` is called after every update (for tests and hooks)."""
    run_dir = Path((args or PretrainArgs()).output_dir)
    ranks = world()
    if ranks.rank != 0:                                     # rank 0 checks and writes; the others read
        ranks.barrier()
        args = read_run_args(run_dir, PretrainArgs)
        return _pretrain(args, run_dir, resume, printer(False), False, on_step, ranks)
    _make_output_dir(run_dir)
    with RunLock(run_dir):                                  # the run owns its directory
        _check_output(run_dir, resume)
        if resume:
            remove_temporaries(run_dir)                     # what interrupted saves left
        args = read_run_args(run_dir, PretrainArgs) if resume else (args or PretrainArgs())
        if max_steps is not None:
            args.max_steps = max_steps
        if args.objective is None:
            args.objective = default_objective(corpus_files(args.corpus))
        args.validate(resuming=resume)                      # everything checked before anything is written
        corpus_reader(args)
        if resume:
            _check_world_size(run_dir, ranks)
        write_atomic(run_dir / "args.json",
                     lambda tmp: Path(tmp).write_text(json.dumps(dataclasses.asdict(args), indent=1)))
        ranks.barrier()
        return _pretrain(args, run_dir, resume, printer(progress), progress, on_step, ranks)


def _split(args, n_documents, nsp):
    """The held-out split by document index (corpus order), as a clear error when impossible.  Whole
    documents are held out: NSP needs 2 on each side (its random sentences come from another
    document), MLM alone 1; --objective mlm is suggested only where it would work."""
    if n_documents == 0:
        raise TrainingError(f"corpus {args.corpus} is empty: expected one sentence a line, a blank line "
                            f"between documents")
    sides = 2 if args.eval_fraction > 0 else 1               # training, and held out
    needed = {"mlm+nsp": 2 * sides, "mlm": sides}
    objective = "mlm+nsp" if nsp else "mlm"
    try:
        return split_indices(n_documents, args.eval_fraction, args.seed, min_documents=2 if nsp else 1)
    except ValueError:
        hint = "separate documents with a blank line"
        if nsp and n_documents >= needed["mlm"]:
            hint += f", or use --objective mlm (masked LM alone needs {needed['mlm']})"
        raise TrainingError(f"corpus {args.corpus} has {n_documents} document(s); {objective} needs at least "
                            f"{needed[objective]}{' (some are held out for evaluation)' if sides == 2 else ''}: "
                            f"{hint}") from None


def load_tokenizer(path) -> BertTokenizer:
    """A tokenizer directory (tokenizer.json or vocab.txt), or a vocab.txt file itself."""
    return BertTokenizer.from_vocab(path) if Path(path).is_file() else BertTokenizer.from_pretrained(path)


def uses_shipped_vocab(args: PretrainArgs) -> bool:
    """The shipped corpus at the default vocabulary size reads with the shipped vocabulary."""
    return (Path(args.corpus).resolve() == Path(DEFAULT_CORPUS).resolve() and SHIPPED_VOCAB.is_file()
            and args.vocab_size == PretrainArgs.vocab_size)


@dataclass
class PretrainingInputs:
    """What a run reads: the tokenizer, the training examples (an epoch at a time), the held-out
    examples, and the training text's token counts (the unigram bias; the baseline's token)."""
    tokenizer: BertTokenizer
    train_data: PretrainingData
    eval_examples: list
    token_counts: np.ndarray
    baseline_id: int                    # the commonest token of the training text
    n_train_documents: int
    n_eval_documents: int
    example: str | None = None          # a held-out sentence with a [MASK], for fill-mask


def prepare_inputs(args: PretrainArgs, run_dir: Path, resume: bool, log, ranks) -> PretrainingInputs:
    """The corpus's files, the tokenizer (saved in the run directory), the token cache, the
    held-out split, the examples."""
    nsp = args.objective == "mlm+nsp"
    files, reader = corpus_reader(args)
    fingerprint = corpus_fingerprint(files) + reader.fingerprint()        # the text, and what is read of it
    seen = ranks.allgather(fingerprint)                     # every rank must read the same text
    if len(set(seen)) > 1:
        differing = [r for r, f in enumerate(seen) if f != seen[0]]
        raise TrainingError(f"corpus {args.corpus} is not the same file(s) on every MPI process: rank(s) "
                            f"{', '.join(map(str, differing))} read other content than rank 0 (a copy on each "
                            f"machine that differs?); give every rank the same corpus")
    check_held_out(args, files, reader, say=printer(ranks.rank == 0))
    tokenizer_dir = run_dir / "tokenizer"
    if ranks.rank != 0:
        ranks.barrier()                                     # rank 0 has saved the tokenizer and the cache
        tokenizer = BertTokenizer.from_pretrained(tokenizer_dir)
    elif resume and tokenizer_dir.is_dir():
        tokenizer = BertTokenizer.from_pretrained(tokenizer_dir)
    elif args.init_from:
        tokenizer = BertTokenizer.from_pretrained(args.init_from)
    elif args.tokenizer:
        tokenizer = load_tokenizer(args.tokenizer)
    elif uses_shipped_vocab(args):
        log(f"using the shipped WordPiece vocabulary {SHIPPED_VOCAB} (the same on every run)")
        tokenizer = BertTokenizer.from_vocab(SHIPPED_VOCAB)
    else:
        # The same text trains the same vocabulary in every process (train_from_texts); the run
        # keeps its own all the same, and resume reuses it.
        n_documents = sum(1 for path in files for _ in reader.documents(path))
        train_idx, _ = _split(args, n_documents, nsp)
        log(f"training a WordPiece vocabulary of {args.vocab_size} on {args.corpus}")
        tokenizer = BertTokenizer.train_from_texts(training_text(files, train_idx, read_documents=reader.documents),
                                                   args.vocab_size, show_progress=False)
    corpus = TokenizedCorpus.build_or_open(files, tokenizer, args.cache_dir, reader.documents, log,
                                           fingerprint)
    if ranks.rank == 0:
        if not resume or not tokenizer_dir.is_dir():
            tokenizer.save_pretrained(tokenizer_dir)
        ranks.barrier()
    train_idx, eval_idx = _split(args, len(corpus), nsp)
    nonempty = np.diff(corpus.documents) > 0               # a document that tokenizes to nothing is left out
    train_docs = DocumentView(corpus, [i for i in train_idx if nonempty[i]])
    eval_docs = DocumentView(corpus, [i for i in eval_idx if nonempty[i]])
    vocab = Vocab.from_tokenizer(tokenizer)
    example_kwargs = dict(max_seq_length=args.max_seq_length, short_seq_prob=args.short_seq_prob,
                          masked_lm_prob=args.masked_lm_prob,
                          max_predictions_per_seq=args.max_predictions_per_seq,
                          whole_word_mask=args.whole_word_mask)
    train_data = PretrainingData(train_docs, vocab, seed=args.seed, dynamic=args.dynamic_masking,
                                 dupe_factor=args.dupe_factor, objective=args.objective, **example_kwargs)
    eval_examples = []
    if len(eval_docs) and ranks.rank == 0:                  # rank 0 alone evaluates
        eval_examples = PretrainingData(eval_docs, vocab, seed=args.seed + 1, dynamic=False, objective=args.objective,
                                        **example_kwargs).epoch(0)[:args.max_eval_examples]
    # the most-frequent-token baseline: always predict the commonest token of the training text
    counts = corpus.token_counts(train_docs.indices, tokenizer.vocab_size)
    if not set(np.flatnonzero(counts).tolist()) - set(vocab.special_ids):
        raise TrainingError(f"corpus {args.corpus} has no words to learn: every token of its training part is "
                            f"a special token such as [CLS] or [MASK], which are never masked")
    example = fill_mask_example(eval_docs, tokenizer) or fill_mask_example(train_docs, tokenizer)
    return PretrainingInputs(tokenizer, train_data, eval_examples, counts, int(np.argmax(counts)),
                             len(train_idx), len(eval_idx), example)


def fill_mask_example(documents, tokenizer, limit=200) -> str | None:
    """A sentence of `documents` (token ids) with one whole word replaced by [MASK], for the hint at
    the end of a run: the first of 5 to 20 pieces with a word of 4+ letters near its middle."""
    special = set(tokenizer.all_special_ids)
    for d in range(min(len(documents), limit)):
        for ids in documents[d]:
            tokens = tokenizer.convert_ids_to_tokens(ids)
            if not 5 <= len(tokens) <= 20 or special & set(ids):
                continue
            middle = sorted(range(1, len(tokens) - 1), key=lambda i: abs(i - len(tokens) // 2))
            for i in middle:
                whole = not tokens[i].startswith("##") and not tokens[i + 1].startswith("##")
                if whole and tokens[i].isalpha() and len(tokens[i]) >= 4:
                    text = tokenizer.decode(ids[:i]) + " [MASK] " + tokenizer.decode(ids[i + 1:])
                    return " ".join(text.split())
    return None


def initial_model(args: PretrainArgs, inputs: PretrainingInputs, log, checkpoints=()):
    """The model a run starts from (build_model), in training mode, with a new MLM head's output
    bias at the training text's log unigram frequencies (with `unigram_bias_init`)."""
    if checkpoints and args.init_from and not Path(args.init_from).is_dir():
        # resumed, and init_from has moved: the run's own checkpoint has the same architecture
        args = dataclasses.replace(args, init_from=str(checkpoints[-1]))
    model, new_head = build_model(args, inputs.tokenizer, log)
    config = model.config
    if args.max_seq_length > config.max_position_embeddings:
        raise TrainingError(f"max_seq_length {args.max_seq_length} is longer than the model's "
                            f"max_position_embeddings ({config.max_position_embeddings})")
    model.train()
    if args.unigram_bias_init and new_head:
        # log p(token) of the training text (add-one smoothed): the model starts where a
        # unigram model ends, instead of first learning the frequencies through its hidden state
        freq = np.ones(config.vocab_size)
        freq[:len(inputs.token_counts)] += inputs.token_counts
        model.params["cls.predictions.bias"][...] = np.log(freq / freq.sum())
    model.tokenizer = inputs.tokenizer
    return model


def _pretrain(args: PretrainArgs, run_dir: Path, resume: bool, log, progress: bool, on_step, ranks) -> RunResult:
    nsp = args.objective == "mlm+nsp"
    checkpoints = checkpoint_dirs(run_dir) if resume else []
    inputs = prepare_inputs(args, run_dir, resume, log, ranks)
    train_data, eval_examples, baseline_id = inputs.train_data, inputs.eval_examples, inputs.baseline_id

    # -- model, optimizer, and where we are
    say = printer(ranks.rank == 0)               # results and warnings: printed even with --quiet
    model = initial_model(args, inputs, say, checkpoints)
    config = model.config
    optimizer = AdamW(model.params, lr=args.learning_rate, eps=1e-6, weight_decay=args.weight_decay)
    step, epoch, batch_in_epoch, last_checkpoint = 0, 0, 0, None
    metrics = MetricsLog(run_dir / "metrics.jsonl") if ranks.rank == 0 else None
    window = dict(loss=0.0, mlm=0.0, nsp=0.0, mc=0, n=0, nc=0, b=0, tokens=0, steps=0, seconds=0.0)
    if checkpoints:
        last_checkpoint, state = resume_from(checkpoints, model, optimizer)
        if state.get("world_size", 1) != ranks.size:
            raise TrainingError(f"{last_checkpoint} was written by a run of {state.get('world_size', 1)} MPI "
                                f"process(es): resume it with as many (mpirun -np {state.get('world_size', 1)}); "
                                f"with {ranks.size} the batches would be split differently")
        step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        window.update(state.get("window", {}))             # the log interval an interruption cut short
        if metrics:
            metrics.truncate(step)
        log(f"resuming from {last_checkpoint} (step {step})")
    elif resume and metrics:
        metrics.truncate(0)
    log(f"model: {config.num_hidden_layers} layers, hidden {config.hidden_size}, "
        f"{config.num_attention_heads} heads, {model.num_parameters():,} parameters; "
        f"{inputs.n_train_documents} training documents, {inputs.n_eval_documents} held out; "
        f"objective {args.objective}")
    share = args.batch_size * args.grad_accum                          # one rank's examples in a step
    per_step = share * ranks.size                                      # examples in one optimizer step
    shard = Shard(ranks.rank, ranks.size, share)
    if args.grad_accum > 1 or ranks.size > 1:
        log(f"{ranks.size} process(es) x {args.grad_accum} micro-batch(es) of {args.batch_size}: "
            f"{per_step} examples a step")

    # -- Ctrl-C or SIGTERM: every rank finishes the same step, rank 0 saves, then all exit
    stop = StopRequest(ranks)
    t0 = time.perf_counter() - window["seconds"]
    bar = progress_bar(args.max_steps, "pretraining", "step", progress, initial=step)
    last_eval = None

    def checkpoint():
        nonlocal last_checkpoint
        window["seconds"] = time.perf_counter() - t0
        state = {"step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch, "window": window,
                 "world_size": ranks.size}
        if ranks.rank == 0:
            last_checkpoint = save_checkpoint(run_dir, model, optimizer, state, args.keep_checkpoints)

    snapshot_steps = args.snapshot_step_set()

    def snapshot():
        if ranks.rank == 0 and step in snapshot_steps:
            save_snapshot(run_dir, model, step)

    try:
        if step == 0:
            snapshot()                                     # the initial weights, when asked for
        while step < args.max_steps and not stop.agreed():
            examples = train_data.epoch(epoch, shard)              # this rank's share of the epoch
            n_batches = len(examples) // share
            if n_batches == 0:
                given = f"{len(examples)} examples" if ranks.size == 1 else "fewer examples"
                raise TrainingError(f"the corpus gives {given}, fewer than one step's {per_step}: lower "
                                    f"--batch-size or use more text")
            while batch_in_epoch < n_batches and step < args.max_steps and not stop.agreed():
                start = batch_in_epoch * share
                micro = [collate(examples[start + k * args.batch_size:start + (k + 1) * args.batch_size])
                         for k in range(args.grad_accum)]                 # this rank's share, in order
                lr = linear_warmup_decay(step, args.learning_rate, args.warmup_steps, args.max_steps)
                try:
                    totals, grad_norm, stops = accumulate_step(model, micro, optimizer, lr, args.max_grad_norm,
                                                               step + 1, ranks, stop.requested())
                except TrainingError as e:
                    raise TrainingError(f"{e}; the last good checkpoint is "
                                        f"{last_checkpoint or 'none (none saved yet)'}") from None
                stop.agree(stops)                                 # any rank's Ctrl-C stops every rank
                step += 1
                batch_in_epoch += 1
                for key, value in totals.items():
                    window[key] += value
                window["steps"] += 1
                record = None
                if step % args.log_every == 0 or step == args.max_steps:
                    seconds = time.perf_counter() - t0
                    k = window["steps"]
                    record = {"step": step, "split": "train", "epoch": epoch, "loss": window["loss"] / k,
                              "mlm_loss": window["mlm"] / k, "mlm_accuracy": window["mc"] / max(window["n"], 1)}
                    if nsp:
                        record.update(nsp_loss=window["nsp"] / k, nsp_accuracy=window["nc"] / window["b"])
                    record.update(lr=lr, grad_norm=grad_norm, tokens_per_s=window["tokens"] / seconds)
                    if metrics:
                        metrics.append(record)
                    shown = dict(loss=f"{record['loss']:.3f}", mlm_acc=f"{record['mlm_accuracy']:.3f}")
                    if nsp:
                        shown["nsp_acc"] = f"{record['nsp_accuracy']:.3f}"
                    bar.set_postfix(**shown, lr=f"{lr:.2e}", tok_s=f"{record['tokens_per_s']:.0f}")
                    window.update(loss=0.0, mlm=0.0, nsp=0.0, mc=0, n=0, nc=0, b=0, tokens=0, steps=0)
                    t0 = time.perf_counter()
                bar.update(1)
                if ranks.rank == 0 and eval_examples and (step % args.eval_every == 0 or step == args.max_steps):
                    last_eval = {"step": step, "split": "eval",
                                 **evaluate(model, eval_examples, args.batch_size, baseline_id)}
                    metrics.append(last_eval)
                    say(f"step {step}: {describe_eval(last_eval)}")
                snapshot()
                if step % args.save_every == 0 or step == args.max_steps:
                    checkpoint()
                if on_step is not None:
                    on_step(step, model, record)
            if batch_in_epoch >= n_batches:
                epoch, batch_in_epoch = epoch + 1, 0
        stopped_early = stop.agreed()                       # a Ctrl-C from here on waits for the saves
        if stopped_early:
            checkpoint()
            ranks.barrier()                                 # no rank leaves before rank 0 has saved
            log(f"interrupted: saved {last_checkpoint}; continue with --resume")
        curve = None
        if metrics and draw_curve(plot_training_curve, metrics.path, run_dir / "curve.png", say):
            curve = run_dir / "curve.png"
        model_dir = None
        if not stopped_early and ranks.rank == 0:
            model_dir = model.save_pretrained(run_dir / "model")
            log(f"saved the model to {model_dir}")
    finally:
        bar.close()
        stop.restore()
    return RunResult(run_dir, step, model_dir, stopped_early, last_eval, curve, last_checkpoint,
                     stop.signal if stopped_early else None, inputs.example)
