"""Let NumPy reuse the memory of its large temporaries.

A forward pass creates many temporary arrays of tens of megabytes (one per elementwise step).
glibc's malloc serves each block above 128 KiB-32 MiB with a fresh `mmap` and returns it to the
system when freed, so the next temporary of the same size starts on untouched pages and pays a
page fault for every 4 KiB of it: at BERT-base size, batch 32, that is a third of the forward's
time.  Raising the mmap threshold and the trim threshold (`mallopt`) keeps freed blocks in the
heap, where the next temporary reuses them already mapped.  Nothing else changes: the same
arrays, the same numbers.

Applied once when minibert is imported, on Linux with glibc only; set MINIBERT_NO_MALLOPT=1 to
leave the allocator alone.
"""

import ctypes
import os
import sys

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
