"""``emostream train distill``: progressive distillation of an EmoDiff teacher to few steps."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from emostream.errors import InputError


def register(app: typer.Typer) -> None:
    @app.command("distill")
    def train_distill(
        teacher: Path = typer.Option(
            ..., "--teacher", help="Teacher checkpoint NAME (or a previous student)."
        ),
        out: Path = typer.Option(..., "--out", help="Output checkpoint NAME."),
        data: Path = typer.Option(
            None, "--data", help="Corpus directory (default: the teacher's training data)."
        ),
        sampler_steps: int = typer.Option(4, "--sampler-steps", help="Student DDIM steps (teacher's / 2^k)."),
        teacher_steps: int = typer.Option(
            0, "--teacher-steps", help="Teacher steps (0: its own sampler_steps)."
        ),
        iters: int = typer.Option(800, "--iters", help="Optimiser steps per halving round."),
        batch: int = typer.Option(32, "--batch", help="Windows per batch."),
        seed: int = typer.Option(0, "--seed", help="Random seed."),
        guidance_audio: float = typer.Option(
            None, "--guidance-audio", help="Teacher audio CFG scale baked in (default: the teacher's meta)."
        ),
        guidance_style: float = typer.Option(
            None, "--guidance-style", help="Teacher style CFG scale baked in (default: the teacher's meta)."
        ),
        audio_mouth_only: bool = typer.Option(
            None,
            "--audio-mouth-only/--audio-all",
            help="Apply the audio scale to the mouth only (default: the teacher's meta).",
        ),
        augment_copies: int = typer.Option(
            1, "--augment-copies", help="Augmented audio versions per utterance."
        ),
        threads: int = typer.Option(
            1, "--threads", help="torch CPU threads (1 is fastest on a busy machine)."
        ),
        max_utts: int = typer.Option(0, "--max-utts", help="Use at most this many utterances (0: all)."),
    ) -> None:
        """Distill the teacher to --sampler-steps DDIM steps (progressive distillation)."""
        # deferred: torch and the trainer (heavy), after the arguments are checked
        import torch

        from emostream.models.emodiff import load_emodiff
        from emostream.training.distill import DistillConfig, distill
        from emostream.training.train_emodiff import load_clips

        torch.set_num_threads(threads)
        model, meta = load_emodiff(teacher)
        root = data if data is not None else meta.get("data")
        if root is None:
            raise InputError("the teacher's meta names no training data; pass --data")
        t0 = time.time()
        clips = load_clips(root, ("train", "train_real"), augment_copies, seed, max_utts or None)
        cfg = DistillConfig(
            sampler_steps=sampler_steps,
            teacher_steps=teacher_steps or None,
            iters_per_round=iters,
            batch=batch,
            seed=seed,
            guidance_audio=guidance_audio,
            guidance_style=guidance_style,
            guidance_audio_mouth_only=audio_mouth_only,
        )
        _, m = distill(model, {**meta, "data": str(root)}, clips, out, cfg, teacher_path=str(teacher))
        typer.echo(json.dumps({"out": str(out), "rounds": m["rounds"], "seconds": round(time.time() - t0)}))
