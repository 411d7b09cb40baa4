"""Files a run writes, so that nothing is lost: atomic writes, the metrics log, the run's lock.

`write_atomic` writes to a temporary file beside the target, flushes it to disk and renames it
over the target: a reader sees the old file or the new one, never a mix.  Temporary names start
with "." and end in ".tmp" (`remove_temporaries` clears what an interrupted run left).
`MetricsLog` is a run's `metrics.jsonl`, one JSON object a line; a last line cut off by a full
disk or a crash is dropped when the log is read.  `RunLock` makes a run the only one writing to
its directory.
"""

import errno
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

try:
    import fcntl                                  # POSIX: flock
except ImportError:                               # pragma: no cover
    fcntl = None
try:
    import msvcrt                                 # Windows: a locked byte
except ImportError:
    msvcrt = None


def umask() -> int:
    """The process's file-creation mask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path, write):
    """Write `path` through `write(tmp_path)`, a function that writes a file at the path it is given.
    The file gets the mode any other tool would give it (0666 less the umask), not mkstemp's 0600.
    A library that fails with its own error on an operating-system problem (safetensors on a full
    disk) is reported as that OSError, naming `path`."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory: give a file name to write", str(path))
    if not path.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "no such directory to write into", str(path.parent))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        try:
            write(tmp)
        except OSError:
            raise
        except Exception as e:
            raise as_os_error(e, path) from None
        os.chmod(tmp, 0o666 & ~umask())           # after: safetensors writes its files 0600 whatever the umask
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def as_os_error(e: Exception, path) -> Exception:
    """`e` as the OSError it reports (a Rust library's "Os { code: 28, ... }"), or `e` itself."""
    found = re.search(r"Os \{ code: (\d+)", str(e))
    if not found:
        return e
    code = int(found.group(1))
    return OSError(code, os.strerror(code), str(path))


def staging_directory(parent, name: str) -> Path:
    """A new, empty directory in `parent`, to be renamed into place once complete: named
    `.NAME.<host>-<pid>-<random>.tmp`, so that `remove_temporaries` clears it after a crash and
    `sweep_stale` knows its owner; with mkdir's mode (0777 less the umask), not mkdtemp's 0700."""
    path = Path(tempfile.mkdtemp(prefix=f".{name}.{owner_tag()}-", suffix=".tmp", dir=parent))
    os.chmod(path, 0o777 & ~umask())
    return path


def owner_tag() -> str:
    """`<host>-<pid>` of this process, as temporary names carry it."""
    return f"{socket.gethostname().replace('-', '_')}-{os.getpid()}"


def owner_is_gone(name: str) -> bool:
    """Whether the process named in a temporary name (`...<host>-<pid>-...`) has ended on this host.
    A name from another host, or without an owner, is never taken for gone."""
    found = re.search(r"(?:^|[.\-])([^.\-]+)-(\d+)-", name)
    if not found or found.group(1) != socket.gethostname().replace("-", "_") or os.name == "nt":
        return False                              # (on Windows os.kill(pid, 0) would send Ctrl-C)
    try:
        os.kill(int(found.group(2)), 0)
    except ProcessLookupError:
        return True
    except PermissionError:                       # alive, another user's
        return False
    return False


def sweep_stale(parent, pattern: str) -> list[Path]:
    """Remove what ended processes left in `parent` (names matching `pattern` whose owner is gone:
    killed with SIGKILL, or by an MPI abort, before they could clean up)."""
    removed = []
    try:
        candidates = list(Path(parent).glob(pattern))
    except OSError:
        return removed
    for path in candidates:
        if owner_is_gone(path.name):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def remove_temporaries(directory) -> list[Path]:
    """Remove what interrupted writes left below `directory` (".*.tmp" files and directories)."""
    found = sorted(Path(directory).rglob(".*.tmp"), key=lambda p: len(p.parts), reverse=True)
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
    return found


class MetricsLog:
    """A run's `metrics.jsonl`: one JSON object a line, each with its `step` and `split`."""

    def __init__(self, path):
        self.path = Path(path)

    def append(self, record: dict) -> None:
        line = json.dumps(record) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)                             # one write: a full disk can cut only this line

    def records(self) -> list[dict]:
        """Every record; a last line that is not whole (a full disk, a crash) is left out."""
        if not self.path.is_file():
            return []
        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        records = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):
                    break                             # cut off while being written
                raise ValueError(f"{self.path}:{number} is not a JSON record: {line[:60]!r}") from None
            if not isinstance(record, dict) or "step" not in record:
                raise ValueError(f"{self.path}:{number} is not a metrics record (no 'step'): {line[:60]!r}")
            records.append(record)
        return records

    def clear(self) -> None:
        self._rewrite([])

    def truncate(self, step: int) -> None:
        """Drop the records after `step` (a resumed run does those steps again)."""
        self._rewrite([r for r in self.records() if r["step"] <= step])

    def _rewrite(self, records):
        """Replace the file atomically: a crash mid-rewrite leaves the old records, not half."""
        text = "".join(json.dumps(r) + "\n" for r in records)
        write_atomic(self.path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


class RunDirectoryInUse(RuntimeError):
    """Another process holds the run directory."""


class RunLock:
    """A run's hold on its output directory, for as long as the run lives:

        with RunLock(run_dir):
            ...                     # only this process writes here

    The lock is the operating system's where it has one: flock on `run_dir/.lock` (POSIX) or a
    locked byte of it (Windows, msvcrt); either goes away with the process, however the process
    ends, so a crashed run never leaves a stuck lock.  Elsewhere the lock is the file
    `run_dir/.lock.owner`, created only if absent and naming its owner (<host>-<pid>): a second run
    is refused while that process lives, and takes the lock over once it has gone."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self._file = None
        self._owner_file = None

    def _refuse(self, owner=""):
        raise RunDirectoryInUse(f"{self.directory} is in use by another minibert run"
                                f"{f' (process {owner})' if owner else ''}: wait for it to end, or "
                                f"choose another --output")

    def __enter__(self):
        if fcntl is None and msvcrt is None:
            return self._take_owner_file()
        self._file = open(self.directory / ".lock", "a+", encoding="utf-8")
        try:
            if fcntl is not None:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:                                 # pragma: no cover  (Windows)
                self._file.seek(0)
                msvcrt.locking(self._file.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            try:
                self._file.seek(0)
                owner = self._file.read().strip()
            except OSError:                       # pragma: no cover  (Windows: the byte is locked)
                owner = ""
            self._file.close()
            self._file = None
            self._refuse(owner)
        self._file.truncate(0)
        self._file.write(str(os.getpid()))
        self._file.flush()
        return self

    def _take_owner_file(self):
        path = self.directory / ".lock.owner"
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = path.read_text(encoding="utf-8", errors="replace").strip()
                if not owner_is_gone(owner):
                    self._refuse(owner)
                path.unlink(missing_ok=True)      # its run ended without letting go: take it over
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(owner_tag() + "-\n")
            self._owner_file = path
            return self
        self._refuse()

    def __exit__(self, *exc):
        if self._file is not None:
            if fcntl is not None:
                fcntl.flock(self._file, fcntl.LOCK_UN)
            else:                                 # pragma: no cover  (Windows)
                self._file.seek(0)
                msvcrt.locking(self._file.fileno(), msvcrt.LK_UNLCK, 1)
            self._file.close()
            self._file = None
        if self._owner_file is not None:
            self._owner_file.unlink(missing_ok=True)
            self._owner_file = None
