"""``emostream eval ...``: Evaluate motion and rendering quality (JSON metrics).

Each command lives in its own module
(emostream.cli.eval_<name>) exposing ``register(app)``; list it in SUBCOMMAND_MODULES."""

from __future__ import annotations

import importlib

import typer

HELP = "Evaluate motion and rendering quality (JSON metrics)."

#: Modules emostream.cli.eval_<name>, each with ``register(app: typer.Typer)``.
SUBCOMMAND_MODULES: tuple[str, ...] = ("motion", "lip", "render")


def register(app: typer.Typer) -> None:
    sub = typer.Typer(no_args_is_help=True, help=HELP)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"emostream.cli.eval_{name}").register(sub)
    app.add_typer(sub, name="eval")
