"""emostream as a self-hosted LiveKit Agents avatar (``pip install "emostream[livekit]"``).

Three parts, the pattern of LiveKit's self-hosted avatars:

- ``EmostreamVideoGenerator``: the ``livekit.agents.voice.avatar.VideoGenerator`` contract backed by
  one emostream ``Session``. ``push_audio(rtc.AudioFrame)`` (any rate, any channel count, s16) /
  ``push_audio(AudioSegmentEnd())`` -> ``session.push_audio`` / ``session.end_segment``;
  ``clear_buffer()`` -> ``session.clear()`` and, if a segment was open, an ``AudioSegmentEnd`` is
  yielded at once (before the next frame); iterating yields, per stream frame, an
  ``rtc.AudioFrame`` (the options' rate and channels, exactly that frame's input audio, silence
  while idle) then an ``rtc.VideoFrame`` (RGBA, the session's size), paced at the session's
  schedule (every sound delayed by exactly ``session.latency``), then ``AudioSegmentEnd`` where
  an utterance finished playing.
- ``run_avatar_worker(room, engine)``: the avatar participant. ``AvatarRunner`` with a
  ``DataStreamAudioReceiver`` (the agent's audio on the byte stream ``lk.audio_stream``; the
  agent's ``lk.clear_buffer`` RPC -> ``clear_buffer()`` -> ``lk.playback_finished`` with
  ``interrupted=True``), publishing through ``rtc.AVSynchronizer``.
- ``EmostreamAvatarSession``: the agent-side ``AvatarSession``. ``start(agent_session, room)`` mints
  the avatar's token (kind ``agent``, publishing on behalf of the agent), launches the worker
  (by default as a task in this process) and routes the agent's audio to it
  (``DataStreamAudioOutput``, waiting for the avatar's video track).

``avatar_options(session, audio_sample_rate=24000)`` gives the ``AvatarOptions`` of a session:
``video_width`` / ``video_height`` = the renderer's size (``EngineConfig.size``), ``video_fps`` =
the engine's fps (25), ``audio_sample_rate`` = the rate of the audio published with the video
(the session works at 16 kHz inside; its audio is resampled to this rate), ``audio_channels``
(the mono voice is copied to each channel).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from livekit import api, rtc
from livekit.agents import AgentSession
from livekit.agents.types import ATTRIBUTE_PUBLISH_ON_BEHALF
from livekit.agents.voice.avatar import (
    AudioSegmentEnd,
    AvatarOptions,
    AvatarRunner,
    AvatarSession,
    DataStreamAudioOutput,
    DataStreamAudioReceiver,
    VideoGenerator,
)

from emostream.arkit import EmotionStyle
from emostream.config import DEFAULT_SEED
from emostream.engine.pipeline import Engine
from emostream.engine.session import AudioFrame, SegmentEnd, Session, SessionConfig, VideoFrame
from emostream.errors import ConfigError, EmostreamError
from emostream.integrations.audio_out import FrameAudioOut

log = logging.getLogger(__name__)

__all__ = [
    "MAX_RATE",
    "MIN_RATE",
    "EmostreamAvatarSession",
    "EmostreamVideoGenerator",
    "avatar_options",
    "run_avatar_worker",
]

#: Input sample rates accepted (Hz); anything else is logged and dropped.
MIN_RATE = 8000
MAX_RATE = 192000
#: Seconds a close waits for the session's worker thread.
_JOIN_S = 5.0
DEFAULT_AVATAR_IDENTITY = "emostream-avatar"


def avatar_options(
    session: Session, audio_sample_rate: int = 24000, audio_channels: int = 1
) -> AvatarOptions:
    """The ``AvatarOptions`` matching ``session`` (size and fps) with the published audio format."""
    if not MIN_RATE <= audio_sample_rate <= MAX_RATE:
        raise ConfigError(f"audio_sample_rate must be in {MIN_RATE}..{MAX_RATE} Hz, got {audio_sample_rate}")
    if audio_channels < 1:
        raise ConfigError(f"audio_channels must be >= 1, got {audio_channels}")
    return AvatarOptions(
        video_width=session.width,
        video_height=session.height,
        video_fps=float(session.fps),
        audio_sample_rate=int(audio_sample_rate),
        audio_channels=int(audio_channels),
    )


@dataclass
class GeneratorStats:
    audio_frames_in: int = 0
    rejected_frames: int = 0
    video_frames_out: int = 0
    audio_frames_out: int = 0
    segments_ended: int = 0
    clears: int = 0
    rates_in: set[int] = field(default_factory=set)


class EmostreamVideoGenerator(VideoGenerator):
    """A LiveKit ``VideoGenerator`` backed by an emostream ``Session`` (see the module doc)."""

    def __init__(self, session: Session, options: AvatarOptions) -> None:
        if (options.video_width, options.video_height) != (session.width, session.height):
            raise ConfigError(
                f"AvatarOptions video size {options.video_width}x{options.video_height} differs from the "
                f"session's {session.width}x{session.height}; build it with avatar_options(session)"
            )
        if round(options.video_fps) != session.fps:
            raise ConfigError(
                f"AvatarOptions video_fps {options.video_fps} differs from the session's {session.fps}"
            )
        self.session = session
        self.options = options
        self.stats = GeneratorStats()
        self._audio_out = FrameAudioOut(options.audio_sample_rate, options.audio_channels)
        self._open = False  # audio pushed since the last segment end
        self._ends_due = 0  # segment ends handed to the session, not yet played
        self._injected: deque[AudioSegmentEnd] = deque()

    # ------------------------------------------------------------------ VideoGenerator
    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        if isinstance(frame, AudioSegmentEnd):
            if self._open:
                self.session.end_segment()
                self._ends_due += 1
                self._open = False
            else:
                log.debug("emostream avatar: AudioSegmentEnd without audio ignored")
            return
        self.stats.audio_frames_in += 1
        why = _audio_problem(frame)
        if why is not None:
            self.stats.rejected_frames += 1
            log.warning("emostream avatar: audio frame dropped: %s", why)
            return
        pcm = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
        try:
            self.session.push_audio(pcm, frame.sample_rate)
        except EmostreamError as e:
            self.stats.rejected_frames += 1
            log.warning("emostream avatar: audio frame dropped: %s", e)
            return
        self.stats.rates_in.add(frame.sample_rate)
        self._open = True

    def clear_buffer(self) -> None:
        """Barge-in: drop the queued speech; an open segment ends before the next frame."""
        self.stats.clears += 1
        self.session.clear()
        if self._open or self._ends_due:
            self._injected.append(AudioSegmentEnd())
        self._open = False
        self._ends_due = 0

    def __aiter__(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        return self._stream()

    async def _stream(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        w, h = self.session.width, self.session.height
        async for item in self.session:
            while self._injected:
                self.stats.segments_ended += 1
                yield self._injected.popleft()
            if isinstance(item, AudioFrame):
                self.stats.audio_frames_out += 1
                pcm = self._audio_out.s16(item.pcm)
                yield rtc.AudioFrame(
                    data=pcm.tobytes(), sample_rate=self._audio_out.rate,
                    num_channels=self._audio_out.channels, samples_per_channel=len(pcm),
                )  # fmt: skip
            elif isinstance(item, VideoFrame):
                rgba = np.concatenate([item.rgb, np.full((h, w, 1), 255, np.uint8)], axis=2)
                self.stats.video_frames_out += 1
                yield rtc.VideoFrame(w, h, rtc.VideoBufferType.RGBA, rgba.tobytes())
            elif isinstance(item, SegmentEnd) and not item.interrupted and self._ends_due:
                # Interrupted ends were announced by clear_buffer() already.
                self._ends_due -= 1
                self.stats.segments_ended += 1
                yield AudioSegmentEnd()

    async def aclose(self) -> None:
        """Stop the session now and join its worker thread."""
        self.session.stop()
        await asyncio.to_thread(self.session.join, _JOIN_S)
        if self.session.worker_alive:
            log.error("emostream avatar: session worker did not stop within %.0f s", _JOIN_S)


def _audio_problem(frame: rtc.AudioFrame) -> str | None:
    if not MIN_RATE <= frame.sample_rate <= MAX_RATE:
        return f"sample rate {frame.sample_rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz"
    if frame.num_channels < 1:
        return f"{frame.num_channels} channels"
    if frame.samples_per_channel == 0:
        return "empty frame (0 samples)"
    return None


@dataclass(frozen=True)
class AvatarWorkerConfig:
    """What the avatar worker runs (the engine holds the shared weights)."""

    portrait: str | Path | None = None
    emotion: str = "neutral"
    intensity: float = 1.0
    seed: int = DEFAULT_SEED
    session: SessionConfig | None = None
    audio_sample_rate: int = 24000
    audio_channels: int = 1


async def run_avatar_worker(
    room: rtc.Room,
    engine: Engine,
    config: AvatarWorkerConfig | None = None,
    *,
    sender_identity: str | None = None,
) -> None:
    """Run the avatar in ``room`` (already connected or connecting) until the room or the task
    ends: audio from ``sender_identity`` (default: the first agent participant) in, synchronized
    video + audio published. The session is stopped and its thread joined on the way out."""
    cfg = config or AvatarWorkerConfig()
    style = EmotionStyle(cfg.emotion, cfg.intensity)
    session = await asyncio.to_thread(
        engine.new_session, cfg.portrait, emotion=style, seed=cfg.seed, config=cfg.session
    )
    generator = EmostreamVideoGenerator(
        session, avatar_options(session, cfg.audio_sample_rate, cfg.audio_channels)
    )
    receiver = DataStreamAudioReceiver(room, sender_identity=sender_identity)
    runner = AvatarRunner(room, audio_recv=receiver, video_gen=generator, options=generator.options)
    try:
        await runner.start()
        await runner.wait_for_complete()
    finally:
        await runner.aclose()
        await generator.aclose()
        log.info("emostream avatar: worker left room %s", room.name)


async def connect_and_run(
    url: str, token: str, engine: Engine, config: AvatarWorkerConfig | None = None
) -> None:
    """Join the room with the avatar's token and run the worker until the room closes."""
    room = rtc.Room()
    await room.connect(url, token)
    try:
        await run_avatar_worker(room, engine, config)
    finally:
        await room.disconnect()


#: ``launcher(url, token)``: make the avatar worker join the room (a task, a process, a request
#: to a machine with a GPU...). It returns once the launch is under way.
Launcher = Callable[[str, str], Awaitable[None]]


class EmostreamAvatarSession(AvatarSession):
    """The agent side: start the emostream avatar for this room and send it the agent's speech."""

    def __init__(
        self,
        *,
        livekit_url: str,
        api_key: str,
        api_secret: str,
        engine: Engine | None = None,
        config: AvatarWorkerConfig | None = None,
        launcher: Launcher | None = None,
        avatar_identity: str = DEFAULT_AVATAR_IDENTITY,
    ) -> None:
        super().__init__()
        if launcher is None and engine is None:
            raise ConfigError("EmostreamAvatarSession needs an engine (in-process worker) or a launcher")
        self._url, self._key, self._secret = livekit_url, api_key, api_secret
        self._engine = engine
        self._config = config or AvatarWorkerConfig()
        self._launcher = launcher
        self._identity = avatar_identity
        self._worker_task: asyncio.Task[None] | None = None

    @property
    def avatar_identity(self) -> str:
        return self._identity

    @property
    def provider(self) -> str:
        return "emostream"

    def avatar_token(self, room_name: str, agent_identity: str) -> str:
        """A join token for the avatar participant, publishing on behalf of the agent."""
        return (
            api.AccessToken(self._key, self._secret)
            .with_identity(self._identity)
            .with_name("emostream avatar")
            .with_kind("agent")
            .with_grants(api.VideoGrants(room_join=True, room=room_name))
            .with_attributes({ATTRIBUTE_PUBLISH_ON_BEHALF: agent_identity})
            .to_jwt()
        )

    async def start(self, agent_session: AgentSession, room: rtc.Room) -> None:
        await super().start(agent_session, room)
        token = self.avatar_token(room.name, room.local_participant.identity)
        if self._launcher is not None:
            await self._launcher(self._url, token)
        else:
            assert self._engine is not None
            self._worker_task = asyncio.create_task(
                connect_and_run(self._url, token, self._engine, self._config)
            )
            self._worker_task.add_done_callback(_log_worker_end)
        agent_session.output.audio = DataStreamAudioOutput(
            room,
            destination_identity=self._identity,
            sample_rate=self._config.audio_sample_rate,
            wait_remote_track=rtc.TrackKind.KIND_VIDEO,
        )

    async def aclose(self) -> None:
        await super().aclose()
        task, self._worker_task = self._worker_task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _log_worker_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("emostream avatar: worker failed: %s", task.exception())
