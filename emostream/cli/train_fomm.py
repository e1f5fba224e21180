"""``emostream train fomm``: self-supervised FOMM training on a directory of face videos."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from emostream.errors import DeviceError


def register(app: typer.Typer) -> None:
    @app.command("fomm")
    def train_fomm_cmd(
        videos: Path = typer.Option(
            ..., "--videos", help="Directory of training videos (mp4, mkv, avi, mov, webm)."
        ),
        config: str = typer.Option(
            "slim-256",
            "--config",
            help="FOMM YAML (official layout) or a shipped config name (slim-256, vox-256).",
        ),
        out: Path = typer.Option(..., "--out", help="Checkpoint to write (and to resume from if it exists)."),
        steps: int = typer.Option(
            20000, "--steps", help="Total optimiser steps (a resumed run continues to it)."
        ),
        batch_size: int = typer.Option(4, "--batch-size", help="Frame pairs per step."),
        lr: float = typer.Option(2e-4, "--lr", help="Adam learning rate."),
        save_every: int = typer.Option(500, "--save-every", help="Rewrite the checkpoint every N steps."),
        sample_every: int = typer.Option(
            500, "--sample-every", help="Write a sample grid PNG every N steps."
        ),
        resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from --out if it exists."),
        seed: int = typer.Option(0, "--seed", help="Random seed."),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
        threads: int = typer.Option(2, "--threads", help="torch CPU threads."),
    ) -> None:
        """Train FOMM (keypoint detector + generator) by reconstructing frames of the videos."""
        # deferred: torch and the trainer (heavy), after the arguments are checked
        import torch

        from emostream.models.fomm.config import load_config
        from emostream.training.train_fomm import FommTrainConfig, load_videos, train_fomm

        if device == "cuda" and not torch.cuda.is_available():
            raise DeviceError("--device cuda was asked for but torch sees no CUDA GPU")
        torch.set_num_threads(threads)
        model_cfg = load_config(config)
        clips = load_videos(videos, model_cfg.image_size)
        cfg = FommTrainConfig(
            steps=steps, batch_size=batch_size, lr=lr, save_every=save_every, sample_every=sample_every,
            seed=seed, device=device,
        )  # fmt: skip
        hist = train_fomm(clips, model_cfg, out, cfg, resume=resume)
        last = hist[-1] if hist else {}
        typer.echo(json.dumps({"out": str(out), "videos": len(clips), "steps_run": len(hist), **last}))
