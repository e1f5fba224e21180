"""The aiohttp app: the page, ``POST /offer`` signalling, portraits, capacity and cleanup.

Routes:
- ``GET /``, ``GET /static/{file}``: the page (package data in emostream/streaming/web/).
- ``GET /config``: ``{"iceServers": [...], "emotions": [...], "maxSessions": N}`` for the page.
- ``POST /offer``: ``{"sdp", "type": "offer", "emotion"?, "intensity"?, "portrait"?}`` →
  ``{"sdp", "type": "answer", "id"}``; 503 ``{"error"}`` beyond ``max_sessions``; 400 for a
  bad body (offer.py). One avatar session per peer connection (no trickle ICE: the answer
  carries all candidates).
- ``POST /portrait``: raw image bytes → ``{"portrait": id}`` or 400 with the reason.
- ``GET /health``: ``{"sessions": n, "max_sessions": N}``.

``/offer`` and ``/portrait`` are guarded (guard.py), in this order: a foreign Origin → 403, a
missing or wrong bearer token (when one is set) → 401, a client over its rate → 429.

Every peer connection owns: its RTCPeerConnection, its session, the pump task reading the
session, the microphone reader task, the stats task and the watchdog. ``PeerSession.close()``
frees all of them, and logs why; it runs when the connection fails or closes (page closed,
reloaded, ICE failed), when the data channel closes, when ICE has not connected within
``connect_timeout_s``, when the peer has sent no packet for ``peer_timeout_s`` (a killed
client: aiortc's ICE consent check alone takes 30 s), when the session has produced nothing
for ``idle_timeout_s``, and on server shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from emostream.arkit import EMOTIONS, EmotionStyle
from emostream.engine.session import ArkitFrame, AudioFrame, VideoFrame
from emostream.errors import EmostreamError, InputError
from emostream.streaming.heap import HeapKeeper, freeze_loaded_objects
from emostream.streaming.webrtc import control, guard
from emostream.streaming.webrtc.codecs import VideoPolicy, apply_video_policy, prefer_codec
from emostream.streaming.webrtc.ice import (
    browser_ice_servers,
    enable_loopback_candidates,
    is_loopback_host,
    rtc_configuration,
)
from emostream.streaming.webrtc.liveness import PEER_TIMEOUT_S, WATCH_INTERVAL_S, SilenceWatch
from emostream.streaming.webrtc.offer import MAX_OFFER_BYTES, Offer, check_sdp, parse_offer
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
    #: Seconds a new peer connection may take to connect before it is dropped (ICE over
    #: loopback or a LAN takes well under 1 s, through TURN a few seconds).
    connect_timeout_s: float = 10.0
    #: Jitter margin between a session frame's arrival and its send time (see tracks).
    lead_s: float = DEFAULT_LEAD_S
    upload_dir: Path | None = None
    #: Side of the (square) avatar frames; sets the pinned video bitrate (codecs.py).
    frame_size: int | None = None
    #: A connected peer that sends no packet (RTP, RTCP, data) for this long is dropped.
    peer_timeout_s: float = PEER_TIMEOUT_S
    #: A session that yields nothing for this long is closed.
    idle_timeout_s: float = 5.0
    #: Origins allowed besides the server's own ("*": any).
    allow_origins: tuple[str, ...] = ()
    #: Bearer token required on /offer and /portrait (None: none).
    token: str | None = None
    rate_limit: guard.RateLimit = field(default_factory=guard.RateLimit)


class OfferRejected(Exception):
    """An offer the server cannot answer because of what the client sent (HTTP 400)."""


def busy_message(max_sessions: int) -> str:
    return f"Server busy: all {max_sessions} avatar sessions are in use; try again later."


def busy_response(max_sessions: int) -> web.Response:
    """The 503 answer beyond capacity (the Ray front answers the same)."""
    return web.json_response({"error": busy_message(max_sessions)}, status=503, headers={"Retry-After": "10"})


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
    #: Monotonic time of the session's latest item.
    last_item: float = field(default_factory=time.monotonic)
    #: Why the peer was closed (logged once).
    reason: str = ""
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
            self._closer = asyncio.create_task(self.close(reason))

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

    async def close(self, reason: str = "closed") -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self.reason = reason
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
        log.info("peer %s closed: %s", self.id, reason)


class AvatarServer:
    """The app and its live peers. ``app`` is an aiohttp Application; ``peers`` the live ones."""

    def __init__(
        self, config: ServerConfig, session_factory: SessionFactory, *, id_prefix: str = "s"
    ) -> None:
        self.config = config
        #: Peer ids are ``id_prefix`` + a counter (a Ray session host adds its own prefix).
        self.id_prefix = id_prefix
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
        self.limiter = guard.RateLimiter(config.rate_limit)
        #: Refused requests by reason (for the soak benchmark and /health).
        self.refused: dict[str, int] = {}
        self.heap = HeapKeeper()
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
        last = self.heap.last
        reclaim = None if last is None else {"objects": last.objects, "collect_ms": round(last.collect_ms, 1)}
        return web.json_response(
            {
                "sessions": len(self.peers),
                "max_sessions": self.config.max_sessions,
                "refused": self.refused,
                "last_reclaim": reclaim,
                "reclaim_pending": self.heap.busy,
            }
        )

    # --- guards -------------------------------------------------------------------------
    def _refuse(self, reason: str, status: int, message: str, **headers: str) -> web.Response:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        return web.json_response({"error": message}, status=status, headers=headers or None)

    def _guard(self, request: web.Request) -> web.Response | None:
        """403 for a foreign Origin, 401 without the token, 429 over the client's rate."""
        origin = request.headers.get("Origin")
        own = f"{request.scheme}://{request.host}"
        if not guard.origin_allowed(origin, own, self.config.allow_origins):
            log.warning("refused a request from origin %r", origin)
            return self._refuse(
                "origin",
                403,
                f"origin {origin!r} is not allowed (the server allows {own} and --allow-origin)",
            )
        if not guard.token_ok(request.headers.get("Authorization"), self.config.token):
            return self._refuse(
                "token", 401, "missing or wrong bearer token", **{"WWW-Authenticate": "Bearer"}
            )
        wait = self.limiter.allow(request.remote or "?")
        if wait > 0:
            return self._refuse(
                "rate", 429, "too many requests from this client; slow down",
                **{"Retry-After": guard.retry_after(wait)},
            )  # fmt: skip
        return None

    # --- portraits ----------------------------------------------------------------------
    async def portrait(self, request: web.Request) -> web.Response:
        refused = self._guard(request)
        if refused is not None:
            return refused
        data = await request.read()
        name = request.headers.get("X-Filename", "upload")[:100]
        try:
            pid = await asyncio.get_running_loop().run_in_executor(None, self.portraits.add, data, name)
        except EmostreamError as e:
            return self._refuse("bad-portrait", 400, str(e))
        await self.portrait_added(pid)
        return web.json_response({"portrait": pid})

    async def portrait_added(self, pid: str) -> None:
        """Called once an upload is stored (a subclass shares it further; here nothing)."""

    # --- signalling ---------------------------------------------------------------------
    async def offer(self, request: web.Request) -> web.Response:
        refused = self._guard(request)
        if refused is not None:
            return refused
        if len(self.peers) + self._pending >= self.config.max_sessions:
            return self._refuse("busy", 503, busy_message(self.config.max_sessions), **{"Retry-After": "10"})
        self._pending += 1
        try:
            return await self._answer(request)
        finally:
            self._pending -= 1

    async def _answer(self, request: web.Request) -> web.Response:
        try:
            offer = parse_offer(await read_limited(request, MAX_OFFER_BYTES))
            portrait = self.portraits.path(offer.portrait) if offer.portrait else None
            answer = await self.answer_offer(offer, portrait)
        except (EmostreamError, OfferRejected) as e:
            return self._refuse("bad-offer", 400, str(e))
        return web.json_response(answer)

    async def answer_offer(self, offer: Offer, portrait: Path | None) -> dict[str, str]:
        """Open a peer for a parsed offer: ``{"sdp", "type": "answer", "id"}``. Raises
        OfferRejected (the client's fault: a bad portrait or SDP); the SDP is checked before a
        session is built. Capacity is the caller's."""
        try:
            check_sdp(offer.sdp)
        except EmostreamError as e:
            raise OfferRejected(str(e)) from e
        loop = asyncio.get_running_loop()
        try:
            session = await loop.run_in_executor(None, self.session_factory, portrait, offer.style)
        except EmostreamError as e:
            raise OfferRejected(str(e)) from e

        pc = RTCPeerConnection(rtc_configuration(self.config.ice_servers))
        clock = MediaClock(self.config.lead_s)
        fps = self.config.fps
        feed = AvatarFeed(clock, fps, lambda pts: session_frame_due(session, pts, fps))
        peer = PeerSession(
            id=f"{self.id_prefix}{next(self._ids)}",
            pc=pc,
            session=session,
            feed=feed,
            video=AvatarVideoTrack(feed),
            audio=AvatarAudioTrack(feed),
            on_closed=self._forget,
        )
        self._wire(peer)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
            pc.addTrack(peer.audio)
            pc.addTrack(peer.video)
            for t in pc.getTransceivers():
                if t.kind == "video":
                    prefer_codec(t)
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except Exception as e:  # aiortc raises ValueError/InternalError on SDP it rejects
            await peer.close(f"cannot negotiate: {e}")
            raise OfferRejected(f"bad offer: cannot negotiate: {e}") from e
        self.peers[peer.id] = peer
        peer.spawn(peer.pump(), "pump")
        peer.spawn(peer.stats_loop(), "stats")
        peer.spawn(self._watchdog(peer), "watchdog")
        log.info("peer %s: answered (%d live)", peer.id, len(self.peers))
        local = pc.localDescription
        return {"sdp": local.sdp, "type": local.type, "id": peer.id}

    def _forget(self, peer: PeerSession) -> None:
        self.peers.pop(peer.id, None)
        # once the closing coroutines let go of it, collect its cycles and give the pages back
        self.heap.session_ended()

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
                self._close_soon(peer, "the data channel closed")

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            log.info("peer %s: connection %s", peer.id, pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                self._close_soon(peer, f"the connection {pc.connectionState}")

    def _close_soon(self, peer: PeerSession, reason: str) -> None:
        if not peer.closed.is_set():
            task = asyncio.create_task(peer.close(reason))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def _drop_peer(self, peer: PeerSession, reason: str) -> None:
        log.warning("peer %s: %s; dropping it", peer.id, reason)
        peer.send({"type": "error", "message": f"session closed: {reason}"})
        self._close_soon(peer, reason)

    async def _watchdog(self, peer: PeerSession) -> None:
        """Drops a peer that does not connect in time, goes silent (killed client) or whose
        session produces nothing."""
        cfg = self.config
        deadline = time.monotonic() + cfg.connect_timeout_s
        while peer.pc.connectionState != "connected":
            if time.monotonic() > deadline:
                return self._drop_peer(peer, f"not connected after {cfg.connect_timeout_s:.0f} s")
            await asyncio.sleep(WATCH_INTERVAL_S)
        watch = SilenceWatch(peer.pc)
        peer.last_item = max(peer.last_item, time.monotonic())
        while not peer.closed.is_set():
            await asyncio.sleep(WATCH_INTERVAL_S)
            now = time.monotonic()
            if watch.silent_for() > cfg.peer_timeout_s:
                return self._drop_peer(peer, f"no packets from the peer for {cfg.peer_timeout_s:g} s")
            if now - peer.last_item > cfg.idle_timeout_s:
                reason = f"the avatar session produced nothing for {cfg.idle_timeout_s:g} s"
                return self._drop_peer(peer, reason)

    async def close_all(self) -> None:
        await asyncio.gather(*(p.close() for p in list(self.peers.values())))
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def _shutdown(self, app: web.Application) -> None:
        await self.close_all()


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The body, or its first ``limit + 1`` bytes when it is longer (``content.read(n)`` returns
    whatever has arrived, up to n: a partial body must not pass for a whole one)."""
    chunks: list[bytes] = []
    n = 0
    while n <= limit:
        chunk = await request.content.read(limit + 1 - n)
        if not chunk:
            break
        chunks.append(chunk)
        n += len(chunk)
    return b"".join(chunks)


def check_listen(host: str, port: int) -> None:
    """InputError unless ``host:port`` can be listened on now: a malformed or unknown host, a
    port out of range, a port in use, an address not on this machine. The real bind happens
    in ``serve``; this check runs before the models load so a bad address fails at once."""
    if not 0 <= port <= 65535:
        raise InputError(f"bad --port {port}: must be 0..65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError, ValueError) as e:
        raise InputError(f"bad --host {host!r}: {getattr(e, 'strerror', None) or e}") from e
    for family, kind, proto, _, addr in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
            try:
                sock.bind(addr)
            except OSError as e:
                raise InputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e


def prestarted_executor(workers: int | None = None) -> ThreadPoolExecutor:
    """A thread pool whose threads all exist from the start. The event loop's default pool runs
    aiortc's encoders, session set-up and uploads; it starts threads lazily, when tasks overlap,
    so a server's thread count would creep up to the pool's bound under load. Started at once, the
    count is fixed, and a growing count means a real leak."""
    n = workers or min(32, (os.cpu_count() or 1) + 4)  # ThreadPoolExecutor's own default
    pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="emostream-pool")
    barrier = threading.Barrier(n)
    for f in [pool.submit(barrier.wait) for _ in range(n)]:  # each waits: every submit adds a thread
        f.result()
    return pool


async def serve(server: AvatarServer, on_ready: Callable[[], None] | None = None) -> None:
    """Run the app until cancelled (Ctrl-C) or SIGTERM; either way the peers are closed and the
    upload folder is removed. A port in use or an address that cannot be bound is an
    InputError, raised before ``on_ready`` is called."""
    runner = web.AppRunner(server.app, access_log=None)
    await runner.setup()
    loop = asyncio.get_running_loop()
    loop.set_default_executor(prestarted_executor())
    frozen = freeze_loaded_objects()  # the engine is loaded: later collections skip it
    log.info("serve: %d start-up objects frozen for the collector", frozen)
    stop = asyncio.Event()
    try:
        cfg = server.config
        site = web.TCPSite(runner, cfg.host, cfg.port)
        try:
            await site.start()
        except OSError as e:
            raise InputError(f"cannot listen on {cfg.host}:{cfg.port}: {e.strerror or e}") from e
        with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals off the main thread
            loop.add_signal_handler(signal.SIGTERM, stop.set)
        if on_ready is not None:
            on_ready()
        await stop.wait()
        log.info("SIGTERM: shutting down")
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)
        await runner.cleanup()
        await server.close_all()
