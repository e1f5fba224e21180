"""How many live sessions this machine holds: ``--max-sessions auto``.

A short calibration at start-up measures what one frame of one session costs in CPU time on
this machine, at the configured size and fps: the motion pipeline and the render (as a live
session runs them, one frame at a time, over one second of speech) plus the VP8 encode of the
frame. Each session needs ``fps × that`` CPU seconds per second; the sessions share the cores
this process may run on, less ``HEADROOM`` for the event loop, RTP, audio encoding and jitter:

    sessions = floor(cores × (1 − HEADROOM) / (fps × (frame_s + encode_s))), at least 1.

CPU time (not wall time) is measured, so other load on the machine during the calibration does
not shrink the figure; load that persists does make frames late, and sessions then degrade
(dropped or repeated frames), never stall.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from emostream.assets import sample_path
from emostream.config import SAMPLE_RATE
from emostream.engine.pipeline import Engine, iter_offline_motion
from emostream.media.audio import load_audio

#: Share of the cores kept free for what the calibration does not run: the event loop's RTP,
#: SRTP and Opus work, the sessions' pacing and Python overhead, scheduling jitter. 0.5 gives
#: 2 sessions at 256² on the 2-core reference machine (12-14 ms/frame calibrated), the count
#: that ``emostream bench`` measures holding 25 fps with no dropped frame there.
HEADROOM = 0.5
#: Speech (seconds) the calibration runs through the pipeline.
CALIBRATION_S = 1.0


@dataclass(frozen=True)
class Capacity:
    frame_ms: float  # motion + render CPU ms per frame
    encode_ms: float  # VP8 encode CPU ms per frame
    cores: int
    fps: int
    sessions: int

    def describe(self) -> str:
        return (
            f"{self.sessions} sessions (calibrated: {self.frame_ms:.1f} ms/frame compute + "
            f"{self.encode_ms:.1f} ms encode at {self.fps} fps on {self.cores} cores)"
        )


def sessions_for(frame_s: float, encode_s: float, cores: int, fps: int) -> int:
    per_session = fps * (frame_s + encode_s)  # CPU seconds per second
    return max(1, int(cores * (1.0 - HEADROOM) / max(per_session, 1e-9)))


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _encode_cost(frames: list[np.ndarray], fps: int) -> float:
    """CPU seconds per frame to VP8-encode ``frames`` the way aiortc does."""
    # deferred: aiortc's codecs (heavy), only when calibrating
    from aiortc.codecs import vpx

    enc = vpx.Vp8Encoder()
    t = time.thread_time()
    for k, rgb in enumerate(frames):
        f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        f.pts, f.time_base = k * 90_000 // fps, Fraction(1, 90_000)
        enc.encode(f, force_keyframe=k == 0)
    return (time.thread_time() - t) / max(len(frames), 1)


def calibrate(engine: Engine, portrait: Path | None = None) -> Capacity:
    """Measure one session's per-frame cost on this machine (about a second)."""
    speech = load_audio(sample_path())[: int(CALIBRATION_S * SAMPLE_RATE)]
    renderer = engine.renderer_for(portrait)
    frames: list[np.ndarray] = []
    t = time.thread_time()
    for block in iter_offline_motion(engine, speech, chunk=SAMPLE_RATE // engine.fps):
        for row in block:
            frames.append(renderer.render(row[None])[0])
    frame_s = (time.thread_time() - t) / max(len(frames), 1)
    encode_s = _encode_cost(frames, engine.fps)
    cores = usable_cores()
    return Capacity(
        frame_s * 1000.0,
        encode_s * 1000.0,
        cores,
        engine.fps,
        sessions_for(frame_s, encode_s, cores, engine.fps),
    )
