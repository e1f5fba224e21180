"""EmostreamVideoService in a real Pipecat pipeline, driven by Pipecat's own test utilities
(``pipecat.tests.utils.run_test``): TTS audio frames in, paced image + audio frames out.

The engine is the deterministic test double (tests/session_doubles.py: jawOpen follows the
audio energy of the frame itself, shown as the red channel), behind the real ``Session``, so
what a frame shows can be checked against the audio pushed with it. Timing is checked on the
stream clock (frame ``pts``), never against wall-clock targets; the one wall-clock check is
that no frame leaves before its due time, which pacing guarantees on any machine.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest

pytest.importorskip("pipecat", reason="needs the pipecat extra: pip install 'emostream[pipecat]'")

from pipecat.frames.frames import (
    CancelFrame,
    Frame,
    InterruptionFrame,
    OutputImageRawFrame,
    SpeechOutputAudioRawFrame,
    TextFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    UserStartedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.processors.frame_processor import FrameDirection
from pipecat.tests.utils import SleepFrame, run_test
from session_doubles import double_engine

from emostream.config import SAMPLE_RATE
from emostream.engine.session import SessionConfig
from emostream.integrations.pipecat import (
    AvatarServiceOptions,
    EmostreamEmotionFrame,
    EmostreamVideoService,
)

pytestmark = pytest.mark.timeout(120)

FPS = 25
SPF = SAMPLE_RATE // FPS  # 640 samples per frame
FRAME_S = 1 / FPS
SPEECH_RMS = 0.01


def tts_tone(seconds: float, rate: int = 24000, channels: int = 1, chunk_s: float = 0.05) -> list[Frame]:
    """A 220 Hz tone as TTS audio frames of ``chunk_s`` (a TTS sends them as a burst)."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype(np.int16)
    step = int(chunk_s * rate)
    out: list[Frame] = []
    for a in range(0, n, step):
        block = np.repeat(pcm[a : a + step, None], channels, axis=1)
        out.append(TTSAudioRawFrame(audio=block.tobytes(), sample_rate=rate, num_channels=channels))
    return out


class Arrivals(BaseObserver):
    """Wall time (monotonic) at which the service pushed each frame."""

    def __init__(self, source: EmostreamVideoService) -> None:
        super().__init__()
        self.source = source
        self.times: dict[int, float] = {}

    async def on_push_frame(self, data: FramePushed) -> None:
        if data.source is self.source:
            self.times.setdefault(data.frame.id, time.monotonic())


@dataclass
class Out:
    """The service's output, split by kind: frame index -> frame."""

    audio: dict[int, SpeechOutputAudioRawFrame]
    video: dict[int, OutputImageRawFrame]
    order: list[tuple[str, int]]

    @classmethod
    def of(cls, frames: list[Frame]) -> Out:
        audio: dict[int, SpeechOutputAudioRawFrame] = {}
        video: dict[int, OutputImageRawFrame] = {}
        order: list[tuple[str, int]] = []
        for f in frames:
            if isinstance(f, SpeechOutputAudioRawFrame):
                assert f.pts is not None
                k = round(f.pts * FPS / 1e9)
                audio[k] = f
                order.append(("a", k))
            elif isinstance(f, OutputImageRawFrame):
                assert f.pts is not None
                k = round(f.pts * FPS / 1e9)
                video[k] = f
                order.append(("v", k))
        return cls(audio, video, order)

    def rms(self, k: int) -> float:
        x = np.frombuffer(self.audio[k].audio, np.int16).astype(np.float64) / 32768
        return float(np.sqrt(np.mean(x * x)))

    def jaw(self, k: int) -> int:
        f = self.video[k]
        return int(np.frombuffer(f.image, np.uint8).reshape(f.size[1], f.size[0], 3)[0, 0, 0])

    def blue(self, k: int) -> int:
        f = self.video[k]
        return int(np.frombuffer(f.image, np.uint8).reshape(f.size[1], f.size[0], 3)[0, 0, 2])

    def speech(self) -> list[int]:
        return [k for k in sorted(self.audio) if self.rms(k) > SPEECH_RMS]


def service(**session_kw: float) -> EmostreamVideoService:
    # Wide margins: on a loaded shared machine renders are then never skipped.
    config = SessionConfig(compute_margin_s=0.08, jitter_margin_s=0.04, **session_kw)
    return EmostreamVideoService(double_engine(fps=FPS), AvatarServiceOptions(session=config))


def no_session_threads() -> bool:
    return not any(t.name == "emostream-session" and t.is_alive() for t in threading.enumerate())


async def test_tts_audio_in_paced_aligned_frames_out() -> None:
    svc = service()
    arrivals = Arrivals(svc)
    speech = tts_tone(1.0)
    sent = [SleepFrame(0.4), TTSStartedFrame(), *speech, TTSStoppedFrame(), SleepFrame(2.0)]
    down, _ = await run_test(svc, frames_to_send=sent, observers=[arrivals])
    out = Out.of(list(down))

    # Frame count: one audio frame per stream frame, contiguous from pts 0; every video frame
    # has its audio frame; video frames missing only where the session counted a drop.
    ks = sorted(out.audio)
    assert ks == list(range(len(ks))), "audio frames are contiguous in stream time"
    assert all(len(out.audio[k].audio) == 2 * SPF for k in ks)
    assert set(out.video) <= set(out.audio)
    assert svc.stats.video_frames_out + svc.stats.audio_frames_out == len(out.audio) + len(out.video)
    assert len(out.audio) >= FPS * (0.4 + 1.0), "idle + speech frames all came out"

    # Idle frames flow before the speech and after it.
    spoken = out.speech()
    assert len(spoken) >= FPS - 1 and spoken == list(range(spoken[0], spoken[-1] + 1))
    assert spoken[0] >= 5, "idle frames while nothing was said"
    assert max(ks) - spoken[-1] >= 10, "idle frames after the turn"
    assert svc.stats.segments_ended == 1

    # The audio is the TTS audio (24 kHz tone resampled to 16 kHz), delayed, not altered.
    assert np.median([out.rms(k) for k in spoken[1:-1]]) == pytest.approx(0.3 / np.sqrt(2), rel=0.05)

    # A/V alignment: the frame that shows the open mouth carries the sound (within one frame).
    opened = [k for k in sorted(out.video) if out.jaw(k) > 20]
    assert opened, "the mouth opened"
    assert abs(opened[0] - spoken[0]) <= 1 and abs(opened[-1] - spoken[-1]) <= 1
    for kind, k in out.order:
        if kind == "v":
            assert out.order.index(("a", k)) < out.order.index(("v", k)), "audio pushed before its image"

    # Timing: frames leave at t0 + latency + pts / fps, never before.
    session_t0 = min(arrivals.times[out.audio[k].id] - k * FRAME_S for k in ks)
    late = [arrivals.times[out.audio[k].id] - (session_t0 + k * FRAME_S) for k in ks]
    assert min(late) >= -0.005
    assert np.median(late) < 0.1  # paced, not bunched up at the end (generous for a loaded CPU)


async def test_interruption_stops_speech_within_one_frame() -> None:
    svc = service()
    sent = [*tts_tone(4.0), TTSStoppedFrame(), SleepFrame(1.5), InterruptionFrame(), SleepFrame(0.6)]
    down, _ = await run_test(svc, frames_to_send=sent)
    out = Out.of(list(down))
    assert any(isinstance(f, InterruptionFrame) for f in down), "the interruption is passed on"
    assert len(svc.stats.interrupts_s) == 1
    t_int = svc.stats.interrupts_s[0]
    spoken = out.speech()
    assert spoken and spoken[0] * FRAME_S < t_int, "speech was playing when the interruption came"
    last = spoken[-1] * FRAME_S
    assert last <= t_int + FRAME_S, f"speech frame at {last:.3f} s after the interruption at {t_int:.3f} s"
    after = [k for k in out.audio if k * FRAME_S > t_int + FRAME_S]
    assert len(after) >= 5, "idle frames keep flowing after the barge-in"
    assert all(out.jaw(k) == 0 for k in out.video if k * FRAME_S > t_int + 2 * FRAME_S), "mouth closed"


async def test_user_started_speaking_clears_and_other_frames_pass_untouched() -> None:
    svc = service()
    text = TextFrame(text="hello")
    user = UserStartedSpeakingFrame()
    sent = [*tts_tone(3.0), SleepFrame(0.8), user, text, SleepFrame(0.5)]
    down, _ = await run_test(svc, frames_to_send=sent)
    assert text in down and user in down, "the very same frame objects come out"
    assert not any(isinstance(f, TTSAudioRawFrame) for f in down), "TTS audio is replaced, not duplicated"
    out = Out.of(list(down))
    t_int = svc.stats.interrupts_s[0]
    assert out.speech() and out.speech()[-1] * FRAME_S <= t_int + FRAME_S

    upstream = TextFrame(text="up")
    _, up = await run_test(
        service(), frames_to_send=[upstream], frames_to_send_direction=FrameDirection.UPSTREAM
    )
    assert upstream in up


async def test_emotion_by_frame_and_method() -> None:
    svc = service()
    down, _ = await run_test(
        svc, frames_to_send=[SleepFrame(0.3), EmostreamEmotionFrame("happy", 1.0), SleepFrame(0.8)]
    )
    out = Out.of(list(down))
    ks = sorted(out.video)
    assert out.blue(ks[0]) == 0 and out.blue(ks[-1]) == 255, "the smile blends in"
    with pytest.raises(Exception, match="unknown emotion"):
        svc.set_emotion("grumpy")


async def test_bad_input_is_logged_and_dropped(caplog: pytest.LogCaptureFixture) -> None:
    svc = service()
    bad = [
        TTSAudioRawFrame(audio=b"\x00\x01" * 100, sample_rate=4000, num_channels=1),
        TTSAudioRawFrame(audio=b"", sample_rate=24000, num_channels=1),
        TTSAudioRawFrame(audio=b"\x00\x01\x02", sample_rate=24000, num_channels=1),
    ]
    sent = [
        SleepFrame(0.2),
        InterruptionFrame(),
        *bad,
        *tts_tone(0.6, rate=48000, channels=2),
        SleepFrame(1.2),
    ]
    with caplog.at_level(logging.WARNING, logger="emostream.integrations.pipecat"):
        down, _ = await run_test(svc, frames_to_send=sent)
    lines = [r.getMessage() for r in caplog.records]
    assert any("4000 Hz is outside" in m for m in lines)
    assert any("empty frame" in m for m in lines)
    assert any("not a whole number of s16 samples" in m for m in lines)
    assert svc.stats.rejected_frames == 3
    out = Out.of(list(down))
    # The stereo 48 kHz speech (after a clear during idle) is played, downmixed.
    assert len(out.speech()) >= 0.6 * FPS - 1
    assert no_session_threads() or _wait_threads()


def _wait_threads(timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if no_session_threads():
            return True
        time.sleep(0.05)
    return False


async def test_burst_then_cancel_frees_the_session(caplog: pytest.LogCaptureFixture) -> None:
    """Several seconds of TTS audio at once: accepted, played in real time (not all at once);
    a cancel mid-turn stops the session, logs it and joins its worker thread."""
    svc = service()
    sent = [*tts_tone(8.0, chunk_s=0.5), SleepFrame(0.8), CancelFrame()]
    with caplog.at_level(logging.INFO, logger="emostream.integrations.pipecat"):
        down, _ = await run_test(svc, frames_to_send=sent, send_end_frame=False)
    out = Out.of(list(down))
    assert len(out.speech()) < 3 * FPS, "an 8 s burst is paced, not flushed out at once"
    assert svc.session is None
    assert any("session stopped (pipeline cancelled)" in r.getMessage() for r in caplog.records)
    assert _wait_threads()


async def test_audio_out_at_the_transport_rate() -> None:
    """With ``audio_out_sample_rate`` every frame carries exactly 1/fps of audio at that rate
    (what the output transport plays without resampling it in blocks)."""
    config = SessionConfig(compute_margin_s=0.08, jitter_margin_s=0.04)
    options = AvatarServiceOptions(session=config, audio_out_sample_rate=48000)
    svc = EmostreamVideoService(double_engine(fps=FPS), options)
    down, _ = await run_test(svc, frames_to_send=[*tts_tone(0.8), TTSStoppedFrame(), SleepFrame(1.5)])
    audio = [f for f in down if isinstance(f, SpeechOutputAudioRawFrame)]
    assert {(f.sample_rate, len(f.audio)) for f in audio} == {(48000, 2 * 48000 // FPS)}
    x = np.concatenate([np.frombuffer(f.audio, np.int16) for f in audio]).astype(np.float64) / 32768
    loud = np.sqrt(np.convolve(x * x, np.ones(1920) / 1920, mode="valid"))
    assert np.median(loud[loud > SPEECH_RMS]) == pytest.approx(0.3 / np.sqrt(2), rel=0.05)
    with pytest.raises(Exception, match="audio_out_sample_rate"):
        EmostreamVideoService(double_engine(fps=FPS), AvatarServiceOptions(audio_out_sample_rate=1000))


async def test_wait_for_output_starts_the_stream_when_the_transport_sends() -> None:
    """With ``wait_for_output`` nothing is made (no idle frames to pile up in a transport that
    is not sending yet) until ``output_ready()``; then the stream starts at pts 0."""
    config = SessionConfig(compute_margin_s=0.08, jitter_margin_s=0.04)
    svc = EmostreamVideoService(
        double_engine(fps=FPS), AvatarServiceOptions(session=config, wait_for_output=True)
    )

    async def ready_later() -> None:
        await asyncio.sleep(0.8)
        svc.output_ready()

    task = asyncio.create_task(ready_later())
    down, _ = await run_test(svc, frames_to_send=[SleepFrame(1.6)])
    await task
    out = Out.of(list(down))
    assert sorted(out.audio) == list(range(len(out.audio)))
    assert 0.3 * FPS <= len(out.audio) <= 1.2 * FPS, "about 0.8 s of stream, not 1.6 s"
