"""Give freed heap memory back to the operating system after a session ends.

A live session allocates and frees many frame-sized buffers from several threads (decoder,
encoder, renderer, executors). glibc keeps freed chunks in per-thread arenas, so a long-running
server's resident size creeps up session after session although nothing leaks (the soak in
``benchmarks/soak.py`` measured it). ``malloc_trim(0)`` returns the free pages of every arena to
the OS. On a C library without it (musl, macOS) this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

#: One thread for trimming, started on first use: the shared default executor would add threads
#: when closes overlap (a thread count that grows with load looks like a leak in the soak).
TRIM_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="heap-trim")


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    return lib if hasattr(lib, "malloc_trim") else None


def release_free_memory() -> bool:
    """Trim every malloc arena; True when the C library has ``malloc_trim`` and released pages."""
    lib = _libc()
    if lib is None:
        return False
    return bool(lib.malloc_trim(ctypes.c_size_t(0)))
