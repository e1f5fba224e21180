"""``emostream train classifier``: the emotion classifier that judges generated motion."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("classifier")
    def train_classifier_cmd(
        data: Path = typer.Option(..., "--data", help="Corpus directory."),
        out: Path = typer.Option(..., "--out", help="Output checkpoint NAME."),
        steps: int = typer.Option(1500, "--steps", help="Optimiser steps."),
        seed: int = typer.Option(0, "--seed", help="Random seed."),
        redraws: int = typer.Option(1, "--redraws", help="Extra target redraws per training utterance."),
        threads: int = typer.Option(
            1, "--threads", help="torch CPU threads (1 is fastest on a busy machine)."
        ),
    ) -> None:
        """Train the 8-way emotion classifier on corpus targets; prints its held-out accuracy."""
        # deferred: torch and the trainer (heavy), after the arguments are checked
        import torch

        from emostream.training.corpus import load_corpus
        from emostream.training.targets import redraw_targets
        from emostream.training.train_classifier import ClassifierTrainConfig, train_classifier

        torch.set_num_threads(threads)
        tr_x, tr_y, va_x, va_y = [], [], [], []
        for u in load_corpus(data):
            if u.split in ("train", "train_real"):
                tr_x.append(u.targets)
                tr_y.append(u.emotion.index)
                for r in range(redraws):
                    tr_x.append(redraw_targets(u, u.seed + 7919 * (r + 1)))
                    tr_y.append(u.emotion.index)
            elif u.split == "val":
                va_x.append(u.targets)
                va_y.append(u.emotion.index)
        cfg = ClassifierTrainConfig(steps=steps, seed=seed)
        _, meta = train_classifier(tr_x, tr_y, va_x, va_y, out, cfg, extra_meta={"data": str(data)})
        typer.echo(
            json.dumps(
                {
                    "out": str(out),
                    "val_accuracy": meta["val_accuracy"],
                    "n_val": meta["n_val"],
                    "train_accuracy": meta["train_accuracy"],
                }
            )
        )
