"""``emostream data show``: plot one utterance of a corpus to a PNG."""

from __future__ import annotations

from pathlib import Path

import typer

from emostream.errors import InputError


def register(app: typer.Typer) -> None:
    @app.command("show")
    def show(
        corpus: Path = typer.Argument(..., help="Corpus folder (with manifest.json)."),
        index: int = typer.Option(0, "--index", min=0, help="Utterance number (corpus order)."),
        uid: str = typer.Option("", "--uid", help="Pick the utterance by id instead (e.g. piper-000003)."),
        split: str = typer.Option("", "--split", help="Count --index within this split only."),
        output: Path = typer.Option(Path("preview.png"), "-o", "--output", help="PNG to write."),
    ) -> None:
        """Waveform, phones on a time line, jawOpen, mouthClose, smile, brows, blinks, head pose."""
        # deferred: the corpus reader and matplotlib (heavy), after the arguments are checked
        from emostream.training.corpus import load_corpus
        from emostream.training.preview import plot_utterance

        for k, utt in enumerate(load_corpus(corpus, split or None)):
            if (uid and utt.uid == uid) or (not uid and k == index):
                typer.echo(str(plot_utterance(utt, output)))
                return
        what = f"uid {uid!r}" if uid else f"index {index}"
        raise InputError(f"no utterance with {what}", corpus)
