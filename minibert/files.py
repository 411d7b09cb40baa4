"""Writing files so that a crash never leaves half of one.

`write_atomic` writes to a temporary file beside the target, flushes it to disk and renames it
over the target: a reader sees the old file or the new one, never a mix.
"""

import os
import tempfile
from pathlib import Path


def write_atomic(path, write):
    """Write `path` through `write(tmp_path)`, a function that writes a file at the path it is given."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
