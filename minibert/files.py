"""Files a run writes: atomically, and the metrics log.

`write_atomic` writes to a temporary file beside the target, flushes it to disk and renames it
over the target: a reader sees the old file or the new one, never a mix.  `MetricsLog` is a
run's `metrics.jsonl`, one JSON object a line.
"""

import json
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


class MetricsLog:
    """A run's `metrics.jsonl`: one JSON object a line, each with its `step` and `split`."""

    def __init__(self, path):
        self.path = Path(path)

    def append(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def records(self) -> list[dict]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def clear(self) -> None:
        self.path.write_text("", encoding="utf-8")

    def truncate(self, step: int) -> None:
        """Drop the records after `step` (a resumed run does those steps again)."""
        kept = [r for r in self.records() if r["step"] <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
