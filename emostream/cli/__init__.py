"""The ``emostream`` command line. Each sub-command lives in its own module here and exposes
``register(app)``; this module wires them, maps domain errors to one line + exit code 2."""

from __future__ import annotations

import importlib
import logging
import signal
import sys
from types import FrameType

import typer
from typer._click.exceptions import ClickException  # typer vendors click

from emostream import __version__
from emostream.errors import EmostreamError

app = typer.Typer(
    name="emostream",
    help="Real-time streaming emotional talking-head avatar engine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Sub-command modules (emostream.cli.<name>), each with ``register(app: typer.Typer)``.
COMMAND_MODULES: tuple[str, ...] = (
    "probe",
    "data",
    "train",
    "eval",
    "serve",
    "demo",
    "bench",
    "stream",
    "camera",
    "render",
    "agent",
)

_state = {"debug": False, "terminated": False}
#: What typer returns (standalone_mode=False) when a command was interrupted: it turns
#: KeyboardInterrupt (Ctrl-C, and SIGTERM here) into this exit code instead of raising.
_INTERRUPTED = 130


def _version(value: bool) -> None:
    if value:
        typer.echo(f"emostream {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks and debug logs."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """emostream: a portrait photo talks back live, lips in sync, with the emotion asked for."""
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


for _name in COMMAND_MODULES:
    importlib.import_module(f"emostream.cli.{_name}").register(app)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every command unwinds the same way (finally blocks
    run, temporary files and folders are removed, no partial output is left)."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    _state["terminated"] = True
    raise Terminated()


def _interrupted() -> None:
    if _state["terminated"]:
        print("emostream: terminated", file=sys.stderr)
        sys.exit(143)
    print("emostream: interrupted", file=sys.stderr)
    sys.exit(130)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    if argv is None:  # the console script, not a test calling main() in-process
        signal.signal(signal.SIGTERM, _terminate)
    try:
        if app(args=args, standalone_mode=False) == _INTERRUPTED:
            _interrupted()
    except EmostreamError as e:
        if debug:
            raise
        print(f"emostream: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        _interrupted()
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        print("emostream: aborted", file=sys.stderr)
        sys.exit(1)
    except ClickException as e:  # usage errors (unknown command, bad option) carry their own exit code
        e.show()
        sys.exit(e.exit_code)
