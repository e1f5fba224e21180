"""``emostream agent`` end to end: a real headless Chromium opens the bot's page, connects through
Pipecat's SmallWebRTC transport, types a line (the page's own form), and the bot answers through
the real pipeline: piper TTS (the bundled voice) -> EmostreamVideoService -> SmallWebRTC output.

The engine is the real Session + analytic renderer with the transparent test motion of
tests/browser/stub_engine.py (jawOpen follows the audio energy of each frame): the mouth in the
page's frames must then open exactly with the sound the page hears, so the A/V offset can be
read off the correlation between mouth darkness and the received audio's envelope. The figures
go to out/webrtc/agent_*.json; the screenshot to out/webrtc/agent_page.png.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest

pytest.importorskip("pipecat", reason="needs the pipecat extra: pip install 'emostream[pipecat]'")

from aiohttp import web
from browser import analysis
from browser.harness import HERE, BrowserRun, chromium_available, out_path, write_json

from emostream.engine.pipeline import Engine
from emostream.engine.session import SessionConfig
from emostream.integrations.pipecat_bot import PAGE_DIR, BotConfig, BotServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not chromium_available(), reason="needs Debian chromium (scripts/apt-packages.txt)"),
    pytest.mark.timeout(180),
]

LINE = (
    "Hello! I am the emostream avatar. You typed this line, a local voice reads it aloud, "
    "and my lips follow every word in sync."
)
SPEECH_RMS = 0.02  # audio tap blocks louder than this are the bot speaking

#: Test-only: the page's events (say / interrupt clicks, performance time) ride along in the
#: report that measure.js posts.
REPORT_EVENTS = """<script>
(() => {
  const realFetch = window.fetch.bind(window);
  window.fetch = (url, opts) => {
    if (url === "/report" && opts && opts.body) {
      const body = JSON.parse(opts.body);
      body.agentEvents = window.emostream ? window.emostream.events : null;
      opts = { ...opts, body: JSON.stringify(body) };
    }
    return realFetch(url, opts);
  };
})();
</script>
"""


class AgentRun(BrowserRun):
    """BrowserRun on the agent's page (plus measure.js), which types ``say`` by itself."""

    def __init__(self, server: BotServer, *, seconds: float, crop: tuple[float, float, float, float],
                 say: str, say_after: float, interrupt_after: float | None = None) -> None:  # fmt: skip
        super().__init__(server, wav=None, seconds=seconds, crop=crop)  # type: ignore[arg-type]
        self.say, self.say_after, self.interrupt_after = say, say_after, interrupt_after

    async def _test_page(self, request: web.Request) -> web.Response:
        html = (PAGE_DIR / "agent.html").read_text("utf-8")
        extra = REPORT_EVENTS + '<script src="/harness/measure.js"></script>\n</body>'
        return web.Response(text=html.replace("</body>", extra), content_type="text/html")

    async def _measure_js(self, request: web.Request) -> web.Response:
        return web.Response(text=(HERE / "measure.js").read_text("utf-8"), content_type="text/javascript")

    def url(self) -> str:
        q = f"&say={quote(self.say)}&sayAfter={self.say_after}"
        if self.interrupt_after is not None:
            q += f"&interruptAfter={self.interrupt_after}"
        return super().url() + q


@pytest.fixture(scope="module")
def energy() -> Engine:
    from browser.stub_engine import energy_engine

    return energy_engine(size=256)


def mouth_crop(engine: Engine) -> tuple[float, float, float, float]:
    from test_webrtc_browser import _mouth_crop

    return _mouth_crop(engine)


def speech_span(report: dict[str, Any]) -> tuple[float, float]:
    """First and last loud audio block (performance ms) of the received audio."""
    audio = np.array(report["audio"], dtype=np.float64)
    loud = audio[audio[:, 1] > SPEECH_RMS, 0]
    assert loud.size, "the bot's speech was heard"
    return float(loud.min()), float(loud.max())


def av_offset_ms(report: dict[str, Any]) -> tuple[float, float]:
    """(lag, r): the shift of the audio envelope (mean RMS over [t + lag, t + lag + 40 ms) at each
    frame's display time t) that correlates best with the mouth's darkness; lag > 0: sound late.
    With jawOpen = the frame's own audio energy, lag 0 is perfect sync."""
    frames = [f for f in report["frames"] if "gray" in f and f.get("expectedDisplayTime") is not None]
    t = np.array([f["expectedDisplayTime"] for f in frames], dtype=np.float64)
    dark = -np.array([np.mean(f["gray"]) for f in frames], dtype=np.float64)
    audio = np.array(report["audio"], dtype=np.float64)
    at, ar = audio[:, 0], audio[:, 1]
    best = (-2.0, 0.0)
    for lag in np.arange(-200.0, 200.1, 2.5):
        lo = np.searchsorted(at, t + lag)
        hi = np.searchsorted(at, t + lag + 40.0)
        env = np.array([ar[a:b].mean() if b > a else 0.0 for a, b in zip(lo, hi, strict=True)])
        if env.std() == 0 or dark.std() == 0:
            continue
        r = float(np.corrcoef(env, dark)[0, 1])
        if r > best[0]:
            best = (r, float(lag))
    return best[1], best[0]


def mouth_motion(
    report: dict[str, Any], span: tuple[float, float], edge_ms: float = 250.0
) -> dict[str, float]:
    """Mean absolute change of the mouth crop between presented frames, while the bot speaks
    and outside [first sound - edge, last sound + edge]."""
    frames = [f for f in report["frames"] if "gray" in f and f.get("expectedDisplayTime") is not None]
    t = np.array([f["expectedDisplayTime"] for f in frames], dtype=np.float64)[1:]
    g = np.stack([np.asarray(f["gray"], np.float32) for f in frames])
    change = np.abs(np.diff(g, axis=0)).mean(axis=1)
    speaking = (t >= span[0]) & (t <= span[1])
    quiet = (t < span[0] - edge_ms) | (t > span[1] + edge_ms)
    return {"speaking": float(change[speaking].mean()), "quiet": float(change[quiet].mean()),
            "quiet_frames": int(quiet.sum()), "speaking_frames": int(speaking.sum())}  # fmt: skip


def bot_server(engine: Engine) -> BotServer:
    # Wider margins than the default: on a loaded shared machine the session would otherwise
    # drop renders to stay on time; this test is about what reaches the page.
    config = BotConfig(session=SessionConfig(compute_margin_s=0.15, jitter_margin_s=0.1))
    return BotServer(engine, config, max_request_bytes=64 << 20)  # the page's report is large


async def test_agent_page_says_a_typed_line(energy: Engine) -> None:
    server = bot_server(energy)
    async with AgentRun(server, seconds=16, crop=mouth_crop(energy), say=LINE, say_after=3.0) as run:
        run.launch()
        import asyncio

        await asyncio.sleep(9.0)  # the line is being spoken: show it in the screenshot
        await run.screenshot(out_path("agent_page.png"))
        reports = await run.wait_reports(timeout=90)
        bot_stats = [(b.avatar.stats, b.avatar.session) for b in server.bots.values()]
    report = reports[0]
    write_json("report_agent.json", report)
    assert report["state"] == "connected", report.get("error")
    video = analysis.video_summary(report)
    audio = analysis.audio_summary(report)
    span = speech_span(report)
    lag, r = av_offset_ms(report)
    motion = mouth_motion(report, span)
    figures = {
        "video": video, "audio": audio, "speech_s": (span[1] - span[0]) / 1000.0,
        "av_offset_ms": lag, "av_corr_r": r, "mouth_motion": motion,
        "dropped_frames": bot_stats[0][1].stats.dropped_frames if bot_stats and bot_stats[0][1] else None,
        "say_to_first_sound_ms": span[0] - report["agentEvents"][0]["t"],
    }  # fmt: skip
    write_json("agent_browser.json", figures)
    print(json.dumps(figures, indent=1, default=float))
    assert video["frames_decoded"] >= 16 * 25 * 0.7
    assert 20.0 <= video["presented_fps"] <= 30.0, "about 25 fps"
    assert figures["speech_s"] > 3.0, "the whole line was spoken"
    assert r > 0.5, f"mouth vs sound correlation {r:.2f}"
    assert abs(lag) <= 45.0, f"A/V offset {lag} ms"
    assert motion["quiet_frames"] > 25 and motion["speaking"] > 4 * motion["quiet"], motion


async def test_agent_interrupt_button_cuts_off_and_disconnect_frees(
    energy: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    server = bot_server(energy)
    with caplog.at_level(logging.WARNING, logger="emostream.integrations.pipecat_bot"):
        async with AgentRun(server, seconds=10, crop=mouth_crop(energy), say=LINE * 2, say_after=1.0,
                            interrupt_after=3.5) as run:  # fmt: skip
            run.launch()
            reports = await run.wait_reports(timeout=90)
            bots = list(server.bots.values())
            assert len(bots) == 1 and bots[0].avatar.in_turn is False, "interrupted: no turn pending"
            # The page is killed without a goodbye (as a closed tab): the bot must notice, log and end.
            run.kill()
            import asyncio

            for _ in range(400):
                if not server.bots:
                    break
                await asyncio.sleep(0.1)
            assert not server.bots, "the bot ended after its client went away"
    report = reports[0]
    assert report["state"] == "connected", report.get("error")
    events = {e["what"]: e["t"] for e in report["agentEvents"]}
    audio = np.array(report["audio"], dtype=np.float64)
    loud = audio[audio[:, 1] > SPEECH_RMS, 0]
    before = loud[loud < events["interrupt"]]
    after = loud[loud >= events["interrupt"]]
    latency = float(after.max() - events["interrupt"]) if after.size else 0.0
    write_json(
        "agent_interrupt.json",
        {"interrupt_to_silence_ms": latency, "spoken_before_s": float(np.ptp(before)) / 1000},
    )
    print(json.dumps({"interrupt_to_silence_ms": latency}))
    assert before.size and np.ptp(before) > 1000.0, "the bot was speaking when interrupted"
    assert latency < 1000.0, f"speech went on {latency:.0f} ms after the interrupt click"
    assert any("disconnected" in r.getMessage() for r in caplog.records)
    assert not any(
        t.name == "emostream-session" and t.is_alive() for t in __import__("threading").enumerate()
    )


def test_page_is_packaged() -> None:
    assert (PAGE_DIR / "agent.html").is_file() and (PAGE_DIR / "agent.js").is_file()
    assert isinstance(Path(PAGE_DIR), Path)
