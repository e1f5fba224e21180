"""Media tracks of one peer connection: the avatar's video and audio (paced, from ONE shared t0)
and the microphone receiver.

aiortc's sender does no pacing: it calls ``recv()`` and sends what it gets at once, and the
browser's lip sync relies on the RTCP sender reports, which map each track's RTP clock to the
wall time its packets were *sent*. So both tracks here sleep until ``t0 + pts / clock`` before
returning a frame, with pts counted from the same origin: video frame ``n`` at
``t0 + n / fps`` (90 kHz RTP clock, pts ``n · 90000 / fps``), audio packet ``m`` at
``t0 + m · 20 ms`` (48 kHz, 960 samples). ``t0`` is fixed once, when the session's first
item of any kind arrives (anchored on the session's own schedule, plus ``lead`` seconds of
jitter margin), or when the tracks start sending, whichever comes first; the session's own
pts are mapped onto it: a session frame with pts ``k`` is due at ``t0 + k / fps`` and its
audio sample ``s`` at ``t0 + s / sample_rate``. An overloaded session may yield no video
at all for a while (its frames are dropped as late): the clock, the audio and the repeated
last frame keep going regardless, so a peer never waits on a video frame to start.

When the sender falls behind, the video track skips the frames whose time has passed instead
of sending them late (late frames would stretch the browser's jitter buffer and drag the
audio with them); when the session is late, the last frame is repeated and the audio is
filled with silence, so the RTP timeline never stretches. The feed never blocks its producer
for long: when the tracks do not consume (not connected yet, or stopped), the oldest buffered
media is dropped after ``MAX_PUT_WAIT_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from emostream.config import SAMPLE_RATE

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000
VIDEO_TIME_BASE = Fraction(1, VIDEO_CLOCK)
AUDIO_RATE = 48_000
AUDIO_PTIME = Fraction(20, 1000)
AUDIO_SAMPLES = int(AUDIO_RATE * AUDIO_PTIME)  # 960
AUDIO_TIME_BASE = Fraction(1, AUDIO_RATE)
#: libopus' encoder look-ahead at 48 kHz (6.5 ms): the decoded audio of RTP timestamp ``ts``
#: is the input from ``ts - 312``. The audio track feeds the encoder 312 samples ahead so
#: that decoded audio lands on its own timestamps (and so on the video's).
OPUS_LOOKAHEAD = 312
#: Default jitter margin between a frame's arrival from the session and its send time.
DEFAULT_LEAD_S = 0.03
#: Video frames buffered ahead of their send time before the feed stops reading the session.
MAX_VIDEO_AHEAD = 50
#: Audio (seconds) buffered ahead of its send time before the feed stops reading.
MAX_AUDIO_AHEAD_S = 2.0
#: Longest a producer waits for room in the feed before the oldest buffered media is dropped.
MAX_PUT_WAIT_S = 0.5
#: Longest the tracks wait for the session's first item before they start the clock themselves.
MAX_START_WAIT_S = 0.25
#: Decoded microphone frames allowed to wait in aiortc's (unbounded) receive queue.
MAX_MIC_BACKLOG = 10
#: Video send times kept per track (~3 min at 25 fps).
SEND_LOG = 4500


class AvatarSession(Protocol):
    """What the transport needs of ``emostream.engine.session.Session``."""

    def push_audio(self, pcm: np.ndarray, sample_rate: int) -> None: ...
    def end_segment(self) -> None: ...
    def clear(self) -> None: ...
    def set_emotion(self, name: str, intensity: float) -> None: ...
    def set_style(self, reference: np.ndarray) -> None: ...
    def stop(self) -> None: ...
    def __aiter__(self) -> AsyncIterator[Any]: ...


def session_frame_due(session: object, pts: int, fps: int) -> float | None:
    """Monotonic time at which a session yields frame ``pts`` (``t0 + latency + pts / fps``,
    the Session contract), or None when the session exposes no wall-clock schedule."""
    t0 = getattr(session, "t0", None)
    latency = getattr(session, "latency", None)
    clock = getattr(session, "clock", None)
    if t0 is None or latency is None or (clock is not None and getattr(clock, "poll_interval", 1) is None):
        return None  # unknown, or a simulated clock
    return float(t0) + float(latency) + pts / fps


class MediaClock:
    """The one t0 of a peer connection's outgoing tracks (monotonic seconds)."""

    def __init__(self, lead_s: float = DEFAULT_LEAD_S) -> None:
        self.lead_s = lead_s
        self.t0: float | None = None
        self._started = asyncio.Event()

    def start(self, first_video_pts: int, fps: int, session_due: float | None = None) -> float:
        """Fix t0 so that session frame ``first_video_pts`` is sent ``lead_s`` after it is due
        from the session (``session_due``, monotonic) or, if the session does not say, after
        now (its arrival). Anchoring on the session's own schedule keeps a slow first
        delivery (startup stall) from adding its delay to every later frame."""
        if self.t0 is None:
            base = time.monotonic() if session_due is None else session_due
            self.t0 = base + self.lead_s - first_video_pts / fps
            self._started.set()
        return self.t0

    async def wait_started(
        self, timeout: float | None = None, fallback: tuple[int, int, float | None] | None = None
    ) -> float:
        """t0, once started. With ``timeout``: after that many seconds, start it from
        ``fallback`` (first pts, fps, session due) instead of waiting on."""
        if timeout is not None and fallback is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._started.wait(), timeout)
            if self.t0 is None:
                self.start(*fallback)
        await self._started.wait()
        assert self.t0 is not None
        return self.t0

    @property
    def started(self) -> bool:
        return self.t0 is not None


@dataclass
class TrackStats:
    """Counters a track keeps for the stats channel and the tests."""

    sent: int = 0
    skipped: int = 0  # ticks dropped because the sender was late
    repeated: int = 0  # video: ticks with no new session frame; audio: silent packets
    late_frames: int = 0  # session frames that arrived after their send time
    max_late_ms: float = 0.0  # worst wake-up delay after a frame's send time

    def note_wake(self, late_s: float) -> None:
        self.max_late_ms = max(self.max_late_ms, 1000.0 * late_s)

    def as_dict(self) -> dict[str, float]:
        return {
            "sent": self.sent,
            "skipped": self.skipped,
            "repeated": self.repeated,
            "late_frames": self.late_frames,
            "max_late_ms": round(self.max_late_ms, 2),
        }


class AvatarFeed:
    """Reads the session's items and hands them to the tracks, bounded on both sides.

    ``feed(item)`` is called by the pump for each item; when the tracks are far behind (more
    than ``MAX_VIDEO_AHEAD`` frames or ``MAX_AUDIO_AHEAD_S`` of audio buffered), it waits, so a
    session that runs ahead is back-pressured instead of filling memory.
    """

    def __init__(self, clock: MediaClock, fps: int, due: Callable[[int], float | None] | None = None) -> None:
        self.clock = clock
        self.fps = fps
        #: session pts -> monotonic time the session schedules it (None: unknown).
        self.due: Callable[[int], float | None] = due or (lambda pts: None)
        self.frames: deque[tuple[int, np.ndarray, float]] = deque()  # (session pts, rgb, arrival epoch s)
        self.audio = np.zeros(0, dtype=np.int16)  # 48 kHz s16 mono, starting at audio_start
        self.audio_start = 0  # 48 kHz session-time sample index of self.audio[0]
        self._resampler: av.AudioResampler | None = None
        self._rate_in = SAMPLE_RATE
        self._next_in_pts = 0  # expected pts of the next session audio chunk
        self._write_pos = 0  # 48 kHz index where the resampler's next output goes
        self._space = asyncio.Condition()
        self.frame_size: tuple[int, int] | None = None  # (height, width)
        self.received_frames = 0
        self.last_motion: Any = None  # the session's latest ArkitFrame.motion (MotionFrame)
        self.received_audio_s = 0.0
        #: Media dropped because the tracks did not consume it within ``MAX_PUT_WAIT_S``.
        self.overflow_frames = 0
        self.overflow_audio_samples = 0

    # --- producer side -------------------------------------------------------------------
    def start_clock(self, pts: int) -> None:
        """Start the clock (if not yet) from session frame ``pts``, on the session's schedule."""
        if not self.clock.started:
            self.clock.start(pts, self.fps, self.due(pts))

    def fallback_start(self) -> tuple[int, int, float | None]:
        """How the tracks start the clock when no session item came (session frame 0)."""
        return 0, self.fps, self.due(0)

    async def _wait_room(self, has_room: Callable[[], bool]) -> bool:
        """Wait (at most ``MAX_PUT_WAIT_S``) until ``has_room()``; False on timeout."""
        if has_room():
            return True
        with contextlib.suppress(TimeoutError):
            async with self._space:
                await asyncio.wait_for(self._space.wait_for(has_room), MAX_PUT_WAIT_S)
        return has_room()

    async def put_video(self, pts: int, rgb: np.ndarray) -> None:
        """A session frame (pts at ``fps``)."""
        self.start_clock(pts)
        if not await self._wait_room(lambda: len(self.frames) < MAX_VIDEO_AHEAD):
            while len(self.frames) >= MAX_VIDEO_AHEAD:  # not consumed: the oldest go
                self.frames.popleft()
                self.overflow_frames += 1
        self.frames.append((pts, rgb, time.time()))
        self.frame_size = (int(rgb.shape[0]), int(rgb.shape[1]))
        self.received_frames += 1

    async def put_audio(self, pts: int, pcm: np.ndarray, sample_rate: int) -> None:
        """``pcm`` float32 mono at ``sample_rate``; ``pts`` its first sample in that rate,
        on the same origin as the video pts (session time 0 = ``t0``)."""
        self.start_clock(pts * self.fps // sample_rate)
        limit = int(MAX_AUDIO_AHEAD_S * AUDIO_RATE)
        if not await self._wait_room(lambda: len(self.audio) < limit):
            drop = len(self.audio) - limit + 1  # not consumed: the oldest goes
            self.audio = self.audio[drop:]
            self.audio_start += drop
            self.overflow_audio_samples += drop
        if self._resampler is None or pts != self._next_in_pts or sample_rate != self._rate_in:
            # First chunk, a discontinuity or a new rate: place it by its pts (after the old
            # resampler's held-back tail).
            if self._resampler is not None:
                self._write_resampled(self._resampler.resample(None))
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_RATE)
            self._rate_in = sample_rate
            self._write_pos = pts * AUDIO_RATE // sample_rate
        self._next_in_pts = pts + len(pcm)
        frame = av.AudioFrame.from_ndarray(
            np.clip(pcm, -1.0, 1.0).astype(np.float32).reshape(1, -1), format="flt", layout="mono"
        )
        frame.sample_rate = sample_rate
        self.received_audio_s += len(pcm) / sample_rate
        self._write_resampled(self._resampler.resample(frame))

    def _write_resampled(self, frames: list[av.AudioFrame]) -> None:
        chunks = [f.to_ndarray().reshape(-1) for f in frames]
        if not chunks:
            return
        data = np.concatenate(chunks).astype(np.int16)
        self._append_audio(self._write_pos, data)
        self._write_pos += len(data)

    def _append_audio(self, start: int, data: np.ndarray) -> None:
        end = self.audio_start + len(self.audio)
        if not len(self.audio) and start >= self.audio_start:
            self.audio, self.audio_start = data, start
        elif start > end:  # a gap: fill it with silence
            self.audio = np.concatenate([self.audio, np.zeros(start - end, np.int16), data])
        else:  # overlap (after a clear): newer audio wins
            keep = max(0, start - self.audio_start)
            self.audio = np.concatenate([self.audio[:keep], data[max(0, self.audio_start - start) :]])

    # --- consumer side -------------------------------------------------------------------
    async def _notify(self) -> None:
        async with self._space:
            self._space.notify_all()

    def take_video(self, pts: int) -> tuple[np.ndarray | None, float | None, int]:
        """The frame for session pts ``pts``: (rgb or None, its arrival epoch time, frames
        dropped because their time had passed)."""
        dropped = 0
        while self.frames and self.frames[0][0] < pts:
            self.frames.popleft()
            dropped += 1
        if self.frames and self.frames[0][0] == pts:
            _, rgb, arrived = self.frames.popleft()
            return rgb, arrived, dropped
        return None, None, dropped

    def take_audio(self, start: int, n: int) -> tuple[np.ndarray, bool]:
        """48 kHz samples [start, start+n) of the session's audio timeline; (pcm, complete)."""
        out = np.zeros(n, dtype=np.int16)
        lo = start - self.audio_start
        have = self.audio[max(lo, 0) : max(lo + n, 0)]
        if lo >= 0:
            out[: len(have)] = have
        else:
            out[-lo : -lo + len(have)] = have
        complete = lo >= 0 and len(have) == n
        drop = max(0, lo + n)
        if drop:
            self.audio = self.audio[drop:]
            self.audio_start += drop
        return out, complete


class AvatarVideoTrack(MediaStreamTrack):
    """25 fps (any engine fps) RGB frames from the feed, paced on the 90 kHz clock."""

    kind = "video"

    def __init__(self, feed: AvatarFeed) -> None:
        super().__init__()
        self.feed = feed
        self.fps = feed.fps
        self.stats = TrackStats()
        self._next = 0  # next session pts to send
        self._last: np.ndarray | None = None
        #: (pts, send epoch s, arrival epoch s or None for a repeat), for stats and tests.
        self.send_times: deque[tuple[int, float, float | None]] = deque(maxlen=SEND_LOG)

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        t0 = await self.feed.clock.wait_started(MAX_START_WAIT_S, self.feed.fallback_start())
        if self.stats.sent == 0 and self._last is None:
            first = self.feed.frames[0][0] if self.feed.frames else 0
            self._next = first
        n = self._next
        now = time.monotonic()
        due = t0 + n / self.fps
        late = now - due
        if late > 0.5 / self.fps:  # behind: skip the ticks whose time has passed
            skip = math.ceil(late * self.fps - 0.5)
            self.stats.skipped += skip
            n += skip
            due = t0 + n / self.fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        self.stats.note_wake(time.monotonic() - due)
        rgb, arrived, dropped = self.feed.take_video(n)
        self.stats.late_frames += dropped
        if rgb is None:
            if self._last is None:
                # Nothing yet: a black frame of the session's size keeps the timeline going.
                h, w = self.feed.frame_size or (16, 16)
                self._last = np.zeros((h, w, 3), np.uint8)
            rgb = self._last
            self.stats.repeated += 1
        self._last = rgb
        await self.feed._notify()
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = n * VIDEO_CLOCK // self.fps
        frame.time_base = VIDEO_TIME_BASE
        self._next = n + 1
        self.stats.sent += 1
        self.send_times.append((n, time.time(), arrived))
        return frame


class AvatarAudioTrack(MediaStreamTrack):
    """48 kHz s16 mono Opus input in 20 ms packets, paced against the same t0 as the video."""

    kind = "audio"

    #: Beyond this lateness the track jumps ahead (skips) instead of sending old audio. Audio
    #: a little late is still sent (the receiver's jitter buffer absorbs it; a skip is a gap).
    MAX_LATE_S = 0.25

    def __init__(self, feed: AvatarFeed) -> None:
        super().__init__()
        self.feed = feed
        self.stats = TrackStats()
        self._next = 0  # next packet index on the track's 48 kHz timeline

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        t0 = await self.feed.clock.wait_started(MAX_START_WAIT_S, self.feed.fallback_start())
        if self.stats.sent == 0 and self._next == 0:
            self._next = max(0, math.ceil((time.monotonic() - t0) / float(AUDIO_PTIME)))
        m = self._next
        due = t0 + float(m * AUDIO_PTIME)
        late = time.monotonic() - due
        if late > self.MAX_LATE_S:
            skip = int(late / float(AUDIO_PTIME))
            self.stats.skipped += skip
            m += skip
            due = t0 + float(m * AUDIO_PTIME)
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        self.stats.note_wake(time.monotonic() - due)
        start = m * AUDIO_SAMPLES + OPUS_LOOKAHEAD
        pcm, complete = self.feed.take_audio(start, AUDIO_SAMPLES)
        if not complete:
            self.stats.repeated += 1
        await self.feed._notify()
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = m * AUDIO_SAMPLES
        frame.time_base = AUDIO_TIME_BASE
        self._next = m + 1
        self.stats.sent += 1
        return frame


class MicReceiver:
    """Reads the browser's microphone track, resamples to 16 kHz mono and pushes it into the
    session. aiortc's receive queue is unbounded, so if this consumer ever falls behind by
    more than ``MAX_MIC_BACKLOG`` frames the oldest are dropped (and counted)."""

    def __init__(self, track: MediaStreamTrack, session: AvatarSession) -> None:
        self.track = track
        self.session = session
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        self.frames = 0
        self.samples = 0
        self.dropped = 0
        self.last_level = 0.0

    def _trim_backlog(self) -> None:
        queue = getattr(self.track, "_queue", None)  # aiortc RemoteStreamTrack's asyncio.Queue
        if isinstance(queue, asyncio.Queue):
            while queue.qsize() > MAX_MIC_BACKLOG:
                item = queue.get_nowait()
                if item is None:  # end of track: keep the marker
                    queue.put_nowait(None)
                    break
                self.dropped += 1

    async def run(self) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                self._trim_backlog()
                frame = await self.track.recv()
                if not isinstance(frame, av.AudioFrame):
                    continue
                for out in self.resampler.resample(frame):
                    pcm = out.to_ndarray().reshape(-1).astype(np.float32)
                    if pcm.size == 0:
                        continue
                    self.samples += pcm.size
                    self.last_level = float(np.sqrt(np.mean(pcm * pcm)))
                    self.session.push_audio(pcm, SAMPLE_RATE)
                self.frames += 1
