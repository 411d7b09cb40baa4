"""What `--resume` takes: a resumed run goes on with the options it was started with (its
args.json), so any other option given is refused rather than silently ignored."""

from __future__ import annotations

from .errors import CommandError

RESUME_OPTIONS = {"resume", "output", "steps", "quiet", "run", "command", "command_parser"}


def add_run_options(p, run) -> None:
    """The options every training command ends with: --quiet, and the command's own parser kept
    for `options_given`."""
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar or running commentary (results and warnings still print)")
    p.set_defaults(run=run, command_parser=p)


def options_given(a) -> list[str]:
    """The options of `a` that differ from their defaults and that a resume does not take, as the
    user spelled them (--batch-size).  `a.command_parser` is the command's own parser."""
    defaults = a.command_parser.parse_args([])
    return [f"--{k.replace('_', '-')}" for k, v in vars(a).items()
            if k not in RESUME_OPTIONS and v != getattr(defaults, k, v)]


def refuse_other_options(a, takes: str) -> None:
    """A CommandError when `a` gives options a resume does not take (`takes` names those it does)."""
    ignored = options_given(a)
    if ignored:
        raise CommandError(f"--resume goes on with the run in {a.output} with the options it was started with "
                           f"(its args.json); it takes only {takes}, not {', '.join(ignored)}")
