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

Neither changes a result: the same arrays, the same numbers.  This module imports nothing but the
standard library, so a program can call it before NumPy loads.
"""

import ctypes
import os
import sys

BLAS_THREAD_TIMEOUT = "18"     # log2 of the CPU cycles an idle OpenBLAS thread spins before sleeping

M_TRIM_THRESHOLD = -1          # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3


def configure_runtime() -> dict:
    """Make both settings.  Returns {"malloc_reuse": applied?, "blas_short_spin": will take effect?}."""
    return {"malloc_reuse": keep_freed_memory_for_reuse(), "blas_short_spin": short_blas_spin()}


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
