"""Keeps freed codec blocks' memory in the process instead of handing it back after each one.

A layer passes through memory in blocks of about 1 MiB: each read of a source file makes a
fresh `bytes` (the codec queues it, so a buffer cannot be reused), each compressed member
another. glibc's malloc serves that size by mmap(2) until a free raises its threshold, and
trims a thread's arena as soon as ~2 MiB at its top is free; either way the next block
lands on pages the kernel must fault in and zero again. For a 1 GiB file layer that was
40,000-80,000 page faults and ~0.2 s of system CPU on the two cores the compressor wants.
Two mallopt(3) settings keep blocks in the arenas and up to TRIM_THRESHOLD free at each
arena's top: ~8,000 faults, and ~5 MiB more peak RSS, a constant (no more than the blocks in
flight held anyway), so memory stays flat as layers grow.

Set once, the first time a layer is compressed, so the stamp-answered no-op never pays for
ctypes (~3 ms). Only glibc has these knobs; elsewhere nothing is done. No output byte
depends on where malloc puts a block (the default codec's bytes are a function of the
block; docs/reproducibility.md).
"""

from __future__ import annotations

import functools
import os

# glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Above a codec block and its compressed worst case (a block plus ~0.1%); larger requests
# still get their own mapping, returned as soon as they are freed.
MMAP_THRESHOLD = 4 << 20
TRIM_THRESHOLD = 8 << 20


@functools.cache
def keep_block_memory() -> None:
    try:
        os.confstr("CS_GNU_LIBC_VERSION")  # raises ValueError without glibc
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (ValueError, OSError, ImportError, AttributeError, TypeError):
        return
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
