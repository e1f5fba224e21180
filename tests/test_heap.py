"""Freed heap pages go back to the OS after a session (emostream.streaming.heap)."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import weakref

from emostream.streaming.heap import HeapKeeper

CODE = """
import numpy as np
from emostream.streaming.heap import release_free_memory

def rss_mb():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) / 1024

# 200 MB in 100 KB blocks (under glibc's mmap threshold: they live in the heap), the last one
# kept so the heap's top cannot shrink by itself: freed memory stays resident until trimmed
blocks = [np.ones(100_000 // 8) for _ in range(2000)]
keep = blocks[-1]
del blocks
before = rss_mb()
released = release_free_memory()
after = rss_mb()
print(released, round(before), round(after))
"""


def test_release_free_memory_returns_freed_heap_pages() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, check=True, timeout=120
    )
    released, before, after = out.stdout.split()
    assert released == "True"
    assert float(before) - float(after) > 100, out.stdout  # most of the 200 MB freed comes back


def test_limit_arenas_sets_the_cap_unless_the_environment_does() -> None:
    code = "from emostream.streaming.heap import limit_arenas; print(limit_arenas())"
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    for extra, want in (({}, "True"), ({"MALLOC_ARENA_MAX": "2"}, "False")):
        out = subprocess.run(
            [sys.executable, "-c", code], env=env | extra, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == want, (extra, out.stdout, out.stderr)


class _Cycle:
    """A stand-in for a closed peer connection: objects that only the collector frees."""

    def __init__(self) -> None:
        self.me = self
        self.payload = bytearray(1 << 16)


async def test_heap_keeper_collects_once_after_a_burst_of_ends() -> None:
    gc.disable()  # only the keeper's collection may free the cycles
    try:
        keeper = HeapKeeper(settle_s=0.05)
        refs = []
        for _ in range(50):
            c = _Cycle()
            refs.append(weakref.ref(c))
            del c
            keeper.session_ended()
        assert all(r() is not None for r in refs) and keeper.busy
        await keeper.idle()
        assert keeper.last is not None and keeper.last.objects >= 50
        assert all(r() is None for r in refs)
        first = keeper.last
        await asyncio.sleep(0.1)
        assert keeper.last is first  # fifty ends, one collection
    finally:
        gc.enable()
