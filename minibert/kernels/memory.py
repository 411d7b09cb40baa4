"""Output arrays placed away from their inputs, modulo the 4 KiB page.

A compiled kernel reads its input and writes its output in the same loop (GELU: load x[j], store
y[j]).  The CPU checks each load against the stores still in flight by the low 12 bits of their
addresses only ("4K aliasing"); when the output starts a few bytes past the input modulo 4 KiB,
nearly every load looks as if it depended on an earlier store and waits for it.  glibc's malloc
puts two arrays of the same size, allocated one after the other, exactly 16 bytes apart modulo
4 KiB -- the worst case: GELU over a fresh (4096, 512) product took 4.2 ms instead of 1.2 ms
(2-core Intel Xeon).  `empty_apart` places the new array a whole number of quarter pages past the
one it will be read beside, so no load of one matches a recent store to the other.
"""

import numpy as np

PAGE = 4096


def empty_apart(like, slot=2, shape=None, dtype=None):
    """np.empty(shape, dtype) (default: like's), starting `slot` quarter pages (slot x 1 KiB) past
    `like`'s first byte modulo 4 KiB.  Give two outputs of one kernel different slots (1-3)."""
    shape = like.shape if shape is None else shape
    dtype = np.dtype(like.dtype if dtype is None else dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buffer = np.empty(nbytes + PAGE, dtype=np.uint8)
    start = (like.ctypes.data + slot * PAGE // 4 - buffer.ctypes.data) % PAGE
    return buffer[start:start + nbytes].view(dtype).reshape(shape)
