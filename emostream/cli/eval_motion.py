"""``emostream eval motion``: EmoDiff motion metrics as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("motion")
    def eval_motion(
        data: Path = typer.Option(..., "--data", help="Corpus directory (uses its val or test_real split)."),
        ckpt: Path = typer.Option(
            None, "--ckpt", help="EmoDiff checkpoint NAME (default: the shipped distilled weights)."
        ),
        sampler_steps: int = typer.Option(0, "--sampler-steps", help="DDIM steps (0: the checkpoint's own)."),
        hop: int = typer.Option(
            0, "--hop", help="Sliding-window hop in frames (0: the checkpoint's own; lower = less latency)."
        ),
        real: bool = typer.Option(False, "--real", help="Evaluate on held-out real speech (test_real)."),
        no_refiner: bool = typer.Option(False, "--no-refiner", help="Do not apply the lip refiner."),
        refiner: Path = typer.Option(
            None, "--refiner", help="Lip refiner checkpoint (default: shipped weights)."
        ),
        classifier: Path = typer.Option(
            None, "--classifier", help="Emotion classifier checkpoint (default: shipped)."
        ),
        teacher: Path = typer.Option(
            None, "--teacher", help="Teacher checkpoint for teacher_gap (default: the checkpoint's)."
        ),
        max_utts: int = typer.Option(
            40, "--max-utts", help="Utterances evaluated (round-robin over emotions)."
        ),
        backend: str = typer.Option("torch", "--backend", help="torch or onnx."),
        plots: Path = typer.Option(
            None, "--plots", help="Write generated-vs-target curves per emotion here."
        ),
        as_json: bool = typer.Option(True, "--json/--no-json", help="Print the metrics as JSON."),
    ) -> None:
        """Mouth MAE, jaw correlation, emotion accuracy, diversity, seam jerk, teacher gap, speed."""
        # deferred: the motion evaluation (torch; heavy), after the arguments are checked
        from emostream.training.eval_motion import evaluate

        ref: bool | str = False if no_refiner else (str(refiner) if refiner is not None else True)
        res = evaluate(
            ckpt,
            data,
            steps=sampler_steps or None,
            real=real,
            refiner=ref,
            classifier=classifier,
            teacher=teacher,
            max_utts=max_utts,
            plots=plots,
            backend=backend,
            hop=hop or None,
        )
        if as_json:
            typer.echo(json.dumps(res, indent=1))
        else:
            for k, v in res.items():
                typer.echo(f"{k}: {v}")
