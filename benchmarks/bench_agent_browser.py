"""``emostream agent`` in headless Chromium: presented fps, A/V offset, interrupt latency (JSON).

Runs the bot (Pipecat SmallWebRTC + piper + EmostreamVideoService) against a real headless
Chromium, as tests/test_agent_browser.py does, and prints the figures the voice-agent issue
targets: presented fps (about 25), the A/V offset (|offset| <= 45 ms; positive: sound late) read
three ways -- Chromium's own lip sync (``chromium_playout_skew_ms``, the sender-clock times it
estimates it is playing, audio minus video, which the page holds together), what it played into
the null sink
(``sink_av_offset_ms``) next to the same reading for a file that is in sync by construction played
by Chromium's media player (``reference_sink_av_offset_ms``, tests/browser/reference.py: the
headless chain's own bias), and the page's WebAudio tap -- and the time from the page's Interrupt
click to the last loud sound it hears. The motion is the
transparent test motion (jawOpen = each frame's audio energy, tests/browser/stub_engine.py) so
the offset can be read off the correlation of mouth darkness and the heard sound; ``--engine
real`` runs the shipped models instead (then the offset includes the model's own timing).

    python benchmarks/bench_agent_browser.py --runs 2 --json out/bench/agent_browser.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from browser.agent import mouth_crop, speak_and_interrupt, speak_line
from browser.reference import reference_run


def _engine(kind: str) -> Any:
    if kind == "energy":
        from browser.stub_engine import energy_engine

        return energy_engine(size=256)
    from emostream.engine.pipeline import Engine, EngineConfig

    return Engine.load(EngineConfig(renderer="analytic", size=256))


async def main(args: argparse.Namespace) -> dict[str, Any]:
    engine = _engine(args.engine)
    lines, interrupts, references = [], [], []
    for _ in range(args.runs):
        _, figures = await speak_line(engine)
        lines.append(figures)
        _, figures = await speak_and_interrupt(engine)
        interrupts.append(figures)
        if args.engine == "energy":  # the reference is the test motion's
            references.append(await reference_run(engine, mouth_crop(engine)))

    def med(values: list[float | None]) -> float | None:
        v = [x for x in values if x is not None and np.isfinite(x)]
        return float(np.median(v)) if v else None

    return {
        "engine": args.engine,
        "runs": args.runs,
        "load_avg_1min": os.getloadavg()[0],
        "presented_fps": med([f["video"]["presented_fps"] for f in lines]),
        "av_offset_ms": med([f["av_offset_ms"] for f in lines]),
        "av_corr_r": med([f["av_corr_r"] for f in lines]),
        "sink_av_offset_ms": med([f["sink_av_offset_ms"] for f in lines]),
        "sink_av_corr_r": med([f["sink_av_corr_r"] for f in lines]),
        "sink_av_offset_ms_runs": [f["sink_av_offset_ms"] for f in lines],
        "chromium_playout_skew_ms": med([f["chromium_playout_skew_ms"] for f in lines]),
        "chromium_playout_skew_ms_runs": [f["chromium_playout_skew_ms"] for f in lines],
        # the page's lip-sync bias at the end (agent.js holdLipSync; > 0: the video held back)
        "lip_sync_bias_ms_runs": [f["lip_sync_bias_ms"] for f in lines],
        "tap_av_offset_ms_runs": [f["av_offset_ms"] for f in lines],
        # sound the browser had to make up for missing audio (gaps in RTP time, late packets)
        "audio_concealed_samples_runs": [f["audio"]["concealed_samples"] for f in lines],
        "reference_sink_av_offset_ms": med([f["sink_av_offset_ms"] for f in references]),
        "reference_sink_av_offset_ms_runs": [f["sink_av_offset_ms"] for f in references],
        "session_dropped_frames": med([f["session_dropped_frames"] for f in lines]),
        "say_to_first_sound_ms": med([f["say_to_first_sound_ms"] for f in lines]),
        "interrupt_to_silence_ms": med([f["interrupt_to_silence_ms"] for f in interrupts]),
        "bot_ended_after_disconnect_s": med([f["bot_ended_after_disconnect_s"] for f in interrupts]),
        "targets": {"presented_fps": "about 25", "abs_av_offset_ms": "<= 45"},
        "per_run": {"lines": lines, "interrupts": interrupts, "references": references},
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--engine", choices=("energy", "real"), default="energy")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args()
    result = asyncio.run(main(args))
    text = json.dumps(result, indent=1, default=float)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    summary = {k: v for k, v in result.items() if k != "per_run"}
    print(json.dumps(summary, indent=1, default=float))
