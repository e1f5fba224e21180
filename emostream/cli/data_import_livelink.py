"""``emostream data import-livelink``: Live Link Face takes (CSV + audio) → corpus format."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from emostream.arkit import EmotionStyle
from emostream.config import DEFAULT_FPS


def register(app: typer.Typer) -> None:
    @app.command("import-livelink")
    def import_livelink_cmd(
        src: Path = typer.Argument(
            ...,
            help="Folder with Live Link Face takes (NAME.csv + NAME.mov/.wav; optional NAME.txt transcript).",
        ),
        out: Path = typer.Option(..., "--out", help="Output corpus folder (shards/ + manifest.json)."),
        emotion: str = typer.Option(
            "neutral:1", "--emotion", help="Emotion label of the takes, NAME[:0..1]."
        ),
        split: str = typer.Option(
            "train_real", "--split", help="Split to file them under: train, val, train_real, test_real."
        ),
        fps: int = typer.Option(DEFAULT_FPS, "--fps", help="Target frame rate (25 or 30)."),
        swap_mouth_lr: bool = typer.Option(
            False, "--swap-mouth-lr", help="Swap MouthLeft/MouthRight (some app versions mirror them)."
        ),
        no_phones: bool = typer.Option(False, "--no-phones", help="Skip pocketsphinx phone recognition."),
    ) -> None:
        """Convert iPhone Live Link Face recordings into the training corpus format."""
        # deferred: the importer (scipy, pocketsphinx; heavy), after the arguments are checked
        from emostream.training.livelink_import import import_livelink

        m = import_livelink(src, out, fps=fps, emotion=EmotionStyle.parse(emotion), split=split,
                            swap_mouth_lr=swap_mouth_lr, phones=not no_phones)  # fmt: skip
        typer.echo(json.dumps({"out": str(out), "utterances": m["utterances"], "hours": m["hours"]}))
