"""Drive ``emostream agent`` (emostream.integrations.pipecat_bot) in a real headless Chromium.

``AgentRun`` is ``BrowserRun`` on the agent's page plus measure.js; the page types ``say`` by
itself (its own form, ``?say=...``) and ``click()`` presses a button the way a user would
(DevTools ``Runtime.evaluate``). ``speak_line`` and ``speak_and_interrupt`` run one scenario each
and return the page's report plus the figures: presented fps, A/V offset (the audio envelope's
shift that best matches the mouth's darkness: with the test motion jawOpen = the frame's own
audio energy, 0 is perfect sync), mouth motion while speaking and while quiet, and the time from
the Interrupt click to the last loud sound. Used by tests/test_agent_browser.py (behaviour) and
benchmarks/bench_agent_browser.py (the figures).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import numpy as np
from aiohttp import web

from browser import analysis
from browser.harness import Browser, BrowserRun
from browser.sink_record import SinkRecorder, with_audio
from emostream.engine.pipeline import Engine
from emostream.engine.session import SessionConfig
from emostream.integrations.pipecat_bot import PAGE_DIR, BotConfig, BotServer

LINE = (
    "Hello! I am the emostream avatar. You typed this line, a local voice reads it aloud, "
    "and my lips follow every word in sync."
)
SPEECH_RMS = 0.02  # audio tap blocks louder than this are the bot speaking

#: The page's events (Say / Interrupt, performance time) ride along in measure.js's report.
REPORT_EVENTS = """<script>
(() => {
  const realFetch = window.fetch.bind(window);
  window.fetch = (url, opts) => {
    if (url === "/report" && opts && opts.body) {
      const body = JSON.parse(opts.body);
      body.agentEvents = window.emostream ? window.emostream.events : null;
      body.lipSync = window.emostream ? window.emostream.lipSync : null;
      opts = { ...opts, body: JSON.stringify(body) };
    }
    return realFetch(url, opts);
  };
})();
</script>
"""


class AgentRun(BrowserRun):
    """BrowserRun on the agent's page (plus measure.js), which types ``say`` by itself."""

    def __init__(
        self, server: BotServer, *, seconds: float, crop: tuple[float, float, float, float], say: str,
        say_after: float, browser: Browser = "chromium",
    ) -> None:  # fmt: skip
        # The A/V offset is judged as a user with a sound card would hear it (see BrowserRun).
        super().__init__(server, wav=None, seconds=seconds, crop=crop, null_sink=True, browser=browser)  # type: ignore[arg-type]
        self.say, self.say_after = say, say_after

    async def _test_page(self, request: web.Request) -> web.Response:
        html = (PAGE_DIR / "agent.html").read_text("utf-8")
        extra = REPORT_EVENTS + '<script src="/harness/measure.js"></script>\n</body>'
        return web.Response(text=html.replace("</body>", extra), content_type="text/html")

    async def click(self, element_id: str) -> None:
        """Click a button of the page (DevTools ``Runtime.evaluate``), as a user would."""
        port = int((Path(self.user_dirs[0]) / "DevToolsActivePort").read_text().split()[0])
        expr = f"document.getElementById({json.dumps(element_id)}).click()"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                targets = await r.json(content_type=None)
            page = next(t for t in targets if t.get("type") == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                await ws.send_json({"id": 1, "method": "Runtime.evaluate", "params": {"expression": expr}})
                while (await ws.receive_json(timeout=20)).get("id") != 1:
                    pass

    def url(self) -> str:
        return super().url() + f"&say={quote(self.say)}&sayAfter={self.say_after}"


def bot_server(engine: Engine, *, compute_margin_s: float = 0.15) -> BotServer:
    """The bot with wider session margins than the default (a loaded shared machine would
    otherwise drop renders to stay on time) and room for measure.js's large report."""
    config = BotConfig(session=SessionConfig(compute_margin_s=compute_margin_s, jitter_margin_s=0.1))
    return BotServer(engine, config, max_request_bytes=64 << 20)


def mouth_crop(engine: Engine) -> tuple[float, float, float, float]:
    from test_webrtc_browser import _mouth_crop  # the crop the WebRTC browser tests use

    return _mouth_crop(engine)


def loud_times(report: dict[str, Any]) -> np.ndarray:
    """Performance times (ms) of the received audio's blocks louder than SPEECH_RMS."""
    audio = np.array(report.get("audio") or [[0.0, 0.0]], dtype=np.float64)
    return audio[audio[:, 1] > SPEECH_RMS, 0]


def _crops(report: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    frames = [f for f in report["frames"] if "gray" in f and f.get("expectedDisplayTime") is not None]
    t = np.array([f["expectedDisplayTime"] for f in frames], dtype=np.float64)
    g = np.stack([np.asarray(f["gray"], np.float32) for f in frames]) if frames else np.zeros((0, 1024))
    return t, g


def av_offset_ms(report: dict[str, Any], max_ms: float = 300.0) -> tuple[float, float]:
    """(lag, r): the shift of the audio envelope (mean RMS over [t + lag, t + lag + 40 ms) at each
    frame's display time t) that correlates best with the mouth's darkness; lag > 0: sound late."""
    t, g = _crops(report)
    dark = -g.mean(axis=1)
    audio = np.array(report["audio"], dtype=np.float64)
    lags = np.arange(-max_ms, max_ms + 0.1, 2.5)
    rs = analysis.envelope_correlations(t, dark, audio[:, 0], audio[:, 1], lags, 40.0)
    k = int(np.argmax(rs))  # the first of equal maxima
    return (float(lags[k]), float(rs[k])) if rs[k] > -2.0 else (float("nan"), -2.0)


def playout_skew_ms(report: dict[str, Any]) -> float | None:
    """``estimatedPlayoutTimestamp`` of the audio minus the video's, from one getStats call."""
    audio = analysis.inbound(report, "audio").get("estimatedPlayoutTimestamp")
    video = analysis.inbound(report, "video").get("estimatedPlayoutTimestamp")
    return None if audio is None or video is None else float(audio - video)


def mouth_motion(report: dict[str, Any], edge_ms: float = 250.0) -> dict[str, float]:
    """Mean absolute change of the mouth crop between presented frames, while the bot speaks
    and outside [first loud sound - edge, last loud sound + edge]."""
    loud = loud_times(report)
    t, g = _crops(report)
    change = np.abs(np.diff(g, axis=0)).mean(axis=1)
    t = t[1:]
    speaking = (t >= loud.min()) & (t <= loud.max()) if loud.size else np.zeros_like(t, bool)
    quiet = (t < loud.min() - edge_ms) | (t > loud.max() + edge_ms) if loud.size else ~speaking
    return {
        "speaking": float(change[speaking].mean()) if speaking.any() else 0.0,
        "quiet": float(change[quiet].mean()) if quiet.any() else 0.0,
        "speaking_frames": int(speaking.sum()),
        "quiet_frames": int(quiet.sum()),
    }


async def speak_line(
    engine: Engine,
    *,
    seconds: float = 20.0,
    say_after: float = 7.0,
    line: str = LINE,
    screenshot: Path | None = None,
    browser: Browser = "chromium",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The page connects, types ``line`` ``say_after`` s later (the browser's A/V sync converges
    over the first seconds) and listens for ``seconds`` in all: (report, figures). The A/V
    offset is measured twice: on the page's WebAudio tap (``av_offset_ms``) and on what the
    browser played into the null sink (``sink_av_offset_ms``, recorded with parec)."""
    server = bot_server(engine)
    async with AgentRun(
        server, seconds=seconds, crop=mouth_crop(engine), say=line, say_after=say_after, browser=browser
    ) as run:
        sink = SinkRecorder(run._browser_env)  # what the browser really plays (sink_record.py)
        sink.start()
        try:
            run.launch()
            if screenshot is not None:
                await _wait_speaking(server)
                await asyncio.sleep(1.5)  # mid-sentence
                await run.screenshot(screenshot)
            report = (await run.wait_reports(timeout=120))[0]
            sessions = [b.avatar.session for b in server.bots.values()]
        finally:
            sink.stop()
    loud = loud_times(report)
    lag, r = av_offset_ms(report) if loud.size else (float("nan"), float("nan"))
    played = with_audio(report, sink.audio(report["timeOrigin"])) if "timeOrigin" in report else None
    sink_lag, sink_r = (
        av_offset_ms(played) if played is not None and played["audio"] and loud.size else (None, None)
    )
    events = report.get("agentEvents") or []
    figures = {
        "video": analysis.video_summary(report),
        "audio": analysis.audio_summary(report),
        "speech_heard_s": float(np.ptp(loud)) / 1000.0 if loud.size else 0.0,
        "av_offset_ms": lag,
        "av_corr_r": r,
        # the same analysis on the null sink's own output (parec) instead of the page's tap
        "sink_av_offset_ms": sink_lag,
        "sink_av_corr_r": sink_r,
        # Chromium's own view of its lip sync at the end (the sender-clock time of what each
        # stream is playing; audio minus video, negative: the sound plays older content)
        "chromium_playout_skew_ms": playout_skew_ms(report),
        # the page's lip-sync bias at the end (agent.js holdLipSync; > 0: the video held back)
        "lip_sync_bias_ms": (report.get("lipSync") or {}).get("biasMs"),
        "mouth_motion": mouth_motion(report),
        "session_dropped_frames": sessions[0].stats.dropped_frames if sessions and sessions[0] else None,
        "say_to_first_sound_ms": float(loud.min() - events[0]["t"]) if loud.size and events else None,
    }
    return report, figures


async def _wait_speaking(server: BotServer, timeout: float = 60.0) -> None:
    """Until the TTS audio has reached the avatar, then one session latency (it is playing)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        bots = list(server.bots.values())
        if bots and bots[0].avatar.stats.audio_frames_in and bots[0].avatar.session is not None:
            await asyncio.sleep(float(bots[0].avatar.session.latency))
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no TTS audio reached the avatar within {timeout} s")


async def speak_and_interrupt(
    engine: Engine, *, speak_s: float = 2.0, seconds: float = 12.0, gone_timeout_s: float = 60.0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The page types a long line; ``speak_s`` into the speech the Interrupt button is pressed;
    after the report the browser is killed (a tab that goes away without a goodbye) and the bot
    must notice and end. Returns (report, figures)."""
    server = bot_server(engine)
    loop = asyncio.get_running_loop()
    async with AgentRun(server, seconds=seconds, crop=mouth_crop(engine), say=LINE * 3, say_after=1.0) as run:
        run.launch()
        await _wait_speaking(server)
        await asyncio.sleep(speak_s)
        await run.click("interrupt")
        report = (await run.wait_reports(timeout=120))[0]
        in_turn = [b.avatar.in_turn for b in server.bots.values()]
        run.kill()
        gone = loop.time()
        while server.bots and loop.time() - gone < gone_timeout_s:
            await asyncio.sleep(0.1)
        ended_after = loop.time() - gone if not server.bots else None
    events = {e["what"]: e["t"] for e in report.get("agentEvents") or []}
    loud = loud_times(report)
    click = events.get("interrupt", float("nan"))
    before, after = loud[loud < click], loud[loud >= click]
    figures = {
        "spoken_before_interrupt_s": float(np.ptp(before)) / 1000.0 if before.size else 0.0,
        "interrupt_to_silence_ms": float(after.max() - click) if after.size else 0.0,
        "turn_pending_after_interrupt": any(in_turn),
        "bot_ended_after_disconnect_s": ended_after,
    }
    return report, figures
