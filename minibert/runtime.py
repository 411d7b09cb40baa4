"""Two process-wide settings, made once when minibert is imported, that change no number.

1. Let NumPy reuse the memory of its large temporaries (`keep_freed_memory_for_reuse`).

A forward pass creates many temporary arrays of tens of megabytes (one per elementwise step).
glibc's malloc serves each block above 128 KiB-32 MiB with a fresh `mmap` and returns it to the
system when freed, so the next temporary of the same size starts on untouched pages and pays a
page fault for every 4 KiB of it: at BERT-base size, batch 32, that is a third of the forward's
time.  Raising the mmap threshold and the trim threshold (`mallopt`) keeps freed blocks in the
heap, where the next temporary reuses them already mapped.  Nothing else changes: the same
arrays, the same numbers.

Applied on Linux with glibc only; set MINIBERT_NO_MALLOPT=1 to leave the allocator alone.

2. Let OpenBLAS's idle threads sleep sooner (`short_blas_spin`).  After each matrix product the
OpenBLAS worker threads busy-wait for the next one for 2^28 CPU cycles (~0.1 s) before they sleep,
keeping a core busy.  The elementwise work that follows a product (GELU, softmax, LayerNorm: see
parallel.py) then runs on the cores that are left, and so does whatever else runs in the process
(PyTorch, in the benchmark).  OPENBLAS_THREAD_TIMEOUT=18 caps the wait at 2^18 cycles (~0.1 ms):
long enough to bridge the Python between two products, short enough to hand the core back for
the elementwise work.  OpenBLAS reads it once, when NumPy is first imported, so it only takes
effect when minibert is imported before NumPy (the `minibert` command, and scripts that import
minibert first); a value the user has set is kept.
"""

import ctypes
import os
import sys

BLAS_THREAD_TIMEOUT = "18"     # log2 of the CPU cycles an idle OpenBLAS thread spins before sleeping

M_TRIM_THRESHOLD = -1          # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3


def keep_freed_memory_for_reuse() -> bool:
    """Ask glibc to serve blocks up to 1 GiB from the heap and not to give freed memory back below
    2 GiB.  Returns whether the setting was applied."""
    if os.environ.get("MINIBERT_NO_MALLOPT") or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 31))
    except (OSError, AttributeError):          # not glibc (e.g. musl): nothing to do
        return False


def short_blas_spin() -> bool:
    """Set OPENBLAS_THREAD_TIMEOUT (unless set already) if NumPy is not loaded yet.
    Returns whether the setting will take effect."""
    if "numpy" in sys.modules:
        return False
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", BLAS_THREAD_TIMEOUT)
    return True
