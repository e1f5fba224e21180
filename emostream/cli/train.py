"""``emostream train ...``: Train models (EmoDiff, distillation, lip refiner, FOMM, emotion classifier).

Each command lives in its own module
(emostream.cli.train_<name>) exposing ``register(app)``; list it in SUBCOMMAND_MODULES."""

from __future__ import annotations

import importlib

import typer

HELP = "Train models (EmoDiff, distillation, lip refiner, FOMM, emotion classifier)."

#: Modules emostream.cli.train_<name>, each with ``register(app: typer.Typer)``.
SUBCOMMAND_MODULES: tuple[str, ...] = ("lip", "lip_ensemble", "emodiff", "distill", "classifier", "fomm")


def register(app: typer.Typer) -> None:
    sub = typer.Typer(no_args_is_help=True, help=HELP)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"emostream.cli.train_{name}").register(sub)
    app.add_typer(sub, name="train")
