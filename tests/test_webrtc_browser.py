"""A real headless Chromium loads the page, streams the bundled speech as its microphone and
reports what it received (tests/browser/). Figures go to out/webrtc/*.json.

Tests assert what a bug would break (frames and audio flow, the microphone reaches the session,
every flash meets its beep, the sync is within two frames, the mouth follows the speech); the
timing targets themselves (latency p50, A/V offset ±45 ms, 0 freezes over 60 s, concurrent
sessions) are measured by benchmarks/webrtc_browser_sessions.py, since tests never assert on
wall-clock figures on a shared machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from browser import analysis
from browser.fakes import SyncPatternSession
from browser.harness import (
    Browser,
    BrowserRun,
    busy_report,
    chromium_available,
    out_path,
    speech_wav,
    write_json,
)

from emostream.arkit import EmotionStyle
from emostream.streaming.webrtc.server import AvatarServer, ServerConfig

if TYPE_CHECKING:
    from emostream.engine.pipeline import Engine
    from emostream.engine.session import Session

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not chromium_available(), reason="needs Debian chromium (scripts/apt-packages.txt)"),
    pytest.mark.timeout(120),
]


async def test_browser_sync_pattern_av_offset_latency_freezes() -> None:
    """Transport figures with a sync-pattern session (flash + beep once a second)."""
    sessions: list[SyncPatternSession] = []

    def factory(portrait: Path | None, style: EmotionStyle) -> SyncPatternSession:
        s = SyncPatternSession(size=256)
        sessions.append(s)
        return s

    server = AvatarServer(ServerConfig(max_sessions=2, frame_size=256), factory)
    async with BrowserRun(server, wav=speech_wav(), seconds=24) as run:
        run.launch()
        reports = await run.wait_reports(timeout=60)
        peer_logs = [list(p.video.send_times) for p in server.peers.values()]
        peer_stats = [p.stats() for p in server.peers.values()]
    report = reports[0]
    write_json("report_browser_sync.json", report)
    assert report["state"] == "connected", report.get("error")
    figures, offsets = analysis.sync_figures(report, peer_logs[0])
    figures.update(
        server=peer_stats[0], mic_pushed_s=sessions[0].pushed_samples / 16000, user_agent=report["userAgent"]
    )
    video, audio, latency = figures["video"], figures["audio"], figures["latency"]
    steady = offsets[-analysis.JUDGE_LAST :]
    write_json("browser_sync.json", figures)
    print(json.dumps(figures, indent=1, default=float))

    assert video["frames_decoded"] >= 24 * 25 * 0.8
    assert audio["samples_received"] > 48000 * 20 and audio["tap_max_rms"] > 0.1
    assert sessions[0].pushed_samples > 16000 * 20, "the browser's microphone audio reached the session"
    assert sessions[0].pushed_rates == {16000}
    assert len(offsets) >= 18, "each flash (once a second) met its beep within ±400 ms"
    assert abs(float(np.median(steady))) <= 80.0, f"A/V offset after convergence: {offsets}"
    assert latency["send_to_display_ms"]["p50"] > 0


@pytest.fixture(scope="module")
def energy() -> Engine:
    """Real Session + analytic renderer; test motion (jawOpen follows the audio energy)."""
    from browser.stub_engine import energy_engine

    return energy_engine(size=256)


@pytest.fixture(scope="module")
def engine() -> Engine:
    from emostream.engine.pipeline import Engine, EngineConfig
    from emostream.errors import CheckpointError

    try:
        return Engine.load(EngineConfig(renderer="analytic", size=256))
    except CheckpointError as e:  # the default weights are built by `emostream train ...`
        pytest.skip(f"shipped motion weights not available: {e}")


def _mouth_crop(engine: Engine) -> tuple[float, float, float, float]:
    """The mouth region of the avatar's rest frame (face keypoints), as fractions of the frame."""
    from emostream.arkit import MOTION_DIM
    from emostream.render.face import detect_faces

    renderer = engine.renderer_for(None)
    rest = renderer.render(np.zeros((1, MOTION_DIM), np.float32))[0]
    face = detect_faces(rest)[0]
    mouth = face.keypoints[3]
    eye = float(np.linalg.norm(face.keypoints[0] - face.keypoints[1]))
    h, w = rest.shape[:2]
    x0, x1 = (mouth[0] - 0.6 * eye) / w, (mouth[0] + 0.6 * eye) / w
    y0, y1 = (mouth[1] - 0.35 * eye) / h, (mouth[1] + 0.55 * eye) / h
    return (max(0.0, x0), max(0.0, y0), min(1.0, x1), min(1.0, y1))


async def test_browser_session_renderer_mouth_follows_speech(energy: Engine) -> None:
    """The real Session and analytic renderer behind the transport (motion: jawOpen from the
    audio energy): the mouth in the presented frames follows what the page hears."""
    await _speak_and_measure(energy, "browser_session.json", "page_in_use_energy.png", min_r=0.25)


async def test_browser_real_avatar_speaks(engine: Engine) -> None:
    """The shipped engine (trained motion model, analytic renderer, 256²)."""
    await _speak_and_measure(engine, "browser_engine.json", "page_in_use.png", min_r=0.25)


async def _speak_and_measure(
    engine: Engine, name: str, shot: str, *, min_r: float, browser: Browser = "chromium"
) -> dict:
    """Stream the bundled speech to a session of ``engine``; assert frames, audio and the mouth
    following the speech; write the figures to out/webrtc/``name`` and return them."""

    from emostream.engine.session import SessionConfig

    # Wider margins than the default: on a loaded shared machine the session would otherwise
    # drop renders to stay on time, and this test is about the mouth reaching the page.
    config = SessionConfig(compute_margin_s=0.15, jitter_margin_s=0.1)

    def factory(portrait: Path | None, style: EmotionStyle) -> Session:
        return engine.new_session(portrait, emotion=style, config=config)

    size = engine.renderer_for(None).width
    server = AvatarServer(ServerConfig(max_sessions=1, fps=engine.fps, frame_size=size), factory)
    async with BrowserRun(
        server, wav=speech_wav(), seconds=16, crop=_mouth_crop(engine), browser=browser
    ) as run:
        run.launch()
        reports = await run.wait_reports(timeout=60)
        peer_logs = [list(p.video.send_times) for p in server.peers.values()]
        peer_stats = [p.stats() for p in server.peers.values()]
        # The page keeps streaming after its report; a screenshot during the measurement would
        # cost CPU inside it.
        await run.screenshot(out_path(shot))
    report = reports[0]
    write_json(f"report_{name}", report)
    assert report["state"] == "connected", report.get("error")
    video = analysis.video_summary(report)
    audio = analysis.audio_summary(report)
    mouth = analysis.mouth_speech_correlation(report, max_lag_ms=500)
    figures = {
        "video": video,
        "audio": audio,
        "latency": analysis.frame_latency(report, peer_logs[0]),
        "mouth_vs_speech": mouth,
        "page_frame_latency_ms": report.get("pageFrameLatencyMs"),
        "server": peer_stats[0],
    }
    write_json(name, figures)
    print(json.dumps(figures, indent=1, default=float))
    assert video["frames_decoded"] >= 16 * 25 * 0.7
    assert audio["tap_max_rms"] > 0.05, "the avatar's audio (the delayed speech) was heard"
    assert mouth["r"] > min_r, f"mouth motion vs speech envelope: {mouth}"
    return figures


async def test_browser_over_capacity_shows_busy() -> None:
    """Beyond --max-sessions the page gets HTTP 503 and says so (the slot is held by another
    client: an in-process aiortc peer)."""
    report = await busy_report("chromium")
    assert report["state"] == "busy"
    assert report["error"] == "Server busy: all 1 avatar sessions are in use; try again later."
