"""``emostream probe FILE [--json]``: describe an audio file, portrait image or Live Link CSV."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("probe")
    def probe_cmd(
        file: Path = typer.Argument(..., help="Audio file, portrait image or Live Link Face CSV."),
        as_json: bool = typer.Option(False, "--json", help="Print the description as JSON."),
        vad_seconds: float | None = typer.Option(
            None,
            "--vad-seconds",
            min=0.0,
            help="Seconds of audio to run voice activity detection over [default: the first 10 minutes].",
        ),
    ) -> None:
        """Describe FILE: audio (duration, rate, channels, codec, peak, RMS, speech fraction),
        image (size, mode, conversion) or Live Link Face CSV (frames, fps, columns)."""
        # deferred: PyAV, Pillow and onnxruntime (heavy), after the arguments are checked
        from emostream.apps.probe import PROBE_VAD_SECONDS, format_probe, probe

        result = probe(file, vad_seconds=PROBE_VAD_SECONDS if vad_seconds is None else vad_seconds)
        typer.echo(json.dumps(result, indent=2) if as_json else format_probe(result))
