"""The command line's one error boundary: every expected failure becomes one line that names the
problem, and exit status 2; a closed pipe (`minibert fill-mask ... | head`) ends quietly.

A command raises `CommandError` for what it checks itself (a missing option, a file that is not a
model); the library's own errors (bad data, an unreadable checkpoint, a full disk) pass through
`error_message`, which turns each into its line.  Anything else is a bug in minibert, and keeps
its traceback so that it can be reported.
"""

from __future__ import annotations

import errno
import os
import sys


class CommandError(Exception):
    """A failure the command explains itself: the message is the whole story."""


def os_error_message(e: OSError) -> str:
    """An operating-system error in one line: the file, the reason, and for a full disk what to do."""
    where = f"{e.filename}: " if e.filename else ""
    reason = e.strerror or str(e)
    if e.errno == errno.ENOSPC:
        reason += " (free some space, or point --output / $TMPDIR / --cache-dir elsewhere)"
    return f"{where}{reason}"


def expected_errors() -> tuple:
    """The exception types that are a user's problem, not minibert's."""
    from ..checkpoints import CheckpointError
    from ..files import RunDirectoryInUse
    from ..training.loop import TrainingError
    return (CommandError, TrainingError, CheckpointError, RunDirectoryInUse, ValueError, TypeError, MemoryError,
            OSError)


def error_message(e: BaseException) -> str:
    if isinstance(e, OSError) and not isinstance(e, FileNotFoundError) or \
            isinstance(e, FileNotFoundError) and e.filename:
        return os_error_message(e)
    return str(e)


def say_error(message: str) -> int:
    """Print `minibert: error: message` (naming the rank under MPI); returns the exit status 2."""
    from ..training.distributed import launch_rank
    rank = launch_rank()
    where = f" (rank {rank})" if rank is not None else ""
    print(f"minibert: error{where}: {message}", file=sys.stderr, flush=True)
    return 2


def run_command(run, args) -> int:
    """`run(args)`, with every expected failure as one line and a closed pipe as a quiet end."""
    try:
        return run(args)
    except BrokenPipeError:
        quiet_stdout()
        return 141                                        # 128 + SIGPIPE, as a Unix tool ends
    except KeyboardInterrupt:                             # Ctrl-C outside a training loop (which saves first)
        print("minibert: interrupted", file=sys.stderr)
        return 130
    except expected_errors() as e:
        return say_error(error_message(e))


def quiet_stdout():
    """Point standard output at /dev/null: the reader has gone, and Python's flush at exit would
    raise BrokenPipeError again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
