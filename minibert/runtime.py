"""Process settings that make minibert faster and change no number -- made only when a program
asks: `configure_runtime()`.  Importing minibert never makes them (a library does not change the
process it is imported into).  The `minibert` command and the benchmark scripts call it first.

1. Let NumPy reuse the memory of its large temporaries.  A forward pass creates many temporary
arrays of tens of megabytes.  glibc's malloc serves each block above 128 KiB-32 MiB with a fresh
`mmap` and returns it to the system when freed, so the next temporary of the same size starts on
untouched pages and pays a page fault for every 4 KiB of it: at BERT-base size, batch 32, that is
a third of the forward's time.  Raising the mmap and trim thresholds (`mallopt`) keeps freed
blocks in the heap, where the next temporary reuses them already mapped.  Linux with glibc only.

2. Let OpenBLAS's idle threads sleep sooner.  After each matrix product the OpenBLAS worker
threads busy-wait for the next one for 2^28 CPU cycles (~0.1 s) before they sleep, keeping a core
busy while the elementwise work that follows (GELU, softmax, LayerNorm: minibert/kernels) wants
it.  OPENBLAS_THREAD_TIMEOUT=18 caps the wait at 2^18 cycles (~0.1 ms).  OpenBLAS reads it once,
when NumPy is first imported, so `configure_runtime()` must run before `import numpy` for this
part to take effect (it says whether it did); a value the user set is kept.

3. One thread count for the two pools of threads.  NumPy's BLAS runs the matrix products and
Numba runs the compiled kernels between them (minibert/kernels); one finishes before the other
starts, so each may use every core, and together they never ask for more threads than cores.
Left alone, Numba would start a thread for every CPU of the machine, even those this process may
not run on (a container, `taskset`).  Which pool Numba uses matters as much: with its OpenMP layer
the idle workers spin after each kernel while OpenBLAS's threads want the same cores, and the
real-sentence pass of all-MiniLM-L6-v2 ran at 100-120 sentences/s against 160-180 with Intel TBB's
(2-core AMD EPYC); TBB is therefore a dependency where it has wheels (x86-64), and Numba picks it
by itself.  MINIBERT_NUM_THREADS (default: the cores this process may
run on) sets NUMBA_NUM_THREADS and OPENBLAS_NUM_THREADS, unless the user set them; both are read
when the library loads, so this too must run before NumPy and Numba are imported.

None changes a result: the same arrays, the same numbers.  This module imports nothing but the
standard library, so a program can call it before NumPy loads.
"""

import ctypes
import os
import sys

BLAS_THREAD_TIMEOUT = "18"     # log2 of the CPU cycles an idle OpenBLAS thread spins before sleeping

M_TRIM_THRESHOLD = -1          # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3


def configure_runtime() -> dict:
    """Make the three settings.  Returns {"malloc_reuse": applied?, "blas_short_spin": will take
    effect?, "threads": the count both pools were given, or None if NumPy was loaded already}."""
    return {"malloc_reuse": keep_freed_memory_for_reuse(), "blas_short_spin": short_blas_spin(),
            "threads": share_threads()}


def num_threads() -> int:
    """MINIBERT_NUM_THREADS, else the number of cores this process may run on."""
    env = os.environ.get("MINIBERT_NUM_THREADS", "").strip()
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:               # not Linux
        return max(1, os.cpu_count() or 1)


def share_threads():
    """Give Numba's and OpenBLAS's pools num_threads() threads each (a value the user set is kept),
    if neither library is loaded yet.  Returns the count, or None when it is too late."""
    if "numpy" in sys.modules or "numba" in sys.modules:
        return None
    n = str(num_threads())
    os.environ.setdefault("NUMBA_NUM_THREADS", n)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", n)
    return int(os.environ["NUMBA_NUM_THREADS"])


def keep_freed_memory_for_reuse() -> bool:
    """Ask glibc to serve blocks up to 1 GiB from the heap and not to give freed memory back below
    2 GiB.  Returns whether the setting was applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 31))
    except (OSError, AttributeError):          # not glibc (e.g. musl): nothing to do
        return False


def release_freed_memory() -> bool:
    """Give the heap's freed memory back to the system now (glibc's malloc_trim): for a long
    process that goes on to work of another size (a benchmark), since the setting above keeps
    freed memory otherwise.  Returns whether it ran."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def short_blas_spin() -> bool:
    """Set OPENBLAS_THREAD_TIMEOUT (unless set already) if NumPy is not loaded yet.
    Returns whether the setting will take effect."""
    if "numpy" in sys.modules:
        return False
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", BLAS_THREAD_TIMEOUT)
    return True
