"""The agent's server without a browser: a real aiortc peer connects to ``BotServer`` (Pipecat
SmallWebRTC, piper TTS, EmostreamVideoService over the real Session + analytic renderer with the
test motion), asks for a line, and leaves in the middle of it. Also the HTTP API's bad input."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pipecat", reason="needs the pipecat extra: pip install 'emostream[pipecat]'")

import aiohttp
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from browser.analysis import envelope_correlations

from emostream.integrations.pipecat_bot import BotConfig, BotServer

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def energy() -> Any:
    from browser.stub_engine import energy_engine

    return energy_engine(size=256)


@pytest.fixture
async def served(energy: Any) -> AsyncIterator[tuple[BotServer, str]]:
    server = BotServer(energy, BotConfig(max_sessions=1))
    runner = web.AppRunner(server.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        await server.close_all()
        await runner.cleanup()


class Peer:
    """A receive-only aiortc peer like the page: audio then video, RMS of what it hears."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.addTransceiver("video", direction="recvonly")
        self.heard: list[float] = []
        self.frames = 0
        self.tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)

    def _on_track(self, track: Any) -> None:
        async def pull() -> None:
            while True:
                try:
                    frame = await track.recv()
                except Exception:
                    return
                self._count(track.kind, frame)

        self.tasks.append(asyncio.create_task(pull()))

    def _count(self, kind: str, frame: Any) -> None:
        if kind == "audio":
            x = frame.to_ndarray().astype(np.float64) / 32768
            self.heard.append(float(np.sqrt(np.mean(x * x))))
        else:
            self.frames += 1

    async def connect(self, http: aiohttp.ClientSession, base: str) -> tuple[int, dict[str, Any] | str]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = {"sdp": self.pc.localDescription.sdp, "type": self.pc.localDescription.type}
        async with http.post(f"{base}/api/offer", data=json.dumps(offer)) as r:
            if r.status != 200:
                return r.status, await r.text()
            answer = await r.json()
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        return 200, answer

    async def close(self) -> None:
        await self.pc.close()
        for t in self.tasks:
            t.cancel()


async def post(http: aiohttp.ClientSession, url: str, body: object) -> tuple[int, str]:
    data = body if isinstance(body, str) else json.dumps(body)
    async with http.post(url, data=data) as r:
        return r.status, await r.text()


async def test_client_leaving_mid_turn_frees_the_bot(
    served: tuple[BotServer, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, base = served
    peer = Peer()
    async with aiohttp.ClientSession() as http:
        status, answer = await peer.connect(http, base)
        assert status == 200 and isinstance(answer, dict)
        pc_id = answer["pc_id"]
        for _ in range(200):
            if peer.frames >= 10:
                break
            await asyncio.sleep(0.05)
        assert peer.frames >= 10, "idle video flows before anything is said"
        line = "Hello there. This is a long line, so that the client can leave in the middle of it."
        assert (await post(http, f"{base}/api/say", {"pc_id": pc_id, "text": line}))[0] == 200
        bot = server.bots[pc_id]
        for _ in range(600):
            if max(peer.heard[-20:], default=0.0) > 0.02:
                break
            await asyncio.sleep(0.05)
        assert max(peer.heard, default=0.0) > 0.02, "the line is heard"
        assert bot.avatar.in_turn
        # Over capacity while the first client holds the only slot: 503 with the reason.
        busy = Peer()
        status, text = await busy.connect(http, base)
        await busy.close()
        assert status == 503 and "all 1 agent sessions are in use" in str(text)
        with caplog.at_level(logging.WARNING, logger="emostream.integrations.pipecat_bot"):
            await peer.close()  # leaves mid-turn
            for _ in range(200):
                if not server.bots:
                    break
                await asyncio.sleep(0.05)
    assert not server.bots, "the bot ended with its client"
    assert any("disconnected mid-turn" in r.getMessage() for r in caplog.records)
    assert bot.avatar.session is None
    for _ in range(100):
        if not any(t.name == "emostream-session" and t.is_alive() for t in threading.enumerate()):
            break
        await asyncio.sleep(0.05)
    assert not any(t.name == "emostream-session" and t.is_alive() for t in threading.enumerate())


async def test_http_api_bad_input(served: tuple[BotServer, str]) -> None:
    _, base = served
    async with aiohttp.ClientSession() as http:
        assert (await post(http, f"{base}/api/say", "not json"))[0] == 400
        assert (await post(http, f"{base}/api/say", {"text": "hi"}))[0] == 400
        status, text = await post(http, f"{base}/api/say", {"pc_id": "nobody", "text": "hi"})
        assert (status, text) == (404, "no such agent session (closed or never opened)")
        assert (await post(http, f"{base}/api/say", {"pc_id": "nobody", "text": "  "}))[0] == 400
        assert (await post(http, f"{base}/api/say", {"pc_id": "x", "text": "a" * 2001}))[0] == 400
        assert (await post(http, f"{base}/api/emotion", {"pc_id": "x", "emotion": "grumpy"}))[0] == 400
        assert (await post(http, f"{base}/api/interrupt", {"pc_id": "nobody"}))[0] == 404
        assert (await post(http, f"{base}/api/offer", {"sdp": "garbage"}))[0] == 400
        async with http.get(f"{base}/") as r:
            assert r.status == 200 and "emostream agent" in await r.text()
        async with http.get(f"{base}/api/config") as r:
            assert "happy" in (await r.json())["emotions"]


def _clock(fps: int = 25) -> tuple[Any, float]:
    """A SendClock whose stream time 0 was presented now: (clock, that time)."""
    from emostream.integrations.pipecat_bot import SendClock

    t0 = time.monotonic()
    return SendClock(fps, lambda ns: t0 + ns / 1e9), t0


async def _sent_at(track: Any, n: int) -> list[tuple[float, Any]]:
    out = []
    for _ in range(n):
        frame = await track.recv()
        out.append((time.monotonic(), frame))
    return out


async def test_audio_track_sends_each_chunk_at_its_place_in_the_stream() -> None:
    """Each 10 ms goes out at its place in the stream (the audio written before it) on the
    SendClock, less AUDIO_LEAD_S: a write that reaches the track late does not delay the audio
    after it (audio is contiguous: before, every late write delayed all later sound for good)."""
    from emostream.integrations.pipecat_bot import AUDIO_LEAD_S, StreamClockedAudioTrack

    track = StreamClockedAudioTrack(48000, auto_silence=False)
    track.clock, t0 = _clock()
    started: list[bool] = []
    track.on_start = lambda: started.append(True)
    ten_ms = b"\x01\x00" * 480
    done = track.add_audio_bytes(ten_ms * 4)  # 40 ms at once, as Pipecat writes it
    assert done.done(), "the writer is never held back"
    first = await _sent_at(track, 4)
    await asyncio.sleep(max(0.0, t0 + 0.07 - time.monotonic()))
    track.add_audio_bytes(ten_ms * 4)  # the next frame's audio, 30 ms after its presentation
    late = await _sent_at(track, 4)
    assert started == [True]
    sent = np.array([t for t, _ in first + late]) - t0
    due = track.clock.hold_s - AUDIO_LEAD_S + 0.01 * np.arange(8)
    assert np.all(sent >= due - 0.002), (sent, due)
    assert np.all(sent <= due + 0.015), f"each chunk at its place, the late write too: {sent - due}"
    assert [f.pts for _, f in first + late] == [480 * k for k in range(8)], "RTP time is the place"


def test_piper_synthesizes_on_one_thread() -> None:
    """The bundled TTS leaves the other cores to the avatar and a browser beside the bot
    (TTS_THREADS: onnxruntime's default, a thread per core, takes them all at each line)."""
    from emostream.integrations.pipecat_bot import TTS_THREADS, piper_tts

    options = piper_tts()._voice.session.get_session_options()  # type: ignore[attr-defined]
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (TTS_THREADS, 1)


async def test_audio_track_keeps_rtp_time_contiguous_when_a_send_is_late() -> None:
    """A busy event loop sends a chunk late: its RTP time stays its place in the stream. (Stamped
    with the send time, the lateness moved all later sound and left a hole in RTP time that the
    browser concealed, and its jitter buffer grew mid-turn.)"""
    from emostream.integrations.pipecat_bot import StreamClockedAudioTrack

    track = StreamClockedAudioTrack(48000, auto_silence=False)
    track.clock, _ = _clock()
    track.add_audio_bytes(b"\x01\x00" * 480 * 6)
    frames = [await track.recv() for _ in range(3)]
    time.sleep(0.03)  # the loop is held up: the next chunks go out 10-30 ms after their time
    frames += [await track.recv() for _ in range(3)]
    assert [f.pts for f in frames] == [480 * k for k in range(6)]


async def test_audio_track_drops_what_is_too_late_and_resyncs_after_upstream_drops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from emostream.integrations.pipecat_bot import (
        MAX_AUDIO_LAG_S,
        RESYNC_WRITES,
        StreamClockedAudioTrack,
    )

    track = StreamClockedAudioTrack(48000, auto_silence=False)
    track.clock, t0 = _clock()
    ten_ms = b"\x01\x00" * 480
    await asyncio.sleep(track.clock.hold_s + MAX_AUDIO_LAG_S + 0.2)  # the stream stalls...
    track.add_audio_bytes(ten_ms * 30)  # ...then a backlog arrives at once
    await track.recv()
    assert track.dropped_s >= 0.1, "the audio that came too late was dropped"
    # Pipecat dropped a frame's audio upstream (an interruption): every write now comes a frame
    # after the place the count gives it; after RESYNC_WRITES of them the count moves on.
    track2 = StreamClockedAudioTrack(48000, auto_silence=False)
    track2.clock, t0 = _clock()
    with caplog.at_level(logging.INFO, logger="emostream.integrations.pipecat_bot"):
        for k in range(RESYNC_WRITES + 1):
            await asyncio.sleep(max(0.0, t0 + 0.04 * (k + 1) + 0.002 - time.monotonic()))
            track2.add_audio_bytes(ten_ms * 4)
    assert any("resynced" in r.getMessage() for r in caplog.records)
    _, due = track2._chunk_queue[-4]
    assert due == pytest.approx(t0 + 0.04 * (RESYNC_WRITES + 1) + track2.clock.hold_s, abs=0.02)
    # A peer that stops reading: at most MAX_QUEUED_S waits.
    for _ in range(40):
        track2.add_audio_bytes(ten_ms * 4)
    assert len(track2._chunk_queue) <= 100


async def test_video_track_sends_the_newest_frame_at_its_time() -> None:
    from pipecat.frames.frames import OutputImageRawFrame

    from emostream.integrations.pipecat_bot import WallClockVideoTrack

    track = WallClockVideoTrack(width=4, height=2)
    for v in (10, 20, 30):
        image = OutputImageRawFrame(image=bytes([v]) * 24, size=(4, 2), format="RGB")
        image.pts = 40_000_000 * (v // 10)
        track.add_video_frame(image)
    track.clock, t0 = _clock()
    frame = await track.recv()
    assert int(frame.to_ndarray(format="rgb24")[0, 0, 0]) == 30 and track.skipped == 2
    assert frame.pts == 0 and frame.time_base.denominator == 90000
    assert time.monotonic() - t0 >= 0.12 + track.clock.hold_s - 0.002, "sent at its place + hold"


class SyncPeer(Peer):
    """A ``Peer`` that maps what it receives to the sender's clock the way a browser's lip sync
    does: each stream's RTP time -> sender wall time through the latest RTCP sender report
    (NTP time, RTP time) of that stream. It keeps, on that clock, the mouth region's darkness of
    each video frame and the RMS of each 10 ms of audio."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, crop: tuple[float, float, float, float]) -> None:
        from aiortc.rtcrtpreceiver import RTCRtpReceiver
        from aiortc.rtp import RtcpSrPacket

        super().__init__()
        self.crop = crop
        self.reports: dict[str, list[tuple[int, int]]] = {}  # kind -> [(NTP, RTP) of each report]
        self.receivers: dict[str, Any] = {}
        self.video: list[tuple[float, float]] = []
        self.audio: list[tuple[float, float]] = []
        handle = RTCRtpReceiver._handle_rtcp_packet
        reports, receivers = self.reports, self.receivers

        async def note_report(receiver: Any, packet: Any) -> None:
            if isinstance(packet, RtcpSrPacket) and receiver.track is not None:
                info = packet.sender_info
                reports.setdefault(receiver.track.kind, []).append((info.ntp_timestamp, info.rtp_timestamp))
                receivers[receiver.track.kind] = receiver
            await handle(receiver, packet)

        monkeypatch.setattr(RTCRtpReceiver, "_handle_rtcp_packet", note_report)

    def sender_times(self, kind: str, pts: np.ndarray, rate: int) -> np.ndarray:
        """Sender wall times of RTP times ``pts`` (as aiortc's receiver counts them: from the
        stream's first RTP time), through the median offset of all the stream's reports (a
        browser fits a line through its last reports too)."""
        origin = self.receivers[kind]._RTCRtpReceiver__timestamp_mapper._origin
        ntp = np.array([n for n, _ in self.reports[kind]], np.float64) / 2**32
        rtp = np.array([(r - origin + (1 << 31)) % (1 << 32) - (1 << 31) for _, r in self.reports[kind]])
        return pts / rate + float(np.median(ntp - rtp / rate))

    def _count(self, kind: str, frame: Any) -> None:
        super()._count(kind, frame)
        t = float(frame.pts)  # RTP time from the stream's first, see sender_times
        if kind == "video":
            rgb = frame.to_ndarray(format="rgb24")
            h, w = rgb.shape[:2]
            x0, y0, x1, y1 = self.crop
            self.video.append((t, -float(rgb[int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)].mean())))
        else:
            x = frame.to_ndarray().astype(np.float64).reshape(-1, len(frame.layout.channels))
            n = frame.sample_rate // 100
            for i in range(len(x) // n):
                block = x[i * n : (i + 1) * n] / 32768
                self.audio.append((t + i * n, float(np.sqrt(np.mean(block * block)))))

    def offset_ms(self, max_ms: float = 200.0) -> tuple[float, float]:
        """(lag, r): the shift of the audio's envelope (mean RMS over [t + lag, t + lag + 40 ms)
        at each frame's time t, both on the sender's clock as mapped) that best matches the
        mouth; lag > 0: the sound plays after its frame. Ties (the 10 ms blocks make the peak a
        plateau) resolve to the plateau's middle."""
        vt, dark = np.array(self.video).T
        at, rms = np.array(sorted(self.audio)).T
        vt, at = self.sender_times("video", vt, 90000), self.sender_times("audio", at, 48000)
        lags = np.arange(-max_ms, max_ms + 0.1, 1.0) / 1000.0
        rs = envelope_correlations(vt, dark, at, rms, lags, 0.04)
        top = np.flatnonzero(rs >= rs.max() - 1e-9)
        return 1000.0 * float(lags[top].mean()), float(rs.max())


async def test_sound_is_stamped_with_its_frame(
    served: tuple[BotServer, str], energy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the bot sends is in sync as a browser's lip sync reads it (RTP time -> sender clock
    through RTCP sender reports): the receiver can only align what the sender's clocks say, so
    sound stamped before its frame plays before it (issue 19)."""
    from test_webrtc_browser import _mouth_crop

    server, base = served
    peer = SyncPeer(monkeypatch, _mouth_crop(energy))
    async with aiohttp.ClientSession() as http:
        status, answer = await peer.connect(http, base)
        assert status == 200 and isinstance(answer, dict)
        line = "One, two, three. The quick brown fox jumps over the lazy dog, and then it rests."
        assert (await post(http, f"{base}/api/say", {"pc_id": answer["pc_id"], "text": line}))[0] == 200
        for _ in range(600):
            if len(peer.heard) > 300 and max(peer.heard[-100:]) < 0.005 and max(peer.heard) > 0.02:
                break  # spoken and quiet again for a second
            await asyncio.sleep(0.05)
        session = server.bots[answer["pc_id"]].avatar.session
        dropped = session.stats.dropped_frames if session is not None else 0
        await peer.close()
    assert set(peer.reports) == {"audio", "video"}, "both streams sent RTCP sender reports"
    lag, r = peer.offset_ms()
    print(f"A/V on the sender's clocks: sound {lag:+.1f} ms after its frame (r {r:.2f}, {dropped} dropped)")
    assert r > 0.8, "the mouth follows the sound"
    if dropped <= 5:  # judged when the machine kept up (see test_agent_browser)
        assert abs(lag) <= 15.0, f"sound and frame stamped together: {lag:+.1f} ms"
