"""The LiveKit Agents avatar: EmostreamVideoGenerator driven with real ``livekit.rtc`` frames
(the rtc SDK's native library works offline for frames, sources and the AV synchronizer), and
the real ``AvatarRunner`` wired to it. No LiveKit server can run here: the runner is given a
stand-in room (publish_track only) and LiveKit's own ``QueueAudioOutput`` as its audio receiver
instead of ``DataStreamAudioReceiver`` (which needs a server's byte streams and RPC).

The engine is the deterministic double (tests/session_doubles.py: the red channel is jawOpen,
which follows the audio energy of the frame itself) behind the real ``Session``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

pytest.importorskip("livekit.agents", reason="needs the livekit extra: pip install 'emostream[livekit]'")

from livekit import rtc
from livekit.agents.voice.avatar import AudioSegmentEnd, AvatarRunner, QueueAudioOutput
from session_doubles import double_engine

from emostream.engine.session import Session, SessionConfig
from emostream.errors import ConfigError
from emostream.integrations.livekit import EmostreamVideoGenerator, avatar_options

pytestmark = pytest.mark.timeout(120)

FPS = 25
SPEECH_RMS = 0.01


def new_session() -> Session:
    config = SessionConfig(compute_margin_s=0.08, jitter_margin_s=0.04)
    return double_engine(fps=FPS).new_session(config=config)


def tone_frames(seconds: float, rate: int, channels: int = 1, frame_ms: int = 10) -> list[rtc.AudioFrame]:
    n = int(seconds * rate)
    t = np.arange(n) / rate
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype(np.int16)
    step = rate * frame_ms // 1000
    out = []
    for a in range(0, n, step):
        block = np.repeat(pcm[a : a + step, None], channels, axis=1)
        out.append(
            rtc.AudioFrame(
                data=block.tobytes(), sample_rate=rate, num_channels=channels, samples_per_channel=len(block)
            )
        )
    return out


def rms(frame: rtc.AudioFrame) -> float:
    x = np.frombuffer(frame.data, np.int16).astype(np.float64) / 32768
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def jaw(frame: rtc.VideoFrame) -> int:
    return int(np.frombuffer(frame.data, np.uint8)[0])


@dataclass
class Collected:
    items: list[Any] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def audio(self) -> list[rtc.AudioFrame]:
        return [i for i in self.items if isinstance(i, rtc.AudioFrame)]

    def video(self) -> list[rtc.VideoFrame]:
        return [i for i in self.items if isinstance(i, rtc.VideoFrame)]

    def ends(self) -> list[int]:
        """Index among the audio frames at which each AudioSegmentEnd came."""
        out, n = [], 0
        for i in self.items:
            if isinstance(i, rtc.AudioFrame):
                n += 1
            elif isinstance(i, AudioSegmentEnd):
                out.append(n)
        return out

    def speech(self) -> list[int]:
        return [k for k, a in enumerate(self.audio()) if rms(a) > SPEECH_RMS]


async def collect(gen: EmostreamVideoGenerator, into: Collected) -> None:
    async for item in gen:
        into.items.append(item)
        into.times.append(time.monotonic())


def no_session_threads(timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(t.name == "emostream-session" and t.is_alive() for t in threading.enumerate()):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("rate", [16000, 24000, 48000])
async def test_generator_frames_at_options_size_fps_and_rate(rate: int) -> None:
    session = new_session()
    options = avatar_options(session, audio_sample_rate=rate)
    gen = EmostreamVideoGenerator(session, options)
    got = Collected()
    task = asyncio.create_task(collect(gen, got))
    await asyncio.sleep(0.3)
    for f in tone_frames(1.0, rate):
        await gen.push_audio(f)
    await gen.push_audio(AudioSegmentEnd())
    await asyncio.sleep(1.4)
    for f in tone_frames(0.4, rate):
        await gen.push_audio(f)
    await gen.push_audio(AudioSegmentEnd())
    await asyncio.sleep(1.0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await gen.aclose()

    audio, video = got.audio(), got.video()
    assert {(v.width, v.height) for v in video} == {(options.video_width, options.video_height)}
    assert {v.type for v in video} == {rtc.VideoBufferType.RGBA}
    # One audio frame of exactly 1/fps per stream frame, a video frame with each (or a counted drop).
    assert {a.samples_per_channel for a in audio} == {rate // FPS}
    assert {(a.sample_rate, a.num_channels) for a in audio} == {(rate, 1)}
    assert len(video) + session.stats.dropped_frames == len(audio)
    assert len(audio) >= FPS * 2.2
    # Speech: two segments, each followed by its AudioSegmentEnd within a frame of its last sound.
    spoken = got.speech()
    runs = np.split(np.asarray(spoken), np.where(np.diff(spoken) > 1)[0] + 1)
    assert [len(r) >= n * FPS - 2 for r, n in zip(runs, (1.0, 0.4), strict=True)] == [True, True]
    ends = got.ends()
    assert len(ends) == 2
    for r, e in zip(runs, ends, strict=True):
        assert 0 <= e - (int(r[-1]) + 1) <= 2, f"segment end at audio frame {e}, last sound {r[-1]}"
    # Lips and sound in the same frame: the mouth opens with the first sound, closes with the last.
    pairs = [(it, got.items[i + 1]) for i, it in enumerate(got.items[:-1]) if isinstance(it, rtc.AudioFrame)]
    shown = [(rms(a) > SPEECH_RMS, jaw(v) > 20) for a, v in pairs if isinstance(v, rtc.VideoFrame)]
    mismatched = sum(s != m for s, m in shown)
    assert mismatched <= 4, f"{mismatched} frames where sound and mouth disagree (edges of 2 segments)"
    # The audio is the input tone, resampled, not altered.
    assert np.median([rms(audio[k]) for k in spoken]) == pytest.approx(0.3 / np.sqrt(2), rel=0.05)
    assert no_session_threads()


async def test_clear_buffer_mid_segment_ends_it_at_once() -> None:
    session = new_session()
    gen = EmostreamVideoGenerator(session, avatar_options(session, 48000))
    got = Collected()
    task = asyncio.create_task(collect(gen, got))
    for f in tone_frames(4.0, 48000, frame_ms=100):
        await gen.push_audio(f)
    await asyncio.sleep(1.2)
    n_before = len(got.audio())
    gen.clear_buffer()
    await asyncio.sleep(0.6)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await gen.aclose()
    ends = got.ends()
    assert len(ends) == 1 and ends[0] - n_before <= 1, "AudioSegmentEnd before the next frame"
    spoken = got.speech()
    assert spoken and spoken[-1] <= n_before + 1, "speech stops within one frame of the clear"
    assert len(got.audio()) - n_before >= 10, "idle frames keep flowing"


async def test_bad_input_logged_and_dropped(caplog: pytest.LogCaptureFixture) -> None:
    session = new_session()
    gen = EmostreamVideoGenerator(session, avatar_options(session, 24000))
    got = Collected()
    task = asyncio.create_task(collect(gen, got))
    await asyncio.sleep(0.2)
    gen.clear_buffer()  # during idle: nothing to end
    with caplog.at_level(logging.WARNING, logger="emostream.integrations.livekit"):
        await gen.push_audio(
            rtc.AudioFrame(data=b"\x00\x00" * 40, sample_rate=4000, num_channels=1, samples_per_channel=40)
        )
        await gen.push_audio(
            rtc.AudioFrame(data=b"", sample_rate=24000, num_channels=1, samples_per_channel=0)
        )
        await gen.push_audio(AudioSegmentEnd())  # without audio: ignored
        for f in tone_frames(6.0, 44100, channels=2, frame_ms=1000):  # a burst of 6 s, stereo
            await gen.push_audio(f)
        await gen.push_audio(AudioSegmentEnd())
    await asyncio.sleep(1.0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    lines = [r.getMessage() for r in caplog.records]
    assert any("4000 Hz is outside" in m for m in lines)
    assert any("empty frame" in m for m in lines)
    assert gen.stats.rejected_frames == 2
    assert got.ends() == [], "no segment end for the idle clear nor for an empty segment"
    assert 0.5 * FPS <= len(got.speech()) <= 1.5 * FPS, "the burst plays in real time, downmixed"
    await gen.aclose()  # a "disconnect" mid-turn: the session stops and frees its thread
    assert not session.worker_alive
    assert no_session_threads()


def test_options_must_match_the_session() -> None:
    session = new_session()
    try:
        opts = avatar_options(session)
        bad = type(opts)(opts.video_width * 2, opts.video_height, opts.video_fps, 24000, 1)
        with pytest.raises(ConfigError, match="video size"):
            EmostreamVideoGenerator(session, bad)
        with pytest.raises(ConfigError, match="audio_sample_rate"):
            avatar_options(session, audio_sample_rate=1000)
    finally:
        session.stop()


class StandInRoom(rtc.EventEmitter[str]):
    """What AvatarRunner uses of an ``rtc.Room`` besides its receiver: connection state and
    ``local_participant.publish_track`` (recorded)."""

    name = "test-room"

    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[str, rtc.TrackPublishOptions]] = []
        self.local_participant = self

    def isconnected(self) -> bool:
        return True

    async def publish_track(self, track: Any, options: rtc.TrackPublishOptions) -> Any:
        self.published.append((track.name, options))
        room = self

        class Publication:
            async def wait_for_subscription(self) -> None:
                return None

            track_name = track.name
            owner = room

        return Publication()


async def test_avatar_runner_wiring_playback_events() -> None:
    """The real AvatarRunner + AVSynchronizer around the generator: tracks are published on the
    first frame, a finished segment answers playback_finished(interrupted=False), a clear in
    the middle of one answers playback_finished(interrupted=True)."""
    session = new_session()
    gen = EmostreamVideoGenerator(session, avatar_options(session, 24000))
    audio_io = QueueAudioOutput(sample_rate=24000)
    finished: list[Any] = []
    audio_io.on("playback_finished", finished.append)
    room = StandInRoom()
    runner = AvatarRunner(room, audio_recv=audio_io, video_gen=gen, options=gen.options)  # type: ignore[arg-type]
    await runner.start()
    try:
        for f in tone_frames(0.6, 24000, frame_ms=20):
            await audio_io.capture_frame(f)
        audio_io.flush()
        deadline = time.monotonic() + 10
        while not finished and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert finished and finished[0].interrupted is False
        assert finished[0].playback_position == pytest.approx(0.6, abs=0.1)
        for f in tone_frames(3.0, 24000, frame_ms=20):
            await audio_io.capture_frame(f)
        await asyncio.sleep(0.8)
        audio_io.clear_buffer()
        deadline = time.monotonic() + 5
        while len(finished) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert len(finished) == 2 and finished[1].interrupted is True
        assert 0.2 < finished[1].playback_position < 2.0
        assert [n for n, _ in room.published] == ["avatar_audio", "avatar_video"]
        assert gen.stats.clears == 1 and gen.stats.video_frames_out > 0
    finally:
        await runner.aclose()
        await gen.aclose()
    assert no_session_threads()


class UnconnectedRoom(rtc.EventEmitter[str]):
    """An agent's room before it connects (what AvatarSession.start reads of it)."""

    name = "test-room"

    def __init__(self) -> None:
        super().__init__()
        self.local_participant = type("Local", (), {"identity": "agent-1"})()

    def isconnected(self) -> bool:
        return False


async def test_avatar_session_launches_the_worker_and_routes_audio() -> None:
    """The agent side without a server: ``start`` mints the avatar's token (kind agent, joining
    this room, publishing on behalf of the agent), calls the launcher with it, and points the
    agent's audio output at the avatar (DataStreamAudioOutput)."""
    import jwt
    from livekit.agents import AgentSession
    from livekit.agents.types import ATTRIBUTE_PUBLISH_ON_BEHALF
    from livekit.agents.voice.avatar import DataStreamAudioOutput

    from emostream.integrations.livekit import AvatarWorkerConfig, EmostreamAvatarSession

    launched: list[tuple[str, str]] = []

    async def launcher(url: str, token: str) -> None:
        launched.append((url, token))

    secret = "s" * 32
    avatar = EmostreamAvatarSession(
        livekit_url="ws://127.0.0.1:7880", api_key="key", api_secret=secret, launcher=launcher,
        config=AvatarWorkerConfig(audio_sample_rate=24000),
    )  # fmt: skip
    agent_session: AgentSession = AgentSession()
    room = UnconnectedRoom()
    await avatar.start(agent_session, room)  # type: ignore[arg-type]
    try:
        assert [u for u, _ in launched] == ["ws://127.0.0.1:7880"]
        claims = jwt.decode(launched[0][1], secret, algorithms=["HS256"])
        assert claims["sub"] == avatar.avatar_identity == "emostream-avatar"
        assert claims["kind"] == "agent"
        assert claims["video"]["roomJoin"] is True and claims["video"]["room"] == "test-room"
        assert claims["attributes"] == {ATTRIBUTE_PUBLISH_ON_BEHALF: "agent-1"}
        out = agent_session.output.audio
        assert isinstance(out, DataStreamAudioOutput) and out.sample_rate == 24000
    finally:
        await avatar.aclose()
    with pytest.raises(ConfigError, match="needs an engine"):
        EmostreamAvatarSession(livekit_url="ws://x", api_key="k", api_secret=secret)
