"""Give a finished session's memory back to the operating system.

A closed peer connection (aiortc) is a web of reference cycles: its codecs, jitter buffers and
bitrate estimators are freed only by the cyclic garbage collector, and Python runs a full
collection only after many new objects, so dead sessions pile up between collections. Once
freed, glibc keeps the chunks in per-thread arenas, so a long-running server's resident size
creeps up session after session although nothing leaks (the soak in ``benchmarks/soak.py``
measured both). After sessions end, ``HeapKeeper`` collects the cycles and then
``malloc_trim(0)`` returns the free pages of every arena to the OS (a no-op on a C library
without it: musl, macOS).

The trim cannot give back a page that still holds one live chunk, and glibc makes up to 8 arenas
per core: each new decoder, encoder and executor thread spreads the sessions' buffers over more
of them. ``limit_arenas()`` (at the start of a serving process) caps them at ``ARENA_MAX``: in
2-minute soaks the idle RSS grew 7.8-12.9 % with the default arenas and stayed within 0.4 % with
``MALLOC_ARENA_MAX`` 2 or 4; over 30 minutes with the cap it wandered within 513-538 MB.

A full collection walks every tracked object: ~130 ms with the ~290k objects of a loaded engine,
with the GIL held (every session's frames wait). ``freeze_loaded_objects()`` moves what exists
at start-up (modules, models, the engine) out of the collector's sight, so a collection after a
session walks only what sessions made: a few ms.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import gc
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

log = logging.getLogger(__name__)

#: One thread for collecting and trimming, started on first use: the shared default executor
#: would add threads when closes overlap (a thread count that grows with load looks like a leak).
TRIM_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="heap-trim")
#: Seconds after a session ends before its memory is collected: the closing coroutines and
#: callbacks have let go of it by then, and closes in a burst (a drain) share one collection.
SETTLE_S = 1.0
#: malloc arenas in a serving process (glibc's default: 8 per core); ``MALLOC_ARENA_MAX`` wins.
ARENA_MAX = 4
_M_ARENA_MAX = -8  # mallopt parameter, from glibc's malloc.h


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


def limit_arenas(n: int = ARENA_MAX) -> bool:
    """Cap glibc's malloc arenas at ``n`` unless the environment sets ``MALLOC_ARENA_MAX``; call it
    first thing in a serving process (arenas made before stay). True when the cap was set."""
    lib = _libc()
    if lib is None or "MALLOC_ARENA_MAX" in os.environ or not hasattr(lib, "mallopt"):
        return False
    return bool(lib.mallopt(ctypes.c_int(_M_ARENA_MAX), ctypes.c_int(n)))


def freeze_loaded_objects() -> int:
    """Collect once, then exempt every object alive now from later collections (``gc.freeze``);
    call it when the models are loaded and before serving. Returns the number frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


@dataclass(frozen=True)
class Reclaimed:
    objects: int  # unreachable objects the collection found
    collect_ms: float
    trimmed: bool


def reclaim() -> Reclaimed:
    """A full collection, then the heap trim (blocking: run it on ``TRIM_EXECUTOR``)."""
    t0 = time.perf_counter()
    found = gc.collect()
    ms = 1000 * (time.perf_counter() - t0)
    return Reclaimed(found, ms, release_free_memory())


class HeapKeeper:
    """``session_ended()`` (on the event loop) schedules one ``reclaim`` ``SETTLE_S`` later; more
    ends meanwhile join it. ``last`` holds the latest result."""

    def __init__(self, settle_s: float = SETTLE_S) -> None:
        self.settle_s = settle_s
        self.last: Reclaimed | None = None
        self._pending: asyncio.TimerHandle | None = None
        self._running: asyncio.Future[Reclaimed] | None = None

    def session_ended(self) -> None:
        if self._pending is None:
            self._pending = asyncio.get_running_loop().call_later(self.settle_s, self._start)

    def _start(self) -> None:
        self._pending = None
        if self._running is not None and not self._running.done():
            self.session_ended()  # one at a time: try again after this one
            return
        self._running = asyncio.get_running_loop().run_in_executor(TRIM_EXECUTOR, reclaim)
        self._running.add_done_callback(self._done)

    def _done(self, fut: asyncio.Future[Reclaimed]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            log.warning("heap reclaim failed: %r", None if fut.cancelled() else fut.exception())
            return
        self.last = fut.result()
        log.debug("heap reclaim: %s", self.last)

    @property
    def busy(self) -> bool:
        """A reclaim is scheduled or running."""
        return self._pending is not None or (self._running is not None and not self._running.done())

    async def idle(self) -> None:
        """Wait until no reclaim is scheduled or running (tests, shutdown)."""
        while self.busy:
            await asyncio.sleep(0.05)
