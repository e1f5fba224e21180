"""``emostream train emodiff``: train the EmoDiff teacher on a corpus."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("emodiff")
    def train_emodiff(
        data: Path = typer.Option(..., "--data", help="Corpus directory (emostream data build)."),
        out: Path = typer.Option(
            ..., "--out", help="Output checkpoint NAME (writes NAME.safetensors + NAME.json)."
        ),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
        steps: int = typer.Option(4000, "--steps", help="Optimiser steps."),
        seed: int = typer.Option(0, "--seed", help="Random seed (data order, noise, init)."),
        resume: bool = typer.Option(False, "--resume", help="Continue from NAME.train.safetensors."),
        batch: int = typer.Option(32, "--batch", help="Windows per batch."),
        lr: float = typer.Option(1e-3, "--lr", help="Peak learning rate."),
        augment_copies: int = typer.Option(
            1, "--augment-copies", help="Augmented audio versions per utterance."
        ),
        window: int = typer.Option(24, "--window", help="Window length W in frames."),
        d_model: int = typer.Option(96, "--d-model", help="Transformer width."),
        layers: int = typer.Option(3, "--layers", help="Transformer blocks."),
        threads: int = typer.Option(
            1, "--threads", help="torch CPU threads (1 is fastest on a busy machine)."
        ),
        mouth_weight: float = typer.Option(
            1.0, "--mouth-weight", help="Loss weight of the 27 mouth dimensions (others 1)."
        ),
        max_utts: int = typer.Option(
            0, "--max-utts", help="Use at most this many training utterances (0: all)."
        ),
    ) -> None:
        """Train the EmoDiff diffusion teacher (v-prediction, sliding-window prefix conditioning)."""
        # deferred: torch and the trainer (heavy), after the arguments are checked
        import torch

        from emostream.training.corpus import read_manifest
        from emostream.training.train_emodiff import TrainConfig, load_clips, silence_features, train

        torch.set_num_threads(threads)
        manifest = read_manifest(data)
        fps = int(manifest.get("fps", 25))
        t0 = time.time()
        clips = load_clips(data, ("train", "train_real"), augment_copies, seed, max_utts or None)
        val = load_clips(data, ("val",), 0, seed, 16)
        typer.echo(f"loaded {len(clips)} training utterances in {time.time() - t0:.0f} s", err=True)
        cfg = TrainConfig(
            steps=steps,
            batch=batch,
            lr=lr,
            seed=seed,
            augment_copies=augment_copies,
            mouth_loss_weight=mouth_weight,
            model={"window": window, "d_model": d_model, "n_layers": layers},
        )
        extra = {"fps": fps, "data": str(data), "data_hours": manifest.get("hours")}
        _, hist = train(
            clips,
            val,
            out,
            cfg,
            silence=silence_features(fps),
            device=device,
            resume=resume,
            extra_meta=extra,
        )
        typer.echo(
            json.dumps(
                {"out": str(out), "final": hist[-1] if hist else None, "seconds": round(time.time() - t0)}
            )
        )
