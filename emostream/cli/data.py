"""``emostream data ...``: Build, inspect and import training corpora.

Each command lives in its own module
(emostream.cli.data_<name>) exposing ``register(app)``; list it in SUBCOMMAND_MODULES."""

from __future__ import annotations

import importlib

import typer

HELP = "Build, inspect and import training corpora."

#: Modules emostream.cli.data_<name>, each with ``register(app: typer.Typer)``.
SUBCOMMAND_MODULES: tuple[str, ...] = ("build", "show", "check", "import_livelink")


def register(app: typer.Typer) -> None:
    sub = typer.Typer(no_args_is_help=True, help=HELP)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"emostream.cli.data_{name}").register(sub)
    app.add_typer(sub, name="data")
