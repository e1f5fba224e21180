"""``emostream train lip-ensemble``: average trained lip refiners into one calibrated ensemble."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import typer

from emostream.config import DEFAULT_FPS
from emostream.errors import ConfigError


def register(app: typer.Typer) -> None:
    @app.command("lip-ensemble")
    def train_lip_ensemble(
        member: list[Path] = typer.Option(
            ..., "--member", help="A trained lip refiner checkpoint (repeat: 2 or more)."
        ),
        data: Path = typer.Option(..., "--data", help="The corpus the members were trained on."),
        out: Path = typer.Option(
            ..., "--out", help="Ensemble checkpoint NAME (NAME.safetensors + NAME.json)."
        ),
        mae_tolerance: float = typer.Option(
            0.05,
            "--mae-tolerance",
            help="Gate calibration: allowed relative rise of mouth MAE on each validation set.",
        ),
        half: bool = typer.Option(False, "--half", help="Store float16 weights (as the shipped defaults)."),
        items_cache: Path | None = typer.Option(
            None, "--items-cache", help="Pickle of the prepared validation items (reused when it matches)."
        ),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
    ) -> None:
        """Average the members' mouth and closure logit, calibrate the gate on held-out validation sets."""
        # deferred: torch and the trainer (heavy), after the arguments are checked
        import torch

        from emostream.models.lip_ensemble import save_lip_ensemble
        from emostream.training.lip_ensemble import build_ensemble, load_members, validation_sets

        if not 0.0 <= mae_tolerance <= 1.0:
            raise ConfigError(f"--mae-tolerance must be in [0, 1], got {mae_tolerance}")
        torch.set_num_threads(1)
        models, metas = load_members(member)
        fps = models[0].cfg.fps
        if fps != DEFAULT_FPS:
            typer.echo(f"note: members run at {fps} fps", err=True)
        seed = int(metas[0].get("train_config", {}).get("seed", 0))
        prior = metas[0].get("prior") if models[0].cfg.prior_input else None
        sets = validation_sets(data, metas[0]["real_val_utterances"], prior, fps, seed, items_cache, progress)
        ens, record = build_ensemble(models, sets, mae_tolerance)
        argv = sys.argv
        meta = {
            "command": "emostream train lip-ensemble "
            + shlex.join(argv[argv.index("lip-ensemble") + 1 :] if "lip-ensemble" in argv else argv[1:]),
            "data": str(data),
            "members": [
                {"path": str(p), "command": m.get("command")} for p, m in zip(member, metas, strict=True)
            ],
            "real_val_utterances": metas[0]["real_val_utterances"],
            "prior": prior,
            "gate_calibration": record,
        }
        path = save_lip_ensemble(ens, out, meta, half=half)
        typer.echo(
            json.dumps({"path": str(path), "members": len(models), "gate_calibration": record["chosen"]})
        )
