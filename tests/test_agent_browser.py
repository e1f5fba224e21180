"""``emostream agent`` end to end: a real headless Chromium opens the bot's page, connects through
Pipecat's SmallWebRTC transport, types a line in the page's own form, and the bot answers through
the real pipeline: piper TTS (the bundled voice) -> EmostreamVideoService -> SmallWebRTC output.

The engine is the real Session + analytic renderer with the transparent test motion of
tests/browser/stub_engine.py (jawOpen follows the audio energy of each frame), so the mouth in the
page's frames must open with the sound the page hears. The tests assert what a bug would break
(video and speech reach the page, the page holds Chromium's lip sync within 20 ms, mouth and sound
agree within 45 ms in what the browser plays into a sound device -- a PulseAudio null sink recorded
with parec, tests/browser/sink_record.py -- the mouth is still while the bot is quiet, Interrupt
cuts the speech off, a vanished client frees its bot within seconds); the frame rate, the A/V
figures and the interrupt latency are measured by benchmarks/bench_agent_browser.py. Figures go
to out/webrtc/agent_*.json, the page's screenshot to out/webrtc/agent_page.png.
"""

from __future__ import annotations

import json
import logging
import threading

import pytest

pytest.importorskip("pipecat", reason="needs the pipecat extra: pip install 'emostream[pipecat]'")

from browser.agent import speak_and_interrupt, speak_line
from browser.harness import chromium_available, out_path, write_json

from emostream.engine.pipeline import Engine

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not chromium_available(), reason="needs Debian chromium (scripts/apt-packages.txt)"),
    pytest.mark.timeout(240),
]


@pytest.fixture(scope="module")
def energy() -> Engine:
    from browser.stub_engine import energy_engine

    return energy_engine(size=256)


async def test_agent_page_says_a_typed_line(energy: Engine) -> None:
    report, figures = await speak_line(energy, screenshot=out_path("agent_page.png"))
    write_json("report_agent.json", report)
    write_json("agent_browser.json", figures)
    print(json.dumps(figures, indent=1, default=float))
    assert report["state"] == "connected", report.get("error")
    assert figures["video"]["frames_decoded"] >= 20 * 25 * 0.4, "video flows"
    assert figures["speech_heard_s"] > 3.0, "the typed line was spoken"
    motion = figures["mouth_motion"]
    assert motion["quiet_frames"] > 25 and motion["speaking"] > 4 * motion["quiet"], motion
    assert figures["av_corr_r"] > 0.2, f"the mouth follows the sound: {figures}"
    # About 25 fps, lips and sound within 45 ms (issue 19) -- judged only when the run kept up: a
    # CPU-starved run (other jobs on a shared machine) drops most renders, and the browser's jitter
    # buffers then swing by hundreds of ms, which says nothing about the sync (see the module doc).
    # What the bot sends is in sync on its clocks (test_agent_bot.py, as RTCP maps it); the page
    # holds Chromium's playout of the two streams together on those clocks (agent.js
    # holdLipSync: the sender-clock times it estimates it is playing, within 5 ms after ~4 s;
    # 20 ms here leaves room for one tick's jitter), and what Chromium played into the null sink
    # must follow the lips within 45 ms.
    dropped = figures["session_dropped_frames"] or 0
    if dropped <= 0.1 * figures["video"]["frames_decoded"]:
        fps = figures["video"]["presented_fps"]
        assert 22.0 <= fps <= 26.0, f"about 25 fps presented: {figures}"
        skew = figures["chromium_playout_skew_ms"]
        assert skew is not None and abs(skew) <= 20.0, f"the page holds Chromium's lip sync: {figures}"
        played = figures["sink_av_offset_ms"]
        assert played is not None, f"the null sink's output was recorded: {figures}"
        assert abs(played) <= 45.0, f"lips and sound within 45 ms: {figures}"


async def test_agent_interrupt_cuts_off_and_a_vanished_client_frees_its_bot(
    energy: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="emostream.integrations.pipecat_bot"):
        report, figures = await speak_and_interrupt(energy)
    write_json("agent_interrupt.json", figures)
    print(json.dumps(figures, indent=1, default=float))
    assert report["state"] == "connected", report.get("error")
    # (On a CPU-starved machine much of the speech can be dropped as late: any of it will do.)
    assert figures["spoken_before_interrupt_s"] > 0.1, "the bot was speaking when interrupted"
    assert not figures["turn_pending_after_interrupt"]
    # The line is three times LINE (~20 s): the speech must stop long before it would end.
    assert figures["interrupt_to_silence_ms"] < 2000.0, figures
    ended = figures["bot_ended_after_disconnect_s"]
    assert ended is not None, "the bot ended after its client vanished"
    assert ended < 10.0, f"noticed by the silence watchdog (4 s), not ICE consent (~30 s): {ended}"
    assert any("sent no packet" in r.getMessage() for r in caplog.records)
    assert not any(t.name == "emostream-session" and t.is_alive() for t in threading.enumerate())
