"""The yardstick for the browser's A/V offset: the same avatar played from a file.

An A/V figure read in headless Chromium carries the measuring chain's own bias: the display
time Chromium predicts for each frame (``requestVideoFrameCallback``'s ``expectedDisplayTime``;
nothing is really displayed) and the delay the PulseAudio null sink reports to it. To know how
much of a WebRTC figure is the stream's, ``reference_run`` measures the same thing on content that
is in sync by construction: the test motion of tests/browser/stub_engine.py (jawOpen = each
frame's audio energy) rendered offline for a speech sample and written to WebM (VP8 + Opus;
video frame ``i`` at ``i / fps``, audio sample ``k`` at ``k / rate``), played by Chromium's own
media player -- which syncs its video to the audio clock -- on the same page machinery
(measure.js, the null sink recorded with parec) and read with the same analysis
(``agent.av_offset_ms``). A WebRTC figure near the reference's is as in sync as a file played
in the same browser.
"""

from __future__ import annotations

import asyncio
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiohttp import web

from browser.harness import Browser, BrowserRun, speech_wav
from browser.sink_record import SinkRecorder, with_audio
from browser.stub_engine import EnergyFeatures, EnergyMotionStream
from emostream.config import SAMPLE_RATE
from emostream.engine.pipeline import Engine
from emostream.media.audio import load_audio, resample

OUT_RATE = 48000
#: Silence before and after the speech (the player and the sink settle first).
PAD_S = 2.0

PAGE = """<!doctype html><html><body>
<video id="avatar" src="/reference.webm" playsinline></video>
<script>
window.emostream = (() => {
  const v = document.getElementById("avatar");
  const api = { state: "new", ready: Promise.resolve(), onFrame: null, pc: null, error: null,
    async start() { await v.play(); api.state = "connected"; } };
  const frame = (now, meta) => {
    if (api.onFrame) api.onFrame(now, meta, v);
    v.requestVideoFrameCallback(frame);
  };
  v.requestVideoFrameCallback(frame);
  return api;
})();
</script>
<script src="/harness/measure.js"></script>
</body></html>
"""


def write_reference(engine: Engine, path: Path, wav: Path | None = None) -> float:
    """The test motion for ``wav`` (default: the bundled speech sample), rendered and written to
    ``path`` as WebM with its audio; returns its duration (s)."""
    pcm = load_audio(wav or speech_wav())
    pad = np.zeros(int(PAD_S * SAMPLE_RATE), np.float32)
    pcm = np.concatenate([pad, pcm, pad])
    features = EnergyFeatures(engine.fps)
    motion = EnergyMotionStream().push(np.concatenate([features.push(pcm), features.flush()]), np.zeros(0))
    renderer = engine.renderer_for(None)
    with av.open(str(path), "w", format="webm") as out:
        video = out.add_stream("libvpx", rate=engine.fps)
        video.width, video.height, video.pix_fmt = renderer.width, renderer.height, "yuv420p"
        video.options = {"deadline": "realtime", "cpu-used": "8", "crf": "10", "b": "2M"}
        audio = out.add_stream("libopus", rate=OUT_RATE)
        audio.layout = "mono"
        for i in range(0, len(motion), 25):
            for k, rgb in enumerate(renderer.render(motion[i : i + 25])):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts, frame.time_base = i + k, Fraction(1, engine.fps)
                out.mux(video.encode(frame))
        s16 = (np.clip(resample(pcm, SAMPLE_RATE, OUT_RATE), -1, 1) * 32767).astype(np.int16)
        block = OUT_RATE // 50
        for k in range(0, len(s16) - block + 1, block):
            frame = av.AudioFrame.from_ndarray(s16[None, k : k + block], format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = OUT_RATE, k, Fraction(1, OUT_RATE)
            out.mux(audio.encode(frame))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return len(pcm) / SAMPLE_RATE


class FileServer:
    """What BrowserRun needs of a server, for a page that only plays a file."""

    def __init__(self) -> None:
        self.app = web.Application()

    async def close_all(self) -> None:
        pass


class ReferenceRun(BrowserRun):
    """BrowserRun on a page that plays ``webm`` (Chromium's media player) with measure.js."""

    def __init__(
        self,
        webm: Path,
        *,
        seconds: float,
        crop: tuple[float, float, float, float],
        browser: Browser = "chromium",
    ) -> None:
        server = FileServer()
        super().__init__(server, wav=None, seconds=seconds, crop=crop, null_sink=True, browser=browser)  # type: ignore[arg-type]
        self.webm = webm
        server.app.router.add_get("/reference.webm", self._webm)

    async def _test_page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def _webm(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(self.webm)


async def reference_run(
    engine: Engine, crop: tuple[float, float, float, float], browser: Browser = "chromium"
) -> dict[str, Any]:
    """Play the reference in Chromium on the null sink: its A/V offset (``sink_av_offset_ms``,
    positive: sound late) and the correlation, as ``agent.speak_line`` reports them."""
    from browser.agent import av_offset_ms  # deferred: agent imports pipecat

    with tempfile.TemporaryDirectory(prefix="emostream-ref-") as tmp:
        webm = Path(tmp) / "reference.webm"
        seconds = await asyncio.to_thread(write_reference, engine, webm)
        async with ReferenceRun(webm, seconds=seconds, crop=crop, browser=browser) as run:
            sink = SinkRecorder(run._browser_env)
            sink.start()
            try:
                run.launch()
                report = (await run.wait_reports(timeout=120))[0]
            finally:
                sink.stop()
    played = with_audio(report, sink.audio(report["timeOrigin"])) if "timeOrigin" in report else None
    lag, r = av_offset_ms(played) if played is not None and played["audio"] else (None, None)
    return {
        "state": report.get("state"),
        "error": report.get("error"),
        "frames": len(report.get("frames", [])),
        "sink_av_offset_ms": lag,
        "sink_av_corr_r": r,
    }
