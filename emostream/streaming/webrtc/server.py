"""The aiohttp app: the page, ``POST /offer`` signalling, portraits, capacity and cleanup.

Routes:
- ``GET /``, ``GET /static/{file}``: the page (package data in emostream/streaming/web/).
- ``GET /config``: ``{"iceServers": [...], "emotions": [...], "maxSessions": N}`` for the page.
- ``POST /offer``: ``{"sdp", "type": "offer", "emotion"?, "intensity"?, "portrait"?}`` →
  ``{"sdp", "type": "answer", "id"}``; 503 ``{"error"}`` beyond ``max_sessions``; 400 for a
  bad body. One avatar session per peer connection (no trickle ICE: the answer carries all
  candidates).
- ``POST /portrait``: raw image bytes → ``{"portrait": id}`` or 400 with the reason.
- ``GET /health``: ``{"sessions": n, "max_sessions": N}``.

Every peer connection owns: its RTCPeerConnection, its session, the pump task reading the
session, the microphone reader task, the stats task. ``PeerSession.close()`` frees all of
them; it runs when the connection fails or closes (page closed, reloaded, ICE failed), when
the data channel closes, when ICE has not connected within ``connect_timeout_s``, and on
server shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from emostream.arkit import EMOTIONS, EmotionStyle
from emostream.errors import EmostreamError
from emostream.streaming.webrtc import control
from emostream.streaming.webrtc.codecs import VideoPolicy, apply_video_policy, prefer_codec
from emostream.streaming.webrtc.ice import (
    browser_ice_servers,
    enable_loopback_candidates,
    is_loopback_host,
    rtc_configuration,
)
from emostream.streaming.webrtc.portrait import MAX_UPLOAD_BYTES, PortraitStore
from emostream.streaming.webrtc.tracks import (
    DEFAULT_LEAD_S,
    AvatarAudioTrack,
    AvatarFeed,
    AvatarSession,
    AvatarVideoTrack,
    MediaClock,
    MicReceiver,
    session_frame_due,
)

log = logging.getLogger(__name__)

#: (portrait path or None, emotion) -> a new session. The CLI passes ``engine.new_session``.
SessionFactory = Callable[[Path | None, EmotionStyle], AvatarSession]
MAX_OFFER_BYTES = 256 * 1024
STATS_INTERVAL_S = 1.0
#: (pts, send time) pairs sent with each stats message.
RECENT_FRAMES = 25


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_sessions: int = 4
    ice_servers: tuple[str, ...] = ()
    fps: int = 25
    #: Seconds a new peer connection may take to connect before it is dropped.
    connect_timeout_s: float = 20.0
    #: Jitter margin between a session frame's arrival and its send time (see tracks).
    lead_s: float = DEFAULT_LEAD_S
    upload_dir: Path | None = None
    #: Side of the (square) avatar frames; sets the pinned video bitrate (codecs.py).
    frame_size: int | None = None


def web_root() -> resources.abc.Traversable:
    return resources.files("emostream.streaming") / "web"


@dataclass
class PeerSession:
    """Everything one browser connection owns."""

    id: str
    pc: RTCPeerConnection
    session: AvatarSession
    feed: AvatarFeed
    video: AvatarVideoTrack
    audio: AvatarAudioTrack
    created: float = field(default_factory=time.monotonic)
    mic: MicReceiver | None = None
    channel: RTCDataChannel | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    on_closed: Callable[[PeerSession], None] | None = None
    errors: list[str] = field(default_factory=list)
    _closer: asyncio.Task[None] | None = None

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=f"{self.id}:{name}")
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("peer %s: task %s failed: %r", self.id, task.get_name(), exc)
            self.errors.append(f"{task.get_name()}: {exc!r}")

    async def pump(self) -> None:
        """Session items → the tracks' feed (bounded: waits when the tracks are behind).
        If the session ends or fails by itself, the page is told and the peer is closed."""
        from emostream.engine.session import ArkitFrame, AudioFrame, VideoFrame

        try:
            async for item in self.session:
                self.last_item = time.monotonic()
                if isinstance(item, VideoFrame):
                    await self.feed.put_video(item.pts, item.rgb)
                elif isinstance(item, AudioFrame):
                    await self.feed.put_audio(item.pts, item.pcm, item.sample_rate)
                elif isinstance(item, ArkitFrame):
                    self.feed.start_clock(item.pts)
                    self.feed.last_motion = item.motion
            reason = "the avatar session ended"
        except EmostreamError as e:
            reason = f"the avatar session failed: {e}"
        except Exception as e:
            log.exception("peer %s: session failed", self.id)
            reason = f"the avatar session failed: {e!r}"
        if not self.closed.is_set():
            self.send({"type": "error", "message": reason})
            self._closer = asyncio.create_task(self.close())

    def stats(self) -> dict[str, Any]:
        s: dict[str, Any] = {
            "type": "stats",
            "id": self.id,
            "server_time_ms": time.time() * 1000.0,
            "video": self.video.stats.as_dict(),
            "audio": self.audio.stats.as_dict(),
            "fps": self.feed.fps,
        }
        if self.video.send_times:
            # The page matches these to its frames' RTP timestamps (frame → screen latency).
            recent = list(self.video.send_times)[-RECENT_FRAMES:]
            s["recent_frames"] = [[pts, round(sent * 1000.0, 2)] for pts, sent, _ in recent]
        latency = getattr(self.session, "latency", None)
        if latency is not None:
            s["pipeline_latency_ms"] = float(latency) * 1000.0
        sst = getattr(self.session, "stats", None)
        if sst is not None and hasattr(sst, "latency_summary"):
            s["audio_to_frame_ms"] = sst.latency_summary()
            s["dropped_frames"] = sst.dropped_frames
        motion = self.feed.last_motion
        if motion is not None:
            s["emotion"] = {"name": motion.emotion.name, "intensity": motion.emotion.intensity}
        if self.mic is not None:
            s["mic"] = {
                "frames": self.mic.frames,
                "seconds": round(self.mic.samples / 16000, 3),
                "dropped": self.mic.dropped,
                "level": round(self.mic.last_level, 4),
            }
        return s

    async def stats_loop(self) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL_S)
            self.send(self.stats())

    def send(self, msg: dict[str, Any]) -> None:
        ch = self.channel
        if ch is not None and ch.readyState == "open":
            ch.send(json.dumps(msg))

    def on_message(self, text: str | bytes) -> None:
        try:
            cmd = control.parse_message(text)
            if isinstance(cmd, control.SetEmotion):
                self.session.set_emotion(cmd.style.name, cmd.style.intensity)
            elif isinstance(cmd, control.SetStyle):
                self.session.set_style(cmd.reference)
            elif isinstance(cmd, control.Clear):
                self.session.clear()
            elif isinstance(cmd, control.Ping):
                self.send({"type": "pong", "t": cmd.t})
        except EmostreamError as e:
            self.send({"type": "error", "message": str(e)})

    async def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self.session.stop()
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.video.stop()
        self.audio.stop()
        await self.pc.close()
        if self.on_closed is not None:
            self.on_closed(self)
        log.info("peer %s closed", self.id)


class AvatarServer:
    """The app and its live peers. ``app`` is an aiohttp Application; ``peers`` the live ones."""

    def __init__(self, config: ServerConfig, session_factory: SessionFactory) -> None:
        self.config = config
        self.session_factory = session_factory
        self.peers: dict[str, PeerSession] = {}
        self._ids = itertools.count(1)
        self._pending = 0  # offers being answered (count against capacity)
        self._closing: set[asyncio.Task[None]] = set()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if config.upload_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="emostream-portraits-")
            upload = Path(self._tmp.name)
        else:
            upload = config.upload_dir
        self.portraits = PortraitStore(upload)
        if is_loopback_host(config.host):
            enable_loopback_candidates()
        if config.frame_size is not None:
            rate = apply_video_policy(VideoPolicy(config.frame_size, config.frame_size, config.fps))
            log.info("video: VP8 preferred, bitrate pinned at %d bit/s", rate)
        self.app = web.Application(client_max_size=MAX_UPLOAD_BYTES + 1024)
        self.app.add_routes(
            [
                web.get("/", self.index),
                web.get("/static/{name}", self.static),
                web.get("/config", self.page_config),
                web.get("/health", self.health),
                web.post("/offer", self.offer),
                web.post("/portrait", self.portrait),
            ]
        )
        self.app.on_shutdown.append(self._shutdown)

    # --- static -----------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.Response:
        return web.Response(text=(web_root() / "index.html").read_text("utf-8"), content_type="text/html")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        types = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}
        ext = name[name.rfind(".") :] if "." in name else ""
        f = web_root() / name
        if "/" in name or name.startswith(".") or ext not in types or not f.is_file():
            raise web.HTTPNotFound()
        return web.Response(text=f.read_text("utf-8"), content_type=types[ext])

    async def page_config(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "iceServers": browser_ice_servers(self.config.ice_servers),
                "emotions": list(EMOTIONS),
                "maxSessions": self.config.max_sessions,
            }
        )

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"sessions": len(self.peers), "max_sessions": self.config.max_sessions})

    # --- portraits ----------------------------------------------------------------------
    async def portrait(self, request: web.Request) -> web.Response:
        data = await request.read()
        name = request.headers.get("X-Filename", "upload")[:100]
        try:
            pid = await asyncio.get_running_loop().run_in_executor(None, self.portraits.add, data, name)
        except EmostreamError as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response({"portrait": pid})

    # --- signalling ---------------------------------------------------------------------
    async def offer(self, request: web.Request) -> web.Response:
        if len(self.peers) + self._pending >= self.config.max_sessions:
            n = self.config.max_sessions
            return web.json_response(
                {"error": f"Server busy: all {n} avatar sessions are in use; try again later."},
                status=503,
                headers={"Retry-After": "10"},
            )
        self._pending += 1
        try:
            return await self._answer(request)
        finally:
            self._pending -= 1

    async def _answer(self, request: web.Request) -> web.Response:
        try:
            body = await request.content.read(MAX_OFFER_BYTES + 1)
            if len(body) > MAX_OFFER_BYTES:
                raise ValueError("offer too large")
            params = json.loads(body)
            if not isinstance(params, dict) or params.get("type") != "offer":
                raise ValueError('expected {"sdp": ..., "type": "offer"}')
            sdp = params.get("sdp")
            if not isinstance(sdp, str) or not sdp.startswith("v=0"):
                raise ValueError("missing or malformed sdp")
            style = EmotionStyle(
                str(params.get("emotion", "neutral")).lower(), float(params.get("intensity", 1.0))
            )
            pid = params.get("portrait")
            portrait = self.portraits.path(str(pid)) if pid else None
        except (ValueError, TypeError) as e:
            return web.json_response({"error": f"bad offer: {e}"}, status=400)
        except EmostreamError as e:
            return web.json_response({"error": str(e)}, status=400)

        loop = asyncio.get_running_loop()
        try:
            session = await loop.run_in_executor(None, self.session_factory, portrait, style)
        except EmostreamError as e:
            return web.json_response({"error": str(e)}, status=400)

        pc = RTCPeerConnection(rtc_configuration(self.config.ice_servers))
        clock = MediaClock(self.config.lead_s)
        feed = AvatarFeed(clock, self.config.fps)
        peer = PeerSession(
            id=f"s{next(self._ids)}",
            pc=pc,
            session=session,
            feed=feed,
            video=AvatarVideoTrack(feed),
            audio=AvatarAudioTrack(feed),
            on_closed=self._forget,
        )
        self._wire(peer)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            pc.addTrack(peer.audio)
            pc.addTrack(peer.video)
            for t in pc.getTransceivers():
                if t.kind == "video":
                    prefer_codec(t)
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except Exception as e:  # aiortc raises ValueError/InternalError on SDP it rejects
            await peer.close()
            return web.json_response({"error": f"cannot negotiate: {e}"}, status=400)
        self.peers[peer.id] = peer
        peer.spawn(peer.pump(), "pump")
        peer.spawn(peer.stats_loop(), "stats")
        peer.spawn(self._connect_watchdog(peer), "watchdog")
        log.info("peer %s: answered (%d live)", peer.id, len(self.peers))
        local = pc.localDescription
        return web.json_response({"sdp": local.sdp, "type": local.type, "id": peer.id})

    def _forget(self, peer: PeerSession) -> None:
        self.peers.pop(peer.id, None)

    def _wire(self, peer: PeerSession) -> None:
        pc = peer.pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and peer.mic is None:
                peer.mic = MicReceiver(track, peer.session)
                peer.spawn(peer.mic.run(), "mic")

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            peer.channel = channel
            channel.on("message", peer.on_message)

            @channel.on("close")
            def on_close() -> None:
                self._close_soon(peer)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            log.info("peer %s: connection %s", peer.id, pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                self._close_soon(peer)

    def _close_soon(self, peer: PeerSession) -> None:
        if not peer.closed.is_set():
            task = asyncio.create_task(peer.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _connect_watchdog(self, peer: PeerSession) -> None:
        await asyncio.sleep(self.config.connect_timeout_s)
        if peer.pc.connectionState != "connected":
            log.warning(
                "peer %s: not connected after %.0f s; dropping it", peer.id, self.config.connect_timeout_s
            )
            self._close_soon(peer)

    async def close_all(self) -> None:
        await asyncio.gather(*(p.close() for p in list(self.peers.values())))
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def _shutdown(self, app: web.Application) -> None:
        await self.close_all()


async def serve(server: AvatarServer) -> None:
    """Run the app until cancelled (Ctrl-C)."""
    runner = web.AppRunner(server.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, server.config.host, server.config.port)
    await site.start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
