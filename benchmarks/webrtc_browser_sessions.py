"""How many concurrent browser sessions hold 25 fps: N headless Chromium processes (one page
each, the bundled speech as microphone) against one in-process server, for N in --counts.

Prints one JSON object per N: per-page presented fps, freezes, server-side skipped/dropped
frames, and whether every page held 25 fps (>= 24 presented fps, no freeze, < 2 % of the
session's frames dropped).

    .venv/bin/python benchmarks/webrtc_browser_sessions.py --counts 1,2,3 --seconds 20
    .venv/bin/python benchmarks/webrtc_browser_sessions.py --session pattern   # transport only

Sessions: ``engine`` = the shipped engine (trained motion + analytic renderer); ``energy`` =
the real Session and analytic renderer with a test motion model (tests/browser/stub_engine.py,
usable before weights exist; rendering dominates the cost either way); ``pattern`` = no
rendering at all (transport + browser cost only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from browser import analysis
from browser.fakes import SyncPatternSession
from browser.harness import BrowserRun, speech_wav

from emostream.arkit import EmotionStyle
from emostream.streaming.webrtc.server import AvatarServer, ServerConfig, SessionFactory


def make_factory(kind: str, size: int) -> tuple[SessionFactory, int]:
    if kind == "pattern":

        def pattern(portrait: Path | None, style: EmotionStyle) -> SyncPatternSession:
            return SyncPatternSession(size=size)

        return pattern, 25
    if kind == "energy":
        from browser.stub_engine import energy_engine

        engine = energy_engine(size=size)
    else:
        from emostream.engine.pipeline import Engine, EngineConfig

        engine = Engine.load(EngineConfig(renderer="analytic", size=size))
    engine.renderer_for(None)

    def real(portrait: Path | None, style: EmotionStyle) -> Any:
        return engine.new_session(portrait, emotion=style)

    return real, engine.fps


async def run(
    n: int, seconds: float, factory: SessionFactory, fps: int, size: int, pattern: bool
) -> dict[str, Any]:
    server = AvatarServer(ServerConfig(max_sessions=n, fps=fps, frame_size=size), factory)
    async with BrowserRun(server, wav=speech_wav(), seconds=seconds) as br:
        br.launch(n)
        reports = await br.wait_reports(timeout=seconds + 90)
        server_stats = [p.stats() for p in server.peers.values()]
        send_logs = {p.id: list(p.video.send_times) for p in server.peers.values()}
    pages = []
    for r in reports:
        v = analysis.video_summary(r) if r.get("frames") else {}
        page: dict[str, Any] = {
            "state": r.get("state"),
            "presented_fps": round(v.get("presented_fps", 0.0), 2),
            "freezes": v.get("freeze_count_chromium"),
            "max_gap_ms": v.get("max_gap_ms"),
        }
        if r.get("id") in send_logs and r.get("frames"):
            page["latency"] = analysis.frame_latency(r, send_logs[r["id"]])
            page["jitter_buffer_ms"] = analysis.audio_summary(r)["jitter_buffer_ms"]
            offsets = analysis.av_offsets(r) if pattern else np.zeros(0)
            if len(offsets):  # pattern sessions: flash + beep once a second
                page["av_offset_ms"] = [round(float(x), 1) for x in offsets]
                page["av_offset_last5_median_ms"] = float(np.median(offsets[-5:]))
        pages.append(page)
    dropped = []
    for s in server_stats:
        sent = s["video"]["sent"] or 1
        dropped.append((s.get("dropped_frames", 0) + s["video"]["skipped"]) / sent)
    held = all(p["presented_fps"] >= 24 and p["freezes"] == 0 for p in pages) and all(
        d < 0.02 for d in dropped
    )
    return {"sessions": n, "held_25fps": held, "pages": pages, "server_drop_fraction": dropped}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="1,2,3", help="comma-separated session counts")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--session", choices=("engine", "energy", "pattern"), default="engine")
    args = ap.parse_args()
    factory, fps = make_factory(args.session, args.size)
    for n in (int(c) for c in args.counts.split(",")):
        result = asyncio.run(run(n, args.seconds, factory, fps, args.size, args.session == "pattern"))
        result.update(session=args.session, size=args.size, seconds=args.seconds)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
