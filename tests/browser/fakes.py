"""A stand-in for emostream.engine.session.Session with a known, measurable output.

It yields the real session item types, paced like the real session (frame ``pts`` at
``t0 + latency + pts / fps``), so the transport is tested exactly as it is used. Its output
is a sync pattern: once per ``period_frames`` a white frame whose audio is a 1 kHz beep (the
rest: a grey frame and silence), the classic way to measure audio/video offset at the far
end. It records what the transport pushed into it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from fractions import Fraction

import numpy as np

from emostream.engine.session import AudioFrame, VideoFrame
from emostream.errors import InputError


class SyncPatternSession:
    def __init__(
        self, size: int = 64, fps: int = 25, period_frames: int = 25, latency_s: float = 0.1
    ) -> None:
        self.size = size
        self.fps = fps
        self.period = period_frames
        self.latency = Fraction(latency_s).limit_denominator(1000)
        self.pushed_samples = 0
        self.pushed_rates: set[int] = set()
        #: Largest |sample| pushed (float pcm in [-1, 1]): silence pushes 0.
        self.pushed_peak = 0.0
        self.emotions: list[tuple[str, float]] = []
        self.styles: list[np.ndarray] = []
        self.cleared = 0
        self.stopped = False
        self.t0: float | None = None
        self.yielded_video = 0
        n = 16000 // fps
        t = np.arange(n) / 16000.0
        self._beep = (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
        self._silence = np.zeros(n, np.float32)
        self._white = np.full((size, size, 3), 235, np.uint8)
        self._grey = np.full((size, size, 3), 40, np.uint8)

    # control API
    def push_audio(self, pcm: np.ndarray, sample_rate: int = 16000) -> None:
        pcm = np.asarray(pcm)
        if pcm.ndim != 1:
            raise InputError("mono only")
        self.pushed_samples += pcm.size
        self.pushed_rates.add(sample_rate)
        if pcm.size:
            self.pushed_peak = max(self.pushed_peak, float(np.abs(pcm.astype(np.float32)).max()))

    def end_segment(self) -> None:
        pass

    def clear(self) -> None:
        self.cleared += 1

    def set_emotion(self, name: str, intensity: float = 1.0) -> None:
        self.emotions.append((name, intensity))

    def set_style(self, reference: np.ndarray) -> None:
        self.styles.append(reference)

    def stop(self) -> None:
        self.stopped = True

    def __aiter__(self) -> AsyncIterator[AudioFrame | VideoFrame]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[AudioFrame | VideoFrame]:
        self.t0 = time.monotonic()
        k = 0
        while not self.stopped:
            due = self.t0 + float(self.latency) + k / self.fps
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            flash = k % self.period == 0
            yield AudioFrame(self._beep if flash else self._silence, k * (16000 // self.fps))
            yield VideoFrame(self._white if flash else self._grey, k, self.fps)
            self.yielded_video += 1
            k += 1
