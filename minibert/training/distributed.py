"""Data-parallel training on MPI (mpi4py): every rank holds the whole model, takes its share of
each batch, and the gradients are summed across ranks before every rank takes the same step.

    mpirun -np 4 minibert pretrain ...          # or srun under Slurm

`world()` is the single process when the program was not launched by an MPI launcher, so nothing
changes for a plain `minibert pretrain`; under a launcher it needs mpi4py (`pip install -e
".[mpi]"`, which also brings the MPICH library as a wheel).

Gradients move in buckets: the tensors are copied, in parameter order, into contiguous buffers
of about `BUCKET_BYTES`, each summed with one in-place MPI Allreduce and copied back, so one call
moves many parameters.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import time

import numpy as np

BUCKET_BYTES = 32 << 20
ABORT_GRACE_S = 0.2                # for an aborting rank's last words to reach the launcher
# Environment variables that MPI launchers (MPICH/Hydra, Open MPI, Slurm's srun) set in each rank.
LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")
MPI_EXTRA = 'pip install -e ".[mpi]"  (mpi4py and the MPICH library from PyPI wheels)'


class SingleProcess:
    """The world of one process: every collective is the identity."""
    rank, size = 0, 1

    def allreduce_grads(self, grads):
        return grads

    def sum(self, values):
        return np.asarray(values)

    def barrier(self):
        pass

    def allgather(self, value):
        return [value]

    def broadcast(self, value):
        return value

    def abort(self, message, code=2):
        print(message, file=sys.stderr)
        sys.exit(code)


class MPIWorld:
    """COMM_WORLD of mpi4py."""

    def __init__(self):
        from mpi4py import MPI
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()

    def allreduce_grads(self, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Sum every gradient across ranks, in place, a bucket of tensors per call."""
        names = list(grads)
        start = 0
        while start < len(names):
            dtype = grads[names[start]].dtype
            bucket, size = [], 0
            while start < len(names) and grads[names[start]].dtype == dtype and (
                    not bucket or size + grads[names[start]].nbytes <= BUCKET_BYTES):
                bucket.append(names[start])
                size += grads[names[start]].nbytes
                start += 1
            flat = np.concatenate([grads[n].reshape(-1) for n in bucket])         # contiguous
            self.comm.Allreduce(self.MPI.IN_PLACE, flat, op=self.MPI.SUM)
            offset = 0
            for n in bucket:
                g = grads[n]
                g[...] = flat[offset:offset + g.size].reshape(g.shape)
                offset += g.size
        return grads

    def sum(self, values):
        """Sum a small array of numbers (counts, losses) across ranks."""
        values = np.ascontiguousarray(values, dtype=np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, values, op=self.MPI.SUM)
        return values

    def barrier(self):
        self.comm.Barrier()

    def allgather(self, value):
        """Every rank's `value` (a small Python object), in rank order."""
        return self.comm.allgather(value)

    def broadcast(self, value):
        """Rank 0's `value` (a small Python object) on every rank."""
        return self.comm.bcast(value, root=0)

    def abort(self, message, code=2):
        """Stop every rank of the job (no hang): the message names this rank.  The launcher forwards
        a rank's output through a pipe, and tears the job down at once on Abort: a moment's wait
        lets the message through first."""
        print(message, file=sys.stderr, flush=True)
        time.sleep(ABORT_GRACE_S)
        self.comm.Abort(code)


class StopRequest:
    """Ctrl-C (SIGINT) or SIGTERM, turned into a stop that every rank agrees on.

        stop = StopRequest(ranks)
        ... each step's first allreduce carries stop.requested() of every rank ...
        stop.agree(the sum); if stop.agreed(): save on rank 0, barrier, exit

    A signal only sets a flag.  When any rank asked, every rank stops after the same step, and
    none leaves before rank 0 has saved (MPI launchers send SIGINT to every rank on Ctrl-C, and
    schedulers SIGTERM before they kill; a rank that left early would abort the others mid-save).
    A world of one agrees with itself at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, ranks):
        self.ranks = ranks
        self.received = None                 # the first signal this process got
        self._agreed = False
        self._previous = {s: signal.signal(s, self._on_signal) for s in self.SIGNALS}

    def _on_signal(self, signum, frame):
        if self.received is None:
            self.received = signum

    def requested(self) -> bool:
        return self.received is not None

    def agree(self, any_rank_asked) -> None:
        self._agreed = self._agreed or bool(any_rank_asked)

    def agreed(self) -> bool:
        return self._agreed or (self.ranks.size == 1 and self.requested())

    @property
    def signal(self) -> int:
        """What stopped the run: this process's signal, or SIGINT where another rank's stopped it."""
        return int(self.received or signal.SIGINT)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


_WORLD = None


def launched_by_mpi() -> bool:
    return any(int(os.environ.get(v, "0") or 0) > 1 for v in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")) \
        or int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_PROCID" in os.environ


def launch_rank():
    """This process's rank as the launcher's environment tells it, or None outside MPI."""
    if not launched_by_mpi():
        return None
    for variable in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"):
        if os.environ.get(variable, "").isdigit():
            return int(os.environ[variable])
    return None


def world():
    """The MPI world when launched by mpirun / mpiexec / srun with more than one rank, else the
    single process.  Under a launcher without mpi4py: a clear error saying how to install it."""
    global _WORLD
    if _WORLD is None:
        if launched_by_mpi():
            if importlib.util.find_spec("mpi4py") is None:
                raise RuntimeError(f"this program was started by an MPI launcher but mpi4py is not installed: "
                                   f"{MPI_EXTRA}")
            _WORLD = MPIWorld()
        else:
            _WORLD = SingleProcess()
    return _WORLD
