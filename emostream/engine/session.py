"""A live avatar stream: audio in, paced video + matching audio + ARKit frames out.

API (stable; transports such as WebRTC, the virtual camera and mp4 adapt this)::

    engine = Engine.load(EngineConfig(renderer="analytic", size=256))   # shared weights
    session = engine.new_session(portrait=None, emotion=EmotionStyle("happy", 0.7), seed=0)
    session.start()                        # optional: start the clock now (idle frames flow)
    session.push_audio(pcm, sample_rate)   # any size, any rate, int16 or float, mono or [n, ch]
    session.end_segment()                  # marks the end of an utterance -> SegmentEnd item
    session.clear()                        # barge-in: drop queued audio/motion, back to idle
    session.set_emotion("sad", 0.5)        # blended in by the motion model within one window
    session.set_style(reference)           # float32[T, 55] reference clip of ARKit frames
    async for item in session:             # VideoFrame | AudioFrame | ArkitFrame | SegmentEnd
        ...
    session.close()                        # graceful: finish pending audio, then iteration ends
    session.stop()                         # immediate

Timing. The stream's clock starts at ``t0`` = the first of ``start()``, the first
``push_audio`` or the first iteration. Every timestamp is a count: ``VideoFrame.pts`` and
``ArkitFrame.pts`` count frames at ``fps``, ``AudioFrame.pts`` counts 16 kHz samples; both from
the same t0. Frame ``pts`` and its audio are presented (yielded) at
``t0 + session.latency + pts / fps``; ``session.latency`` is fixed: the features' look-ahead +
the motion model's latency + one frame + a compute margin + a jitter margin. The audio
yielded with frame ``pts`` is exactly the input audio of that frame, so sound and lips agree.
Per frame the order is ArkitFrame, AudioFrame, VideoFrame, then SegmentEnd where one ends.

The budget with the shipped stages at 25 fps (``emostream bench`` prints it as
``session_latency_ms``): 7.5 ms features look-ahead (the live VAD is causal, see
``emostream.engine.vad``) + 160 ms motion (EmoDiff hop 3 + look-ahead 2 = 5 frames, less the
frame itself; the lip refiner reads the same features and its look-ahead of 2 frames costs
nothing) + 40 ms for the frame + 30 ms compute and 20 ms jitter margins (below)
= 257.5 ms. A chunk's audio-to-frame latency is about this delay minus the chunk's length.

Real time (``SessionConfig.realtime=True``, the default): items are paced to the clock; while no
audio arrives, silence is fed, so the avatar stays alive (idle breathing, blinks, head motion)
and speech continues from idle without a seam. Silence fed because live input came late would
delay everything after it; it is repaid by dropping as much quiet input later
(``SessionConfig.resync``), so the latency returns to the fixed delay at the next pause. When
compute falls behind, render frames are skipped deliberately (their ArkitFrame and AudioFrame
are still yielded) and counted in ``stats.dropped_frames``; a frame is never yielded after its
due time. With
``realtime=False`` nothing is paced, padded or dropped; the output then equals the offline
pipeline's (``emostream.engine.pipeline.offline_render``) for the same audio and seed,
whatever the chunking.

Threads. Inference and rendering run on one worker thread per session; the event loop only
waits. Queues are bounded (``max_queue_frames``); control (clear, emotion, style) is applied
before the next piece of data and ``clear()`` empties the queues at once. ``push_audio`` and the
control methods may be called from any thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from emostream.arkit import MOTION_DIM, EmotionStyle, MotionFrame
from emostream.config import DEFAULT_SEED, SAMPLE_RATE, frame_start_sample, samples_per_frame
from emostream.engine.clock import Clock, Schedule, WallClock
from emostream.engine.stages import PortraitKey, SessionEngine, StageTimes
from emostream.errors import AudioError, ConfigError, InputError
from emostream.media.audio import StreamResampler

log = logging.getLogger(__name__)

#: Tolerance (s) for float rounding in clock arithmetic.
_TIME_EPS = 1e-6
#: Re-sync after late live input (``SessionConfig.resync``): silence fed in place of input that
#: is late (a push came within ``_LIVE_GAP_S``) delays all later input of a continuous source, so
#: it is owed (at most ``_MAX_DEBT_S``) and repaid by dropping quiet input: 10 ms blocks under
#: ``_QUIET_RMS`` at the head of the queue, never speech.
_LIVE_GAP_S = 1.0
_MAX_DEBT_S = 1.0
_QUIET_BLOCK = 160
_QUIET_RMS = 0.005
#: Each frame skipped as late shrinks the render-time estimate by this factor: the estimate is
#: only re-measured by rendering, so without the decay one stall (a descheduled worker) would
#: make every later frame look late and the session would never render again (issue 18).
_RENDER_EST_DECAY = 0.7

__all__ = [
    "ArkitFrame",
    "AudioFrame",
    "SegmentEnd",
    "Session",
    "SessionConfig",
    "SessionStats",
    "VideoFrame",
    "to_float_mono",
]  # fmt: skip


@dataclass(frozen=True)
class VideoFrame:
    """One rendered frame. ``pts`` counts frames at ``fps`` from the stream's t0."""

    rgb: np.ndarray  # uint8[H, W, 3]
    pts: int
    fps: int

    @property
    def time(self) -> Fraction:
        return Fraction(self.pts, self.fps)


@dataclass(frozen=True)
class AudioFrame:
    """The audio that plays with one video frame. ``pts`` counts samples from t0."""

    pcm: np.ndarray  # float32[n] in [-1, 1], mono
    pts: int
    sample_rate: int = SAMPLE_RATE

    @property
    def time(self) -> Fraction:
        return Fraction(self.pts, self.sample_rate)

    def s16(self) -> np.ndarray:
        """int16[n]"""
        return (np.clip(self.pcm, -1.0, 1.0) * 32767.0).round().astype(np.int16)


@dataclass(frozen=True)
class ArkitFrame:
    """The ARKit parameters (52 blendshapes + head pose) of video frame ``pts``."""

    motion: MotionFrame

    @property
    def pts(self) -> int:
        return self.motion.pts


@dataclass(frozen=True)
class SegmentEnd:
    """The utterance closed by ``end_segment()`` finished playing with frame ``pts``."""

    pts: int
    interrupted: bool = False  # True when clear() cut it short


SessionItem = VideoFrame | AudioFrame | ArkitFrame | SegmentEnd


@dataclass(frozen=True)
class SessionConfig:
    """Per-session runtime settings."""

    realtime: bool = True
    #: Time a frame's compute may take between its input deadline and its due time. It covers
    #: one worker step up to the first frame it renders (features + VAD + EmoDiff window + lip
    #: refiner + render, ONNX Runtime on CPU: 10.7 ms CPU median, 14.6 ms max over 60 s at 256²,
    #: analytic, on the 2-core reference machine), with 2x headroom. In 60 s live runs at load
    #: 2.5-4 (issue 8) 20, 30 and 40 ms gave 0-56 dropped frames with no ordering between them:
    #: the drops come from the worker being descheduled for 100s of ms, which no margin covers.
    compute_margin_s: float = 0.03
    #: How late live input may arrive before silence is fed in its place (that silence delays
    #: the later input of a continuous source until ``resync`` repays it, so it stays 20 ms).
    jitter_margin_s: float = 0.02
    #: A frame that would be shown later than this after its due time is dropped instead.
    late_tolerance_s: float = 0.02
    #: Bounded queue of finished frames between the worker and the consumer.
    max_queue_frames: int = 6
    #: Most audio that may wait unprocessed (push_audio beyond this raises InputError).
    max_pending_s: float = 600.0
    #: Frames of audio the worker takes per step.
    step_frames: int = 2
    #: Repay silence fed in place of late live input by dropping as much quiet input (real time
    #: only), so a late chunk does not add its delay to the rest of a continuous stream.
    resync: bool = True

    def __post_init__(self) -> None:
        if self.max_queue_frames < 1 or self.step_frames < 1:
            raise ConfigError("max_queue_frames and step_frames must be >= 1")
        if min(self.compute_margin_s, self.jitter_margin_s, self.late_tolerance_s) < 0:
            raise ConfigError("session margins must be >= 0")


@dataclass
class SessionStats:
    """What a session measured (times from its clock)."""

    video_frames: int = 0
    audio_samples: int = 0
    dropped_frames: int = 0
    first_frame_ms: float | None = None
    #: Audio-to-frame latency of each pushed chunk: push time -> first frame showing it.
    latencies_ms: list[float] = field(default_factory=list)
    #: Samples of silence fed in place of late live input, and of quiet input dropped to repay it.
    late_fill_samples: int = 0
    resync_dropped_samples: int = 0
    stage_times: StageTimes = field(default_factory=StageTimes)

    def latency_summary(self) -> dict[str, float | None]:
        lat = np.asarray(self.latencies_ms, dtype=np.float64)
        if lat.size == 0:
            return {"p50": None, "p95": None, "max": None}
        return {
            "p50": float(np.percentile(lat, 50)),
            "p95": float(np.percentile(lat, 95)),
            "max": float(lat.max()),
        }


def to_float_mono(pcm: np.ndarray) -> np.ndarray:
    """int16 / float, [n] or [n, channels] -> float32[n] mono in [-1, 1]."""
    a = np.asarray(pcm)
    if a.ndim not in (1, 2):
        raise AudioError(f"audio chunk must be [n] or [n, channels], got shape {a.shape}")
    if a.dtype == np.int16:
        out = a.astype(np.float32) / 32768.0
    elif a.dtype.kind == "f":
        out = a.astype(np.float32)
    else:
        raise AudioError(f"audio chunk must be int16 or float, got {a.dtype}")
    if out.ndim == 2:
        out = out.mean(axis=1, dtype=np.float32)
    if not np.all(np.isfinite(out)):
        raise AudioError("audio chunk contains NaN or infinite samples")
    return np.ascontiguousarray(out)


@dataclass
class _Bundle:
    """Everything the worker made for one frame (internal index ``index``)."""

    index: int
    motion: np.ndarray  # float32[55]
    audio: np.ndarray  # float32[n]
    rgb: np.ndarray | None  # None: render skipped (behind schedule)
    emotion: EmotionStyle
    segment_ends: list[bool]  # one entry per SegmentEnd after this frame: interrupted?


class _Timeline:
    """Audio fed to the pipeline but not yet handed out, addressed by absolute sample index."""

    def __init__(self) -> None:
        self.start = 0
        self.buf = np.zeros(0, np.float32)

    def append(self, audio: np.ndarray) -> None:
        self.buf = np.concatenate([self.buf, audio]) if self.buf.size else audio.copy()

    @property
    def end(self) -> int:
        return self.start + self.buf.size

    def take(self, a: int, b: int) -> np.ndarray:
        """Samples [a, b) (zeros past the end); drops everything before b."""
        out = np.zeros(b - a, np.float32)
        lo, hi = max(a, self.start), min(b, self.end)
        if hi > lo:
            out[lo - a : hi - a] = self.buf[lo - self.start : hi - self.start]
        drop = min(max(b - self.start, 0), self.buf.size)
        self.buf = self.buf[drop:]
        self.start += drop
        return out

    def silence(self) -> None:
        self.buf = np.zeros_like(self.buf)


class Session:
    """One avatar stream; see the module docstring. Create with ``Engine.new_session``."""

    def __init__(
        self,
        engine: SessionEngine,
        portrait: PortraitKey = None,
        *,
        emotion: EmotionStyle | None = None,
        seed: int = DEFAULT_SEED,
        config: SessionConfig | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.engine = engine
        self.config = config or SessionConfig()
        self.clock: Clock = clock or WallClock()
        self.fps = engine.fps
        self.sample_rate = SAMPLE_RATE
        self.renderer = engine.renderer_for(portrait)
        self.width, self.height = int(self.renderer.width), int(self.renderer.height)
        self.stats = SessionStats()
        self._style = emotion or EmotionStyle()
        self._pipe = engine.new_pipeline(seed=seed, emotion=self._style, times=self.stats.stage_times)
        spf = samples_per_frame(self.fps)
        #: Input samples needed beyond a frame's own end before it can be computed.
        self._need_ahead = int(engine.lookahead_samples) + int(
            -(-max(engine.latency_frames - 1, 0) * spf // 1)
        )
        margin = Fraction(self.config.compute_margin_s + self.config.jitter_margin_s)
        #: Fixed delay from an input sample's arrival to the frame (and audio) presenting it.
        self.latency: Fraction = (
            Fraction(self._need_ahead, SAMPLE_RATE) + Fraction(1, self.fps) + margin.limit_denominator(10_000)
        )

        self._cond = threading.Condition()
        self._pending: deque[np.ndarray] = deque()
        self._pending_len = 0
        self._fed = 0  # samples pushed into the pipeline (internal timeline)
        self._timeline = _Timeline()
        self._controls: deque[tuple[str, Any]] = deque()
        self._outbox: deque[_Bundle] = deque()
        self._gen = 0
        self._discarded = 0  # frames thrown away by clear(); output pts = index - discarded
        self._marks: deque[tuple[int, bool]] = deque()  # (end sample, interrupted)
        self._stamps: deque[tuple[int, float]] = deque()  # (sample position, push time)
        self._first_push: float | None = None
        self._last_push: float | None = None
        self._debt = 0  # samples of silence fed in place of late live input, not yet repaid
        self._schedule: Schedule | None = None
        self._closing = False
        self._stopped = False
        self._finished = False
        self._error: BaseException | None = None
        self._next_index = 0
        self._render_est = 0.0
        self._resamplers: dict[int, StreamResampler] = {}
        self._in_rate: int | None = None
        # consumer side (event loop)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._ready: deque[tuple[SessionItem, int]] = deque()  # (item, internal frame index)
        self._audio_pts = 0
        self._next_pts = 0
        self.clock.add_listener(self._notify_worker)
        self._thread = threading.Thread(target=self._run, name="emostream-session", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ producer API
    def start(self) -> None:
        """Start the stream clock now (idle frames flow from here on in real time)."""
        with self._cond:
            self._start_locked()
            self._cond.notify_all()

    def push_audio(self, pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
        """Queue speech: any number of samples at any rate (int16 or float, mono or [n, ch])."""
        audio = self._resample(to_float_mono(pcm), int(sample_rate))
        self._queue_audio(audio)

    def end_segment(self) -> None:
        """The utterance pushed so far is complete: a SegmentEnd follows its last frame."""
        audio = self._flush_resampler()
        with self._cond:
            if audio.size:
                self._queue_audio_locked(audio)
            self._marks.append((self._fed + self._pending_len, False))
            self._cond.notify_all()

    def clear(self) -> None:
        """Barge-in: drop queued audio and frames, silence what is in flight, return to idle."""
        with self._cond:
            self._pending.clear()
            self._pending_len = 0
            self._stamps.clear()
            self._gen += 1
            self._discarded += len(self._outbox)
            self._outbox.clear()
            self._timeline.silence()
            self._marks = deque((min(pos, self._fed), True) for pos, _ in self._marks)
            self._debt = 0
            self._controls.append(("clear", None))
            self._cond.notify_all()
            self._resamplers.clear()

    def set_emotion(self, name: str, intensity: float = 1.0) -> None:
        """Change the emotion; the motion model blends it in within one window."""
        style = EmotionStyle(name, float(intensity))
        with self._cond:
            self._controls.append(("emotion", style))
            self._cond.notify_all()

    def set_style(self, reference: np.ndarray) -> None:
        """Take the emotional style from a reference clip of ARKit frames float32[T, 55]."""
        ref = np.asarray(reference, dtype=np.float32)
        if ref.ndim != 2 or ref.shape[1] != MOTION_DIM or len(ref) == 0:
            raise InputError(f"style reference must be float32[T, {MOTION_DIM}], got {ref.shape}")
        with self._cond:
            self._controls.append(("style", ref))
            self._cond.notify_all()

    def close(self) -> None:
        """Graceful end: process what is queued (padding the look-ahead), then stop."""
        audio = self._flush_resampler()
        with self._cond:
            if audio.size:
                self._queue_audio_locked(audio)
            self._closing = True
            self._cond.notify_all()

    def stop(self) -> None:
        """End now, dropping whatever is queued."""
        with self._cond:
            self._stopped = True
            self._outbox.clear()
            self._cond.notify_all()
        self._wake_consumer()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def worker_alive(self) -> bool:
        """Whether the worker thread still runs (False once a stopped session is joined)."""
        return self._thread.is_alive()

    @property
    def emotion(self) -> EmotionStyle:
        return self._style

    @property
    def t0(self) -> float | None:
        return None if self._schedule is None else self._schedule.t0

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ consumer API
    def __aiter__(self) -> Session:
        return self

    async def __anext__(self) -> SessionItem:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            self.start()
        assert self._wake is not None
        while True:
            if self._ready:
                item, index = self._ready.popleft()
                if isinstance(item, VideoFrame):
                    self.stats.video_frames += 1
                    self._resolve_stamps(index)
                return item
            with self._cond:
                bundle = self._outbox.popleft() if self._outbox else None
                discarded = self._discarded
                done = self._finished and not self._outbox
                if bundle is not None:
                    self._cond.notify_all()  # room in the bounded queue
            if bundle is not None:
                await self._present(bundle, bundle.index - discarded)
                continue
            if done or self._stopped:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._wake.clear()
            with self._cond:
                empty = not self._outbox and not self._finished
            if empty:
                await self._idle_wait()

    async def _idle_wait(self) -> None:
        assert self._wake is not None
        sched = self._schedule
        if self.clock.poll_interval is None and sched is not None and self.config.realtime:
            # Simulated time: move the clock to when the next frame's input is due.
            due = sched.frame_due(self._next_pts) - self.config.compute_margin_s
            await self.clock.sleep_until(due)
        await self._wake.wait()

    async def _present(self, b: _Bundle, pts: int) -> None:
        rgb = b.rgb
        if self.config.realtime and self._schedule is not None:
            due = self._schedule.frame_due(pts)
            await self.clock.sleep_until(due)
            if rgb is not None and self.clock.now() > due + self.config.late_tolerance_s:
                rgb = None  # late: never send a frame after its slot
                with self._cond:
                    self.stats.dropped_frames += 1
        self._next_pts = pts + 1
        ark = MotionFrame.from_vector(b.motion, pts, pts=pts, emotion=b.emotion, fps=self.fps)
        self._ready.append((ArkitFrame(ark), b.index))
        self._ready.append((AudioFrame(b.audio, self._audio_pts), b.index))
        self._audio_pts += b.audio.size
        self.stats.audio_samples += b.audio.size
        if rgb is not None:
            self._ready.append((VideoFrame(rgb, pts, self.fps), b.index))
        for interrupted in b.segment_ends:
            self._ready.append((SegmentEnd(pts, interrupted), b.index))

    def _resolve_stamps(self, index: int) -> None:
        now = self.clock.now()
        end = frame_start_sample(index + 1, self.fps)
        with self._cond:
            while self._stamps and self._stamps[0][0] < end:
                _, t = self._stamps.popleft()
                ms = 1000.0 * (now - t)
                self.stats.latencies_ms.append(ms)
                if self.stats.first_frame_ms is None:
                    self.stats.first_frame_ms = ms

    def _wake_consumer(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def _notify_worker(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # ------------------------------------------------------------------ input side
    def _resample(self, audio: np.ndarray, rate: int) -> np.ndarray:
        if rate <= 0:
            raise AudioError(f"sample rate must be positive, got {rate}")
        out: list[np.ndarray] = []
        if self._in_rate is not None and rate != self._in_rate:
            out.append(self._flush_resampler())
        self._in_rate = rate
        if rate == SAMPLE_RATE:
            out.append(audio)
        else:
            r = self._resamplers.get(rate)
            if r is None:
                r = self._resamplers[rate] = StreamResampler(rate)
            out.append(np.asarray(r.push(audio), np.float32))
        return np.concatenate(out) if len(out) > 1 else out[0]

    def _flush_resampler(self) -> np.ndarray:
        r = self._resamplers.get(self._in_rate) if self._in_rate is not None else None
        if r is None:
            return np.zeros(0, np.float32)
        return np.asarray(r.flush(), np.float32)

    def _queue_audio(self, audio: np.ndarray) -> None:
        with self._cond:
            self._queue_audio_locked(audio)
            self._cond.notify_all()

    def _queue_audio_locked(self, audio: np.ndarray) -> None:
        if audio.size == 0:
            return
        if self._pending_len + audio.size > self.config.max_pending_s * SAMPLE_RATE:
            raise InputError(
                f"session input queue is full ({self.config.max_pending_s:g} s of audio pending)"
            )
        self._start_locked()
        now = self.clock.now()
        if self._first_push is None:
            self._first_push = now
        self._last_push = now
        self._stamps.append((self._fed + self._pending_len, now))
        self._pending.append(audio)
        self._pending_len += audio.size

    def _start_locked(self) -> None:
        if self._schedule is None:
            self._schedule = Schedule(self.clock.now(), self.latency, self.fps)

    # ------------------------------------------------------------------ worker thread
    def _run(self) -> None:
        try:
            self._loop_worker()
        except BaseException as e:  # surfaced to the consumer by __anext__
            log.exception("session worker failed")
            self._error = e
        finally:
            with self._cond:
                self._finished = True
                self._cond.notify_all()
            self._wake_consumer()

    def _loop_worker(self) -> None:
        step = int(self.config.step_frames * samples_per_frame(self.fps))
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    controls = list(self._controls)
                    self._controls.clear()
                    chunk = self._take_input_locked(step)
                    gen = self._gen
                    if controls or chunk is not None or self._closing:
                        break
                    self._cond.wait(self.clock.poll_interval)
            for kind, value in controls:  # control overtakes data
                if kind == "clear":
                    # The pipeline drops the frames in flight (features in, motion not out); they
                    # leave the timeline here too: their audio is dropped with them and the pts
                    # stay continuous (pts = index - discarded).
                    skipped = self._pipe.clear()
                    with self._cond:
                        self._next_index += skipped
                        self._discarded += skipped
                elif kind == "emotion":
                    self._style = value
                    self._pipe.set_emotion(value)
                elif kind == "style":
                    self._pipe.set_style(value)
            if chunk is not None:
                self._emit(self._pipe.push(chunk), gen, final=False)
            elif self._closing and not controls:
                self._emit(self._pipe.flush(), gen, final=True)
                return

    def _take_input_locked(self, step: int) -> np.ndarray | None:
        if self._pending and self._debt:
            self._repay_debt_locked()
        if self._pending:
            parts: list[np.ndarray] = []
            n = 0
            while self._pending and n < step:
                a = self._pending.popleft()
                if n + a.size > step:
                    self._pending.appendleft(a[step - n :])
                    a = a[: step - n]
                parts.append(a)
                n += a.size
            self._pending_len -= n
            chunk = np.concatenate(parts) if len(parts) > 1 else parts[0]
        elif self.config.realtime and self._schedule is not None and not self._closing:
            need = self._needed_position_locked()
            if need <= self._fed:
                return None
            chunk = np.zeros(min(need - self._fed, step), np.float32)
            last = self._last_push
            if self.config.resync and last is not None and self.clock.now() - last <= _LIVE_GAP_S:
                # input is streaming but late: this silence delays what follows; owe it
                self._debt = min(self._debt + chunk.size, int(_MAX_DEBT_S * SAMPLE_RATE))
                self.stats.late_fill_samples += chunk.size
        else:
            return None
        self._fed += chunk.size
        self._timeline.append(chunk)
        return chunk

    def _repay_debt_locked(self) -> None:
        """Drop quiet input from the head of the queue (up to the debt). The stamps and segment
        marks of the audio after the dropped samples move back with it."""
        dropped = 0
        while self._debt > 0 and self._pending:
            head = self._pending[0]
            n = min(_QUIET_BLOCK, head.size)
            if n > self._debt:
                break
            block = head[:n].astype(np.float64)
            if float(np.sqrt(np.mean(block * block))) >= _QUIET_RMS:
                break
            if n == head.size:
                self._pending.popleft()
            else:
                self._pending[0] = head[n:]
            self._pending_len -= n
            self._debt -= n
            dropped += n
        if not dropped:
            return
        self.stats.resync_dropped_samples += dropped
        lo = self._fed

        def shift(pos: int) -> int:
            return pos if pos < lo else max(lo, pos - dropped)

        self._stamps = deque((shift(p), t) for p, t in self._stamps)
        self._marks = deque((shift(p), i) for p, i in self._marks)

    def _needed_position_locked(self) -> int:
        """Input position that must be fed by now for the next frames to be on time."""
        assert self._schedule is not None
        # + _TIME_EPS: the consumer moves a simulated clock to exactly due - margin; float
        # rounding of (due - margin) + margin must not land one frame short (a stall).
        pts = self._schedule.frame_at(self.clock.now() + self.config.compute_margin_s + _TIME_EPS)
        index = pts + self._discarded
        return frame_start_sample(index + 1, self.fps) + self._need_ahead

    def _emit(self, motion: np.ndarray, gen: int, *, final: bool) -> None:
        for k, row in enumerate(motion):
            last = final and k == len(motion) - 1
            index = self._next_index
            self._next_index += 1
            a, b = frame_start_sample(index, self.fps), frame_start_sample(index + 1, self.fps)
            with self._cond:
                audio = self._timeline.take(a, b)
                ends: list[bool] = []
                while self._marks and (self._marks[0][0] <= b or last):
                    ends.append(self._marks.popleft()[1])
                discarded = self._discarded
            rgb = self._render(row, index - discarded)
            bundle = _Bundle(index, row.copy(), audio, rgb, self._style, ends)
            with self._cond:
                while (
                    len(self._outbox) >= self.config.max_queue_frames
                    and gen == self._gen
                    and not self._stopped
                ):
                    self._cond.wait(self.clock.poll_interval)
                if self._stopped:
                    return
                if gen != self._gen:  # computed before clear(): thrown away
                    self._discarded += 1
                    continue
                self._outbox.append(bundle)
            self._wake_consumer()

    def _render(self, row: np.ndarray, pts: int) -> np.ndarray | None:
        sched = self._schedule
        late = (
            sched is not None
            and self.clock.now() + self._render_est > sched.frame_due(pts) + self.config.late_tolerance_s
        )
        if self.config.realtime and late:
            with self._cond:
                self.stats.dropped_frames += 1
            self._render_est *= _RENDER_EST_DECAY
            return None
        t = self.clock.now()
        times = self.stats.stage_times
        w = time.perf_counter()
        rgb = self.renderer.render(row[None])[0]
        times.render += time.perf_counter() - w
        times.frames_rendered += 1
        self._render_est = 0.8 * self._render_est + 0.2 * (self.clock.now() - t)
        return rgb
