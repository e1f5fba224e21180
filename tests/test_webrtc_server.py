"""The WebRTC server with an in-process aiortc client (no browser): media both ways, control,
capacity, disconnect cleanup, loopback ICE."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import av
import numpy as np
import pytest
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack
from browser.fakes import SyncPatternSession

from emostream.arkit import EmotionStyle
from emostream.streaming.webrtc.server import AvatarServer, ServerConfig

pytestmark = pytest.mark.timeout(60)


@dataclass
class Running:
    server: AvatarServer
    url: str
    sessions: list[SyncPatternSession] = field(default_factory=list)


async def _start(max_sessions: int = 2, **kw: object) -> tuple[Running, web.AppRunner]:
    sessions: list[SyncPatternSession] = []

    def factory(portrait: Path | None, style: EmotionStyle) -> SyncPatternSession:
        s = SyncPatternSession(size=64)
        s.set_emotion(style.name, style.intensity)
        sessions.append(s)
        return s

    server = AvatarServer(ServerConfig(max_sessions=max_sessions, **kw), factory)  # type: ignore[arg-type]
    runner = web.AppRunner(server.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return Running(server, f"http://127.0.0.1:{port}", sessions), runner


class Client:
    """A minimal WebRTC client: sends a 440 Hz tone as its microphone, records what it gets."""

    def __init__(self, with_mic: bool = True) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        if with_mic:
            self.pc.addTransceiver(AudioStreamTrack(), direction="sendrecv")
        else:
            self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.addTransceiver("video", direction="recvonly")
        self.channel = self.pc.createDataChannel("control")
        self.messages: list[dict] = []
        self.channel.on("message", lambda m: self.messages.append(json.loads(m)))
        self.video: list[tuple[float, int, np.ndarray]] = []
        self.audio: list[tuple[float, int, int]] = []
        self._readers: list[asyncio.Task[None]] = []
        self.pc.on("track", lambda t: self._readers.append(asyncio.create_task(self._read(t))))

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                f = await track.recv()
            except MediaStreamError:
                return
            assert f.pts is not None
            if isinstance(f, av.VideoFrame):
                self.video.append((time.monotonic(), f.pts, f.to_ndarray(format="rgb24")))
            elif isinstance(f, av.AudioFrame):
                self.audio.append((time.monotonic(), f.pts, f.samples))

    async def connect(self, url: str, **extra: object) -> tuple[int, dict]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        body = {"sdp": self.pc.localDescription.sdp, "type": "offer", **extra}
        async with aiohttp.ClientSession() as http, http.post(f"{url}/offer", json=body) as r:
            answer = await r.json()
        if r.status == 200:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        return r.status, answer

    async def close(self) -> None:
        await self.pc.close()
        for t in self._readers:
            t.cancel()


def _first_video_codec(sdp: str) -> str:
    lines = sdp.splitlines()
    m = next(line for line in lines if line.startswith("m=video"))
    pt = m.split()[3]
    rtpmap = next(line for line in lines if line.startswith(f"a=rtpmap:{pt} "))
    return rtpmap.split()[1].split("/")[0]


async def _until(cond: Callable[[], object], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    r, runner = await _start()
    yield r
    await r.server.close_all()
    await runner.cleanup()


async def test_media_both_ways_and_control(running: Running) -> None:
    client = Client()
    status, answer = await client.connect(running.url, emotion="happy", intensity=0.5)
    assert status == 200 and answer["type"] == "answer"
    assert "a=candidate" in answer["sdp"]
    assert " 127.0.0.1 " in answer["sdp"], "a loopback host candidate for same-host peers"
    assert _first_video_codec(answer["sdp"]) == "VP8", "VP8 is negotiated first (codecs.py)"
    await _until(lambda: len(client.video) >= 50 and client.channel.readyState == "open")
    client.channel.send(json.dumps({"type": "emotion", "name": "sad", "intensity": 0.25}))
    client.channel.send(json.dumps({"type": "ping", "t": 12.5}))
    client.channel.send(json.dumps({"type": "emotion", "name": "bored"}))
    await _until(lambda: any(m["type"] == "stats" for m in client.messages) and len(client.messages) >= 3)
    session = running.sessions[0]
    assert session.emotions[0] == ("happy", 0.5) and ("sad", 0.25) in session.emotions
    assert {"type": "pong", "t": 12.5} in client.messages
    errors = [m for m in client.messages if m["type"] == "error"]
    assert errors and "unknown emotion 'bored'" in errors[0]["message"]
    stats = next(m for m in client.messages if m["type"] == "stats")
    assert stats["video"]["sent"] > 0 and stats["mic"]["frames"] > 0

    # Video: the 90 kHz clock at 25 fps: every step whole frames, nearly all exactly one (a
    # loaded machine may drop a late frame); the sync pattern's white frames once a second.
    steps = np.diff(np.array([p for _, p, _ in client.video]))
    assert (steps > 0).all() and (steps % 3600 == 0).all()
    assert (steps == 3600).mean() >= 0.9, f"frames dropped: {sorted(set(steps.tolist()))}"
    luma = np.array([img.mean() for _, _, img in client.video])
    assert (luma > 180).sum() >= 1 and (luma < 80).sum() > 40
    # Audio: 20 ms packets of 48 kHz; the microphone reached the session at 16 kHz.
    assert client.audio and all(n == 960 for _, _, n in client.audio)
    assert session.pushed_samples > 16000 * 1 and session.pushed_rates == {16000}
    # Pacing: frames arrive at 25 fps, not in bursts.
    t = np.array([x[0] for x in client.video[10:]])
    rate = (len(t) - 1) / (t[-1] - t[0])
    assert rate < 30, "paced at 25 fps, never bursting ahead"
    await client.close()


async def test_client_without_microphone_gets_idle_avatar(running: Running) -> None:
    client = Client(with_mic=False)
    status, _ = await client.connect(running.url)
    assert status == 200
    await _until(lambda: len(client.video) >= 10 and len(client.audio) >= 10)
    assert running.sessions[0].pushed_samples == 0
    await client.close()


async def test_over_capacity_gets_503() -> None:
    r, runner = await _start(max_sessions=1)
    try:
        first = Client()
        assert (await first.connect(r.url))[0] == 200
        second = Client()
        status, body = await second.connect(r.url)
        assert status == 503
        assert body["error"] == "Server busy: all 1 avatar sessions are in use; try again later."
        await second.close()
        await _until(lambda: len(first.video) > 5)
        await first.close()
        await _until(lambda: not r.server.peers)
        third = Client()  # capacity frees when a peer leaves
        assert (await third.connect(r.url))[0] == 200
        await third.close()
    finally:
        await r.server.close_all()
        await runner.cleanup()


async def test_disconnect_mid_stream_frees_everything(running: Running) -> None:
    client = Client()
    await client.connect(running.url)
    await _until(lambda: len(client.video) >= 20)
    peer = next(iter(running.server.peers.values()))
    tasks = set(peer.tasks)
    assert {t.get_name().split(":")[1] for t in tasks} >= {"pump", "stats", "mic", "watchdog"}
    await client.close()  # the page goes away mid-stream
    await _until(lambda: not running.server.peers, timeout=15)
    assert running.sessions[0].stopped
    assert all(t.done() for t in tasks)
    assert peer.pc.connectionState == "closed"
    assert peer.video.readyState == "ended" and peer.audio.readyState == "ended"


async def test_unconnected_peer_is_dropped_after_timeout() -> None:
    r, runner = await _start(connect_timeout_s=1.0)
    try:
        client = Client()
        await client.pc.setLocalDescription(await client.pc.createOffer())
        body = {"sdp": client.pc.localDescription.sdp, "type": "offer"}
        async with aiohttp.ClientSession() as http, http.post(f"{r.url}/offer", json=body) as resp:
            assert resp.status == 200  # ...but the client never applies the answer: ICE fails
        assert len(r.server.peers) == 1
        await _until(lambda: not r.server.peers, timeout=10)
        assert r.sessions[0].stopped
        await client.close()
    finally:
        await runner.cleanup()


async def test_bad_offers_are_400(running: Running) -> None:
    async with aiohttp.ClientSession() as http:
        for body, needle in [
            (b"not json", "bad offer"),
            (json.dumps({"sdp": "v=0", "type": "answer"}).encode(), "expected"),
            (json.dumps({"sdp": "x", "type": "offer"}).encode(), "malformed sdp"),
            (json.dumps({"sdp": "v=0\r\n", "type": "offer", "emotion": "bored"}).encode(), "unknown emotion"),
            (
                json.dumps({"sdp": "v=0\r\n", "type": "offer", "portrait": "../etc"}).encode(),
                "bad portrait id",
            ),
        ]:
            async with http.post(f"{running.url}/offer", data=body) as r:
                assert r.status == 400
                assert needle in (await r.json())["error"]
    assert not running.server.peers


async def test_page_and_config_are_served(running: Running) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{running.url}/") as r:
            html = await r.text()
            assert r.status == 200 and '<video id="avatar"' in html
            assert "http" not in html.replace("http-equiv", ""), "no external resources"
        for name in ("app.js", "style.css"):
            async with http.get(f"{running.url}/static/{name}") as r:
                assert r.status == 200
        async with http.get(f"{running.url}/static/..%2Fserver.py") as r:
            assert r.status == 404
        async with http.get(f"{running.url}/config") as r:
            cfg = await r.json()
            assert cfg["iceServers"] == [] and "happy" in cfg["emotions"]


def _can_unshare_net() -> bool:
    import shutil
    import subprocess

    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_unshare_net(), reason="needs unshare -n (root / user namespaces)")
def test_loopback_only_network_namespace() -> None:
    """In a network namespace with only `lo` (containers, CI sandboxes) aioice alone offers no
    candidate at all; with the server's loopback candidate the media test still passes."""
    import subprocess
    import sys

    cmd = (
        f"ip link set lo up && {sys.executable} -m pytest -q -p no:cacheprovider "
        "tests/test_webrtc_server.py -k test_media_both_ways_and_control"
    )
    proc = subprocess.run(["unshare", "-n", "sh", "-c", cmd], capture_output=True, text=True, timeout=55)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout
