"""emostream as a Pipecat video service: TTS audio in, lip-synced avatar video + audio out.

Place it right after the TTS service of a Pipecat pipeline::

    engine = Engine.load(EngineConfig(renderer="analytic", size=256))
    avatar = EmostreamVideoService(engine, AvatarServiceOptions(emotion="happy"))
    Pipeline([transport.input(), stt, llm, tts, avatar, transport.output()])

What it does with each frame:

- ``TTSAudioRawFrame`` (any rate, mono or interleaved multi-channel s16): pushed into the
  emostream session and *not* passed on; the session's audio comes back out instead.
- Out: for every stream frame (``session.fps``, also while idle) a ``SpeechOutputAudioRawFrame``
  (mono s16 at ``audio_out_sample_rate``, default 16 kHz: exactly the input audio of that frame,
  silence while idle) followed by an
  ``OutputImageRawFrame`` (RGB, the session's size), presented at the session's schedule: every
  sound is delayed by exactly ``session.latency`` and played with the frame that shows it. Both
  carry ``pts`` = stream time in ns. A video frame the session skipped because compute fell
  behind is simply missing (its audio is still pushed).
- ``TTSStoppedFrame`` (the TTS's end of turn): ``session.end_segment()``, then passed on.
- ``InterruptionFrame`` and ``UserStartedSpeakingFrame`` (barge-in): ``session.clear()`` at
  once, then passed on; speech stops within one frame of stream time.
- ``EmostreamEmotionFrame(name, intensity)`` or ``set_emotion()``: the session's emotion.
- ``EndFrame``: the queued speech is played out, then the session ends. ``CancelFrame`` or a
  cleanup: the session stops at once and its worker thread is joined.
- Every other frame is passed on untouched, in its direction.

Bad input is logged (one line) and dropped, never raised into the pipeline: a sample rate
outside ``MIN_RATE..MAX_RATE``, a byte count that is not whole s16 samples, an empty frame, a
burst beyond the session's pending-audio limit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pipecat.frames.frames import (
    CancelFrame,
    ControlFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputImageRawFrame,
    SpeechOutputAudioRawFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
    UserStartedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from emostream.arkit import EmotionStyle
from emostream.config import DEFAULT_SEED
from emostream.engine.pipeline import Engine
from emostream.engine.session import AudioFrame, SegmentEnd, Session, SessionConfig, VideoFrame
from emostream.errors import ConfigError, EmostreamError
from emostream.integrations.audio_out import FrameAudioOut

log = logging.getLogger(__name__)

__all__ = ["MAX_RATE", "MIN_RATE", "AvatarServiceOptions", "EmostreamEmotionFrame", "EmostreamVideoService"]

#: TTS sample rates accepted (Hz); anything else is logged and dropped.
MIN_RATE = 8000
MAX_RATE = 192000
_NS = 1_000_000_000
#: Seconds a cleanup waits for the session's worker thread.
_JOIN_S = 5.0


@dataclass
class EmostreamEmotionFrame(ControlFrame):
    """Change the avatar's emotion (``emostream.arkit.EMOTIONS``, intensity in [0, 1])."""

    emotion: str = "neutral"
    intensity: float = 1.0


@dataclass(frozen=True)
class AvatarServiceOptions:
    """Per-pipeline settings of the avatar (the engine holds the shared weights)."""

    portrait: str | Path | None = None  # None: the bundled portrait
    emotion: str = "neutral"
    intensity: float = 1.0
    seed: int = DEFAULT_SEED
    session: SessionConfig | None = None
    #: Barge-in also on ``UserStartedSpeakingFrame`` (not only on ``InterruptionFrame``).
    clear_on_user_speech: bool = True
    #: Rate of the audio put out (None: the session's 16 kHz). Set it to the output transport's
    #: rate: Pipecat's own resampler (soxr VHQ) returns audio in 40-80 ms blocks, a frame or two
    #: behind the images; this one keeps every frame's audio with its image.
    audio_out_sample_rate: int | None = None
    #: Start the stream (its clock, idle frames) only once ``output_ready()`` is called, e.g. by
    #: the transport when it starts sending; otherwise at the StartFrame. A WebRTC transport
    #: connects after the pipeline starts, and the audio made meanwhile would queue up in the
    #: output transport and delay all later sound by that much, for good.
    wait_for_output: bool = False


@dataclass
class ServiceStats:
    """What the service saw (the session's own figures are in ``service.session.stats``)."""

    audio_frames_in: int = 0
    rejected_frames: int = 0
    video_frames_out: int = 0
    audio_frames_out: int = 0
    segments_ended: int = 0
    #: Stream time (s) of each barge-in: the stream position being presented when it came.
    interrupts_s: list[float] = field(default_factory=list)


class EmostreamVideoService(FrameProcessor):
    """A Pipecat frame processor backed by one emostream ``Session`` (see the module doc)."""

    def __init__(
        self,
        engine: Engine,
        options: AvatarServiceOptions | None = None,
        *,
        session_factory: Callable[[], Session] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.options = options or AvatarServiceOptions()
        self._style = EmotionStyle(self.options.emotion, self.options.intensity)  # fails early
        rate = self.options.audio_out_sample_rate
        if rate is not None and not MIN_RATE <= rate <= MAX_RATE:
            raise ConfigError(f"audio_out_sample_rate must be in {MIN_RATE}..{MAX_RATE} Hz, got {rate}")
        self._engine = engine
        self._factory = session_factory or self._new_session
        self._session: Session | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._output_ready = asyncio.Event()
        self._unended_audio = False  # TTS audio pushed since the last end of turn
        self._turns_due = 0  # ends of turn handed to the session, not yet played
        self.stats = ServiceStats()

    # ------------------------------------------------------------------ public
    @property
    def session(self) -> Session | None:
        """The live session (None before the StartFrame and after the end)."""
        return self._session

    @property
    def in_turn(self) -> bool:
        """Whether speech is queued or playing (a turn not yet played to its end)."""
        return self._unended_audio or self._turns_due > 0

    def output_ready(self) -> None:
        """The output transport started sending: start the stream now (``wait_for_output``)."""
        self._output_ready.set()

    def presented_at(self, pts_ns: int) -> float | None:
        """When the frames of stream time ``pts_ns`` (the ``pts`` this service puts on what it
        pushes) are pushed, on the session's clock (``time.monotonic`` unless the engine was
        given another); None before the stream starts."""
        session = self._session
        if session is None or session.t0 is None:
            return None
        return session.t0 + float(session.latency) + pts_ns / _NS

    def set_emotion(self, emotion: str, intensity: float = 1.0) -> None:
        """Blend to ``emotion`` within one motion window (raises ConfigError for a bad name)."""
        self._style = EmotionStyle(emotion, float(intensity))
        if self._session is not None:
            self._session.set_emotion(self._style.name, self._style.intensity)

    # ------------------------------------------------------------------ frames
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            await self._start()
        elif isinstance(frame, TTSAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            self._push_tts_audio(frame)
        elif isinstance(frame, TTSStoppedFrame):
            if self._session is not None and self._unended_audio:
                self._session.end_segment()
                self._turns_due += 1
                self._unended_audio = False
            await self.push_frame(frame, direction)
        elif isinstance(frame, InterruptionFrame) or (
            isinstance(frame, UserStartedSpeakingFrame) and self.options.clear_on_user_speech
        ):
            self._barge_in()
            await self.push_frame(frame, direction)
        elif isinstance(frame, EmostreamEmotionFrame):
            try:
                self.set_emotion(frame.emotion, frame.intensity)
            except EmostreamError as e:
                log.error("emostream avatar: emotion frame ignored: %s", e)
        elif isinstance(frame, EndFrame):
            await self._finish()
            await self.push_frame(frame, direction)
        elif isinstance(frame, CancelFrame):
            await self._stop("pipeline cancelled")
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        await super().cleanup()
        await self._stop("pipeline cleaned up")

    # ------------------------------------------------------------------ input
    def _push_tts_audio(self, frame: TTSAudioRawFrame) -> None:
        self.stats.audio_frames_in += 1
        why = _audio_problem(frame)
        if why is None and self._session is None:
            why = "no session (before StartFrame or after the end)"
        if why is not None:
            self.stats.rejected_frames += 1
            log.warning("emostream avatar: TTS audio frame dropped: %s", why)
            return
        assert self._session is not None
        pcm = np.frombuffer(frame.audio, dtype=np.int16).reshape(-1, frame.num_channels)
        try:
            self._session.push_audio(pcm, frame.sample_rate)
        except EmostreamError as e:
            self.stats.rejected_frames += 1
            log.warning("emostream avatar: TTS audio frame dropped: %s", e)
            return
        self._unended_audio = True

    def _barge_in(self) -> None:
        session = self._session
        if session is None:
            return
        sched_t0 = session.t0
        if sched_t0 is not None:
            now = session.clock.now()
            self.stats.interrupts_s.append(now - sched_t0 - float(session.latency))
        session.clear()
        self._unended_audio = False
        self._turns_due = 0

    # ------------------------------------------------------------------ session lifecycle
    def _new_session(self) -> Session:
        o = self.options
        return self._engine.new_session(o.portrait, emotion=self._style, seed=o.seed, config=o.session)

    async def _start(self) -> None:
        if self._session is not None:
            return
        # Preparing a new portrait runs face detection: keep the event loop free.
        self._session = await asyncio.to_thread(self._factory)
        self._pump_task = self.create_task(self._pump(self._session), name="emostream-avatar-pump")

    async def _finish(self) -> None:
        """Graceful end: the queued speech plays out, then the session ends."""
        session, task = self._session, self._pump_task
        if session is None:
            return
        session.close()
        if task is not None:
            await task
        await self._release(session)

    async def _stop(self, why: str) -> None:
        session, task = self._session, self._pump_task
        if session is None:
            return
        played = session.stats.audio_samples / session.sample_rate
        session.stop()
        if task is not None:
            await self.cancel_task(task)
        await self._release(session)
        log.info("emostream avatar: session stopped (%s) after %.2f s of stream", why, played)

    async def _release(self, session: Session) -> None:
        self._session = None
        self._pump_task = None
        await asyncio.to_thread(session.join, _JOIN_S)
        if session.worker_alive:
            log.error("emostream avatar: session worker did not stop within %.0f s", _JOIN_S)

    async def _pump(self, session: Session) -> None:
        """Session items -> Pipecat frames, pushed at the session's (paced) presentation times."""
        w, h = session.width, session.height
        out = FrameAudioOut(self.options.audio_out_sample_rate or session.sample_rate)
        if self.options.wait_for_output:
            await self._output_ready.wait()
        session.start()
        try:
            async for item in session:
                if isinstance(item, AudioFrame):
                    audio = SpeechOutputAudioRawFrame(
                        audio=out.s16(item.pcm).tobytes(), sample_rate=out.rate, num_channels=1
                    )
                    audio.pts = item.pts * _NS // item.sample_rate
                    self.stats.audio_frames_out += 1
                    await self.push_frame(audio)
                elif isinstance(item, VideoFrame):
                    image = OutputImageRawFrame(image=item.rgb.tobytes(), size=(w, h), format="RGB")
                    image.pts = item.pts * _NS // item.fps
                    self.stats.video_frames_out += 1
                    await self.push_frame(image)
                elif isinstance(item, SegmentEnd):
                    self.stats.segments_ended += 1
                    if not item.interrupted:  # clear() already reset the count
                        self._turns_due = max(self._turns_due - 1, 0)
        except EmostreamError as e:
            log.error("emostream avatar: session failed: %s", e)
            await self.push_error(error_msg=f"emostream avatar session failed: {e}", exception=e)


def _audio_problem(frame: TTSAudioRawFrame) -> str | None:
    """Why a TTS frame cannot be used (None: it can)."""
    if not MIN_RATE <= int(frame.sample_rate) <= MAX_RATE:
        return f"sample rate {frame.sample_rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz"
    if frame.num_channels < 1:
        return f"{frame.num_channels} channels"
    if not frame.audio:
        return "empty frame (0 samples)"
    if len(frame.audio) % (2 * frame.num_channels):
        return (
            f"{len(frame.audio)} bytes is not a whole number of s16 samples x {frame.num_channels} channels"
        )
    return None
