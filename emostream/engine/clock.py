"""Clocks for pacing a stream against one shared t0.

Every timestamp in a stream is a sample or frame count; the clock only answers "when is that
count due on the wall". ``WallClock`` is the real monotonic clock. ``SimulatedClock`` jumps
instead of sleeping, so tests and benchmarks can run an hour of "real-time" stream in seconds
and check that nothing drifts.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Protocol

from emostream.config import SAMPLE_RATE, check_fps


class Clock(Protocol):
    #: Seconds a worker waiting for input should sleep between checks (None: wait to be woken).
    poll_interval: float | None

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    async def sleep_until(self, t: float) -> None:
        """Return once ``now() >= t``."""
        ...

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from any thread) whenever time jumps (simulated clocks only)."""
        ...


class WallClock:
    """The process's monotonic clock."""

    poll_interval: float | None = 0.005

    def now(self) -> float:
        return time.monotonic()

    async def sleep_until(self, t: float) -> None:
        delay = t - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Wall time moves by itself; waiters poll with ``poll_interval``."""


class SimulatedClock:
    """A clock that only moves when someone sleeps on it (or calls ``advance``).

    Compute takes zero simulated time, so pacing, schedules and timestamps can be checked
    over hours of stream without waiting. It is not an event scheduler: ``sleep_until`` jumps
    at once, so only one task should sleep on it (e.g. a session's consumer); feed input from
    that same task, at the simulated times it wants.
    """

    poll_interval: float | None = None

    def __init__(self, start: float = 0.0) -> None:
        self._t = float(start)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        with self._lock:
            return self._t

    def advance(self, seconds: float) -> None:
        self.set(self.now() + seconds)

    def set(self, t: float) -> None:
        with self._lock:
            moved = t > self._t
            self._t = max(self._t, t)
            listeners = list(self._listeners)
        if moved:
            for cb in listeners:
                cb()

    async def sleep_until(self, t: float) -> None:
        self.set(t)
        await asyncio.sleep(0)

    def add_listener(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(callback)


class Schedule:
    """When each frame of a stream is due: ``t0 + latency + pts / fps``, exact until the float.

    ``t0`` is the wall time of stream sample 0; ``latency`` the fixed pipeline latency that
    every frame (and the audio played with it) is shifted by.
    """

    def __init__(self, t0: float, latency: Fraction, fps: int) -> None:
        self.t0 = t0
        self.latency = latency
        self.fps = check_fps(fps)

    def frame_due(self, pts: int) -> float:
        """Wall time at which video frame ``pts`` (and its audio) is presented."""
        return self.t0 + float(self.latency + Fraction(pts, self.fps))

    def frame_at(self, t: float) -> int:
        """The last frame whose due time is <= ``t`` (-1 before the first)."""
        return int(((t - self.t0) - float(self.latency)) * self.fps // 1)

    def sample_at(self, t: float) -> int:
        """Input timeline position (16 kHz samples) that real-time input has reached at ``t``."""
        return int((t - self.t0) * SAMPLE_RATE)
