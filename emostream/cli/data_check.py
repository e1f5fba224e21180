"""``emostream data check``: sizes, balance and phone/audio alignment of a corpus."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("check")
    def check(
        corpus: Path = typer.Argument(..., help="Corpus folder (with manifest.json)."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
        no_vad: bool = typer.Option(False, "--no-vad", help="Skip the VAD alignment check (faster)."),
        strict: bool = typer.Option(False, "--strict", help="Exit with code 1 when problems are found."),
        workers: int = typer.Option(1, "--workers", min=1, help="Worker processes (one shard each)."),
    ) -> None:
        """Count hours per engine / emotion and flag misalignment (phones beyond the audio,
        speech phones where Silero VAD hears silence, long pauses where it hears speech)."""
        # deferred: the corpus checker (scipy, onnxruntime; heavy), after the arguments are checked
        from emostream.training.check import check_corpus

        report = check_corpus(corpus, vad=not no_vad, workers=workers)
        if as_json:
            typer.echo(json.dumps(report, indent=1))
        else:
            typer.echo(f"{report['utterances']} utterances, {report['hours']} h")
            for key in ("by_engine", "by_emotion", "by_split", "vad_speech_coverage"):
                typer.echo(f"{key}: " + ", ".join(f"{k} {v}" for k, v in report[key].items()))
            typer.echo(f"problems: {len(report['problems'])}")
            for line in report["problems"][:50]:
                typer.echo(f"  {line}")
        if strict and report["problems"]:
            raise typer.Exit(1)
