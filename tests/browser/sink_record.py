"""What the browser really plays: the PulseAudio null sink's monitor, recorded with ``parec``.

The page's WebAudio tap (measure.js) hears the received track through a second path (a FIFO into
an AudioContext), which measured 12-75 ms later than the sink's own output in the same runs, and
varied from run to run. This
records the sink itself and maps each 128-sample block to the page's performance clock: the
reader notes the wall time at which each read's last sample arrived; a line fitted through those
(sample index -> time) and moved to the least-delayed read gives each sample's output time. The
least-delayed read is taken in each second and the median of those used: one read near the start
that arrived ~45 ms ahead of all the rest (in some runs) set the whole recording that much early,
and the same stream read either ~+5 or ~-35 ms from run to run.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from browser.pulse import RATE, SINK

READ_BYTES = 960  # 10 ms of s16 mono at 48 kHz
#: parec's requested latency. 5 ms made PulseAudio run the sink on tiny buffers and changed what
#: was measured (the same test read +52 and +120 ms, against -17.5 to +25 ms with 50 ms); reads
#: then come in 50 ms bursts, and the fit through the earliest one keeps the timing.
LATENCY_MS = 50


class SinkRecorder:
    """``start()`` before the page plays, ``stop()`` after; ``audio(time_origin_ms)``: the
    recording as measure.js's ``audio`` list, ``[[performance ms, block RMS], ...]``."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self._reads: list[tuple[float, bytes]] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        cmd = ["parec", "--raw", "--format=s16le", f"--rate={RATE}", "--channels=1",
               f"--latency-msec={LATENCY_MS}", "-d", f"{SINK}.monitor"]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=self.env)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while chunk := self._proc.stdout.read(READ_BYTES):
            self._reads.append((time.time(), chunk))

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(5)
        if self._thread is not None:
            self._thread.join(5)

    def audio(self, time_origin_ms: float) -> list[list[float]]:
        if len(self._reads) < 10:
            return []
        ends = np.cumsum([len(c) // 2 for _, c in self._reads])
        arrived = np.array([t for t, _ in self._reads])
        slope, icpt = np.polyfit(ends, arrived, 1)
        late = arrived - (slope * ends + icpt)
        second = ((arrived - arrived[0]) // 1.0).astype(np.int64)
        icpt += float(np.median([late[second == s].min() for s in np.unique(second)]))
        pcm = np.frombuffer(b"".join(c for _, c in self._reads), np.int16).astype(np.float64) / 32768.0
        n = pcm.size // 128
        rms = np.sqrt((pcm[: n * 128].reshape(n, 128) ** 2).mean(axis=1))
        wall = slope * (np.arange(n) * 128) + icpt
        return np.stack([wall * 1000.0 - time_origin_ms, rms], axis=1).tolist()


def with_audio(report: dict[str, Any], audio: list[list[float]]) -> dict[str, Any]:
    """``report`` with its audio replaced (to run the same analysis on the sink's recording)."""
    return {**report, "audio": audio}
