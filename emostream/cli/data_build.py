"""``emostream data build``: render the training corpus (speech + phones + ARKit targets)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from emostream.config import DEFAULT_FPS, DEFAULT_SEED


def register(app: typer.Typer) -> None:
    @app.command("build")
    def build(
        out: Path = typer.Option(..., "--out", help="Output folder (shards/ + manifest.json)."),
        preset: str = typer.Option(
            "ci", "--preset", help="Size: ci (tiny, < 2 min), small (~45 min of audio), full (>= 5 h)."
        ),
        seed: int = typer.Option(
            DEFAULT_SEED, "--seed", help="Build seed: the same seed gives the same bytes."
        ),
        workers: int = typer.Option(1, "--workers", min=1, help="Worker processes."),
        engine: list[str] = typer.Option(
            None, "--engine", help="Only these engines (repeatable): espeak, flite, festival, piper, real."
        ),
        fps: int = typer.Option(DEFAULT_FPS, "--fps", help="Target frame rate (25 or 30)."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    ) -> None:
        """Render speech with phone timing from every available engine plus real recordings,
        draw procedural emotional ARKit targets, and write shards + manifest."""
        # deferred: the corpus builder (scipy, TTS engines; heavy), after the arguments are checked
        from emostream.training.corpus import build_corpus

        t0 = time.perf_counter()
        engines = list(engine) if engine else None
        result = build_corpus(
            out, preset=preset, seed=seed, workers=workers, engines=engines, fps=fps, progress=not quiet
        )
        m = result.manifest
        summary = {
            "out": str(out),
            "utterances": m["utterances"],
            "hours": m["hours"],
            "hours_by_engine": m["hours_by_engine"],
            "skipped_engines": m["skipped_engines"],
            "failures": len(m["failures"]),
            "build_seconds": round(time.perf_counter() - t0, 1),
        }
        typer.echo(json.dumps(summary, indent=1))
