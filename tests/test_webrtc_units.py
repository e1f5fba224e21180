"""WebRTC building blocks on their own: control messages, ICE config, codec policy, portrait
checks, the tracks' feed and pacing."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aioice.ice
import cv2
import numpy as np
import pytest
from aiortc.codecs import vpx
from aiortc.mediastreams import MediaStreamTrack

from emostream.arkit import MOTION_DIM
from emostream.errors import ConfigError, ImageError, InputError
from emostream.streaming.webrtc import codecs, control, ice, portrait
from emostream.streaming.webrtc.tracks import (
    AUDIO_RATE,
    AUDIO_SAMPLES,
    MAX_AUDIO_AHEAD_S,
    MAX_PUT_WAIT_S,
    MAX_START_WAIT_S,
    OPUS_LOOKAHEAD,
    VIDEO_CLOCK,
    AvatarAudioTrack,
    AvatarFeed,
    AvatarVideoTrack,
    MediaClock,
)


# --- control -------------------------------------------------------------------------------
def test_control_messages() -> None:
    m = control.parse_message(json.dumps({"type": "emotion", "name": "Happy", "intensity": 0.4}))
    assert isinstance(m, control.SetEmotion) and m.style.name == "happy" and m.style.intensity == 0.4
    ref = np.zeros((5, MOTION_DIM)).tolist()
    s = control.parse_message(json.dumps({"type": "style", "frames": ref}))
    assert isinstance(s, control.SetStyle) and s.reference.shape == (5, MOTION_DIM)
    assert control.parse_message('{"type": "ping", "t": 3}') == control.Ping(3.0)
    assert isinstance(control.parse_message('{"type": "clear"}'), control.Clear)


@pytest.mark.parametrize(
    ("text", "error", "needle"),
    [
        ("nope", InputError, "not JSON"),
        ("[1]", InputError, 'with a "type"'),
        ('{"type": "dance"}', InputError, "unknown message type 'dance'"),
        ('{"type": "emotion", "name": "bored"}', ConfigError, "unknown emotion 'bored'"),
        ('{"type": "emotion", "name": "sad", "intensity": 2}', ConfigError, "intensity must be in [0, 1]"),
        ('{"type": "emotion", "name": "sad", "intensity": "x"}', ConfigError, "must be a number"),
        ('{"type": "style", "frames": [[1, 2]]}', InputError, "shape [T, 55], got [1, 2]"),
        ('{"type": "style", "frames": "abc"}', InputError, "list of 55-number rows"),
        ('{"type": "ping"}', InputError, 'numeric "t"'),
    ],
)
def test_control_rejects(text: str, error: type[Exception], needle: str) -> None:
    with pytest.raises(error) as e:
        control.parse_message(text)
    assert needle in str(e.value)


# --- ICE -----------------------------------------------------------------------------------
def test_no_stun_by_default_and_urls() -> None:
    assert ice.rtc_configuration().iceServers == []
    s = ice.parse_ice_server("stun:stun.example.org:3478")
    assert s.urls == "stun:stun.example.org:3478" and s.username is None
    t = ice.parse_ice_server("turn:alice:s3cret@turn.example.org:3478?transport=tcp")
    assert (t.urls, t.username, t.credential) == (
        "turn:turn.example.org:3478?transport=tcp",
        "alice",
        "s3cret",
    )
    assert ice.browser_ice_servers(["turn:u:p@h:1"]) == [
        {"urls": "turn:h:1", "username": "u", "credential": "p"}
    ]
    for bad, needle in [
        ("http://x", "expected stun"),
        ("turn:host:3478", "needs a username"),
        ("stun:h:99999", "Port out of range"),
    ]:
        with pytest.raises(ConfigError, match=needle):
            ice.parse_ice_server(bad)


def test_loopback_candidates() -> None:
    assert ice.is_loopback_host("127.0.0.1") and ice.is_loopback_host("localhost")
    assert not ice.is_loopback_host("0.0.0.0")
    ice.enable_loopback_candidates()
    ice.enable_loopback_candidates()  # idempotent
    assert ice.loopback_candidates_enabled()
    addrs = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)
    assert addrs.count("127.0.0.1") == 1


# --- codecs --------------------------------------------------------------------------------
def test_video_policy_pins_bitrate() -> None:
    saved = codecs.encoder_bitrates()
    try:
        rate = codecs.apply_video_policy(codecs.VideoPolicy(256, 256, 25))
        assert rate == int(0.1 * 256 * 256 * 25)
        assert codecs.encoder_bitrates() == [(rate, rate, rate)] * 2
        enc = vpx.Vp8Encoder()
        enc.target_bitrate = 5_000_000  # a REMB estimate: clamped to the pinned rate
        assert enc.target_bitrate == rate
        assert codecs.VideoPolicy(512, 512, 25, bitrate=800_000).target_bitrate() == 800_000
        with pytest.raises(ConfigError, match="video bitrate"):
            codecs.VideoPolicy(256, 256, 25, bitrate=10).target_bitrate()
    finally:
        codecs.set_encoder_bitrates(*saved[0])


# --- portraits -----------------------------------------------------------------------------
def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "empty upload"),
        (b"GIF89a" + b"\0" * 100, "not a PNG, JPEG or WebP"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 50, "cannot decode the PNG data"),
        (_png(np.zeros((64, 200, 3), np.uint8)), "image too small (200x64"),
        (b"\xff\xd8\xff" + b"\0" * (portrait.MAX_UPLOAD_BYTES + 1), "file too large"),
    ],
)
def test_portrait_rejects(data: bytes, needle: str) -> None:
    with pytest.raises(ImageError) as e:
        portrait.decode_portrait(data, "me.png")
    assert str(e.value).startswith("me.png: ") and needle in str(e.value)


def test_portrait_without_face(tmp_path: Path) -> None:
    store = portrait.PortraitStore(tmp_path)
    with pytest.raises(ImageError, match="no face found"):
        store.add(_png(np.full((256, 256, 3), 128, np.uint8)), "wall.png")
    with pytest.raises(ImageError, match="unknown portrait id"):
        store.path("0123456789abcdef")


def test_portrait_with_face_is_stored(tmp_path: Path) -> None:
    from skimage import data as skdata

    img = skdata.astronaut()  # RGB, public domain
    store = portrait.PortraitStore(tmp_path)
    pid = store.add(_png(np.ascontiguousarray(img[:, :, ::-1])), "astronaut.png")
    assert store.path(pid).is_file()


# --- feed and tracks -----------------------------------------------------------------------
async def test_tracks_share_t0_and_pace() -> None:
    clock = MediaClock(lead_s=0.02)
    feed = AvatarFeed(clock, fps=25)
    video, audio = AvatarVideoTrack(feed), AvatarAudioTrack(feed)
    frames = [np.full((8, 8, 3), k, np.uint8) for k in range(10)]
    for k in range(10):  # a session that is ahead: 10 frames with their audio (a ramp)
        pcm = (np.arange(640 * k, 640 * (k + 1)) / 10000.0).astype(np.float32)
        await feed.put_audio(640 * k, pcm, 16000)
        await feed.put_video(k, frames[k])
    t_start = time.monotonic()

    async def take(track: MediaStreamTrack, n: int) -> list[Any]:
        return [await track.recv() for _ in range(n)]

    got_v, got_a = await asyncio.gather(take(video, 6), take(audio, 8))
    elapsed = time.monotonic() - t_start
    assert [f.pts for f in got_v] == [k * VIDEO_CLOCK // 25 for k in range(6)]
    assert [int(f.to_ndarray()[0, 0, 0]) for f in got_v] == list(range(6))
    assert [f.pts for f in got_a] == [m * AUDIO_SAMPLES for m in range(8)]
    assert elapsed > 0.18  # 6 frames at 25 fps are paced (>= 5 periods), not sent at once
    out = np.concatenate([f.to_ndarray().reshape(-1) for f in got_a]) / 32767.0
    # 48 kHz ramp from the 16 kHz ramp: sample 3*i ≈ i / 10000 (resampler ripple aside),
    # fed OPUS_LOOKAHEAD samples ahead so the decoded audio lands on its RTP timestamps.
    ramp = (np.arange(len(out)) + OPUS_LOOKAHEAD) / 3 / 10000.0
    assert np.abs(out[200:-200] - ramp[200:-200]).max() < 0.01
    assert video.stats.repeated == 0 and audio.stats.repeated == 0


async def test_video_skips_late_ticks_and_repeats_missing() -> None:
    clock = MediaClock(lead_s=0.0)
    feed = AvatarFeed(clock, fps=25)
    video = AvatarVideoTrack(feed)
    await feed.put_video(0, np.zeros((4, 4, 3), np.uint8))
    f0 = await video.recv()
    await asyncio.sleep(0.2)  # the sender stalls for 5 frame periods
    for k in range(1, 10):
        await feed.put_video(k, np.full((4, 4, 3), k, np.uint8))
    f1 = await video.recv()
    assert f0.pts is not None and f1.pts is not None
    assert f0.pts == 0 and f1.pts >= 5 * 3600, "late ticks are skipped, not sent late"
    assert video.stats.skipped >= 4 and video.stats.late_frames >= 4
    assert int(f1.to_ndarray()[0, 0, 0]) == f1.pts // 3600
    while feed.frames:
        await video.recv()
    last = await video.recv()  # the session is late: the last frame repeats, time goes on
    assert video.stats.repeated == 1 and last.pts == 10 * 3600


async def test_audio_gap_is_silence_and_feed_is_bounded() -> None:
    clock = MediaClock(lead_s=0.1)
    feed = AvatarFeed(clock, fps=25)
    await feed.put_video(0, np.zeros((4, 4, 3), np.uint8))
    await feed.put_audio(0, np.full(640, 0.5, np.float32), 16000)
    await feed.put_audio(1280, np.full(640, 0.5, np.float32), 16000)  # frame 1's audio missing
    audio = AvatarAudioTrack(feed)
    pcm = np.concatenate([(await audio.recv()).to_ndarray().reshape(-1) for _ in range(6)])
    shift = OPUS_LOOKAHEAD  # frame 0: [0, 1920) - shift, gap: [1920, 3840) - shift, frame 2 after
    assert pcm[100 : 1900 - shift].min() > 10000
    assert np.abs(pcm[1950 - shift : 3800 - shift]).max() < 200
    assert pcm[3900 - shift : 5700 - shift].min() > 10000
    assert AUDIO_RATE == 48000
    # Back-pressure: a session far ahead of the tracks waits instead of growing the buffer.
    blocked = asyncio.create_task(feed.put_audio(1920, np.zeros(16000 * 3, np.float32), 16000))
    more = asyncio.create_task(feed.put_audio(1920 + 48000, np.zeros(640, np.float32), 16000))
    await asyncio.sleep(0.1)
    assert blocked.done() and not more.done()
    # ...but never for good (issue 18, item 1): when the tracks do not consume, the oldest
    # buffered audio is dropped after MAX_PUT_WAIT_S and the producer goes on.
    await asyncio.wait_for(more, MAX_PUT_WAIT_S + 1.0)
    assert feed.overflow_audio_samples > 0
    assert len(feed.audio) <= MAX_AUDIO_AHEAD_S * AUDIO_RATE + 3 * 640  # + the chunk put


async def test_tracks_start_without_any_video_from_the_session() -> None:
    """Issue 18, item 1: an overloaded session drops every frame as late and yields only audio
    (or nothing). The clock starts from the first item of any kind, or by the tracks after
    MAX_START_WAIT_S; the video repeats a black frame and the audio flows."""
    # Only audio from the session: the clock starts from it, the video track sends at once.
    feed = AvatarFeed(MediaClock(lead_s=0.0), fps=25)
    await feed.put_audio(0, np.full(640 * 5, 0.25, np.float32), 16000)
    assert feed.clock.started
    video, audio = AvatarVideoTrack(feed), AvatarAudioTrack(feed)
    v = await asyncio.wait_for(video.recv(), 0.5)
    a = await asyncio.wait_for(audio.recv(), 0.5)
    assert v.pts == 0 and video.stats.repeated == 1 and a.pts is not None and a.pts <= 2 * AUDIO_SAMPLES
    assert np.abs(a.to_ndarray()).max() > 5000, "the session's audio plays without any video"
    # Nothing at all from the session: the tracks start the clock themselves.
    idle = AvatarFeed(MediaClock(lead_s=0.0), fps=25)
    t = time.monotonic()
    frames = [await AvatarVideoTrack(idle).recv() for _ in range(1)]
    assert idle.clock.started and time.monotonic() - t < MAX_START_WAIT_S + 0.5
    assert frames[0].width == 16


# --- CLI -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--ice-server", "http://x"], "bad --ice-server 'http://x'"),
        (["--image", "/nonexistent/me.png"], "/nonexistent/me.png: portrait image not found"),
    ],
)
def test_serve_rejects_bad_options(args: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    from emostream.cli import main

    with pytest.raises(SystemExit) as e:
        main(["serve", *args])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("emostream: error: ") and needle in err and "\n" not in err


# --- capacity (--max-sessions auto) --------------------------------------------------------
def test_capacity_follows_the_measured_per_frame_cost() -> None:
    from session_doubles import DoubleRenderer, double_engine

    from emostream.streaming.webrtc.capacity import calibrate, sessions_for

    assert sessions_for(0.012, 0.002, cores=2, fps=25) == 2  # the 2-core reference machine at 256²
    assert sessions_for(0.004, 0.001, cores=8, fps=25) == 32
    assert sessions_for(0.5, 0.0, cores=2, fps=25) == 1, "never below one session"

    class BusyRenderer(DoubleRenderer):  # burns CPU (calibration counts CPU time, not sleep)
        def render(self, motion: np.ndarray) -> np.ndarray:
            end = time.thread_time() + 0.01 * len(motion)
            while time.thread_time() < end:
                pass
            return super().render(motion)

    fast = calibrate(double_engine())
    slow_engine = double_engine()
    slow_engine.renderer_factory = lambda portrait: BusyRenderer()
    slow = calibrate(slow_engine)
    assert slow.frame_ms >= 10.0 > fast.frame_ms
    assert 1 <= slow.sessions < fast.sessions
    assert slow.describe().startswith(f"{slow.sessions} sessions (calibrated: ")
