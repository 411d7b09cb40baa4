"""A training run's checkpoints: the model with its tokenizer, the optimizer's moments and the
trainer's state (step, epoch, the dropout generator, whatever the loop needs to go on exactly),
in `RUN/checkpoint-0000500/`.

A checkpoint is written under a temporary name and renamed into place, so the newest complete
one is always readable; resuming loads the newest that loads (a damaged one is skipped with a
warning).  Pretraining and fine-tuning both keep theirs this way.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path

from ..files import staging_directory, write_atomic
from .loop import TrainingError

logger = logging.getLogger("minibert")


# what a JSON value may be for a field annotated with each type name
JSON_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "None": (type(None),)}


def read_run_args(run_dir: Path, args_class):
    """A run's options, `args_class` (a dataclass) from its args.json; a file that is unreadable,
    holds unknown names or a value of the wrong type is a TrainingError naming it."""
    path = Path(run_dir) / "args.json"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TrainingError(f"{path} cannot be read ({e}): the run's options are lost") from None
    fields = {f.name: f for f in dataclasses.fields(args_class)}
    if not isinstance(stored, dict) or set(stored) - set(fields):
        unknown = sorted(set(stored) - set(fields)) if isinstance(stored, dict) else type(stored).__name__
        raise TrainingError(f"{path} is not a minibert run's options (unknown: {unknown})")
    for name, value in stored.items():
        kinds = str(fields[name].type).split("|")
        allowed = tuple(t for kind in kinds for t in JSON_TYPES.get(kind.strip(), (object,)))
        if not isinstance(value, allowed) or isinstance(value, bool) and bool not in allowed:
            raise TrainingError(f"{path}: {name} is {value!r}, not {' or '.join(k.strip() for k in kinds)}: the "
                                f"run's options were edited or damaged; correct the value, or start a new run")
    missing = [name for name, f in fields.items() if name not in stored and
               f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise TrainingError(f"{path} lacks {', '.join(missing)}: the run's options are incomplete")
    args = args_class(**stored)
    args.output_dir = str(run_dir)
    return args


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a complete one has its trainer_state.json)."""
    found = [p for p in run_dir.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def save_in_place(run_dir: Path, final: Path, write) -> Path:
    """`write(staging)` fills a new directory in `run_dir` (swept after a crash), which is then
    renamed to `final`: a reader sees the whole directory or none of it, and the same step saved
    again (after a resume) replaces the old one."""
    staging = staging_directory(run_dir, final.name)
    try:
        write(staging)
        if final.exists():
            shutil.rmtree(final)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def save_checkpoint(run_dir: Path, model, optimizer, state: dict, keep: int) -> Path:
    from safetensors.numpy import save_file

    def write(staging):
        model.save_pretrained(staging)
        opt = optimizer.state_dict()
        moments = {f"{m}/{k}": v for m in ("exp_avg", "exp_avg_sq") for k, v in opt.pop(m).items()}
        write_atomic(staging / "optimizer.safetensors", lambda tmp: save_file(moments, tmp))
        full = dict(state, optimizer=opt, dropout_rng=model.rng.bit_generator.state)
        (staging / "trainer_state.json").write_text(json.dumps(full, indent=1))

    final = save_in_place(run_dir, run_dir / f"checkpoint-{state['step']:07d}", write)
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_snapshot(run_dir: Path, model, step: int) -> Path:
    """The model and its tokenizer as they are after `step` steps, in `RUN/snapshots/step-NNNNNNN/`
    (a model directory, no optimizer state): kept for looking at how training shaped it
    (`minibert explore --model RUN`), never pruned, never read by a resume."""
    (run_dir / "snapshots").mkdir(exist_ok=True)
    return save_in_place(run_dir, run_dir / "snapshots" / f"step-{step:07d}", model.save_pretrained)


def load_checkpoint(path: Path, model, optimizer) -> dict:
    """Restore the model, the optimizer and the dropout generator from a checkpoint directory;
    returns its trainer state.  Anything unreadable raises TrainingError naming the file."""
    from safetensors.numpy import load_file

    where = path
    try:
        fresh = type(model).from_pretrained(path, dtype=model.dtype)
        model.load_state_dict(fresh.params)
        where = path / "trainer_state.json"
        state = json.loads(where.read_text(encoding="utf-8"))
        opt = dict(state.pop("optimizer"))
        where = path / "optimizer.safetensors"
        moments = load_file(str(where))
        for m in ("exp_avg", "exp_avg_sq"):
            opt[m] = {k[len(m) + 1:]: v for k, v in moments.items() if k.startswith(m + "/")}
        optimizer.load_state_dict(opt)
        where = path / "trainer_state.json"
        model.rng.bit_generator.state = state.pop("dropout_rng")
        for key in ("step", "epoch", "batch_in_epoch"):
            int(state[key])
    except Exception as e:                  # any damage: safetensors, JSON, a missing key or file
        raise TrainingError(f"{where} is unreadable ({type(e).__name__}: {e})") from None
    return state


def resume_from(checkpoints: list[Path], model, optimizer) -> tuple[Path, dict]:
    """Load the newest checkpoint that loads; a damaged one is skipped for the one before it
    (with a warning on the "minibert" logger, shown even with --quiet)."""
    for path in reversed(checkpoints):
        try:
            return path, load_checkpoint(path, model, optimizer)
        except TrainingError as e:
            logger.warning("%s; trying the checkpoint before it", e)
    raise TrainingError(f"no checkpoint in {checkpoints[0].parent} can be loaded "
                        f"({', '.join(p.name for p in checkpoints)})")
