"""The agent's server without a browser: a real aiortc peer connects to ``BotServer`` (Pipecat
SmallWebRTC, piper TTS, EmostreamVideoService over the real Session + analytic renderer with the
test motion), asks for a line, and leaves in the middle of it. Also the HTTP API's bad input."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pipecat", reason="needs the pipecat extra: pip install 'emostream[pipecat]'")

import itertools

import aiohttp
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

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
                if track.kind == "audio":
                    x = frame.to_ndarray().astype(np.float64) / 32768
                    self.heard.append(float(np.sqrt(np.mean(x * x))))
                else:
                    self.frames += 1

        self.tasks.append(asyncio.create_task(pull()))

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


async def test_audio_track_sends_in_time_and_drops_what_is_too_late() -> None:
    """The bot's output audio track: each 10 ms sent when due on the stream's clock (started by
    its first chunk), stamped with the send time; audio more than MAX_AUDIO_LAG_S late dropped."""
    import time

    from emostream.integrations.pipecat_bot import MAX_AUDIO_LAG_S, StreamClockedAudioTrack

    track = StreamClockedAudioTrack(48000, auto_silence=False)
    started: list[bool] = []
    track.on_start = lambda: started.append(True)
    ten_ms = b"\x01\x00" * 480
    track.add_audio_bytes(ten_ms * 4)  # 40 ms at once, as Pipecat writes it
    t0 = time.monotonic()
    frames = [await track.recv() for _ in range(4)]
    assert started == [True]
    assert time.monotonic() - t0 >= 0.025, "paced: 40 ms of audio goes out over ~30 ms"
    pts = [f.pts for f in frames]
    assert pts[0] == 0 and all(b - a >= 480 for a, b in itertools.pairwise(pts))
    await asyncio.sleep(MAX_AUDIO_LAG_S + 0.15)  # the stream stalls...
    track.add_audio_bytes(ten_ms * 30)  # ...then a backlog arrives at once
    late = await track.recv()
    assert track.dropped_s >= 0.1, "the audio that came too late was dropped"
    assert late.pts >= 48000 * (MAX_AUDIO_LAG_S + 0.15), "RTP time follows the send time"
    assert len(track._chunk_queue) < 30


async def test_video_track_sends_the_newest_frame() -> None:
    from pipecat.frames.frames import OutputImageRawFrame

    from emostream.integrations.pipecat_bot import WallClockVideoTrack

    track = WallClockVideoTrack(width=4, height=2)
    for v in (10, 20, 30):
        track.add_video_frame(OutputImageRawFrame(image=bytes([v]) * 24, size=(4, 2), format="RGB"))
    frame = await track.recv()
    assert int(frame.to_ndarray(format="rgb24")[0, 0, 0]) == 30 and track.skipped == 2
    assert frame.pts == 0 and frame.time_base.denominator == 90000
