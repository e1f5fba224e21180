"""``emostream agent``: the local talking bot (Pipecat + SmallWebRTC + piper) and its page."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import typer

from emostream.arkit import EmotionStyle
from emostream.errors import ConfigError, DependencyError, InputError
from emostream.streaming.heap import limit_arenas


def register(app: typer.Typer) -> None:
    @app.command("agent")
    def agent(
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        port: int = typer.Option(8090, "--port", min=1, max=65535, help="TCP port of the page."),
        image: Path | None = typer.Option(
            None, "--image", help="Portrait photo (default: the bundled portrait)."
        ),
        emotion: str = typer.Option("neutral", "--emotion", help="Emotion NAME[:0..1] to start with."),
        max_sessions: int = typer.Option(
            1, "--max-sessions", min=1, help="Concurrent browser sessions; more get HTTP 503."
        ),
        renderer: str = typer.Option("analytic", "--renderer", help="Renderer: analytic or fomm."),
        size: int = typer.Option(256, "--size", help="Output frame size in pixels (square)."),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    ) -> None:
        """Talk through the avatar in the browser: open http://HOST:PORT, type a line; a local
        voice (piper) says it and the avatar speaks it. Needs the pipecat extra."""
        limit_arenas()  # before the threads that allocate start (flat memory over hours)
        if image is not None and not image.is_file():
            raise InputError("portrait image not found", image)
        style = EmotionStyle.parse(emotion)
        # deferred: OpenCV (heavy), loaded by the renderer factory
        from emostream.render.factory import RENDERERS

        if renderer not in RENDERERS:
            raise ConfigError(f"unknown renderer {renderer!r}; choose one of {', '.join(RENDERERS)}")
        # deferred: the engine (torch / onnxruntime, heavy), after the argument checks
        from emostream.engine.pipeline import Engine, EngineConfig

        engine_config = EngineConfig(renderer=renderer, size=size, device=device)  # validates first
        # deferred: pipecat and its logger loguru (the optional pipecat extra)
        try:
            from loguru import logger

            logger.remove()  # pipecat logs at import: keep stderr to warnings and errors
            logger.add(sys.stderr, level="WARNING")
            # deferred: pipecat (optional dependency)
            from emostream.integrations import pipecat_bot
        except ImportError as e:
            raise DependencyError(
                f"emostream agent needs the pipecat extra ({e.name} is missing): "
                "pip install 'emostream[pipecat]'"
            ) from e
        engine = Engine.load(engine_config)
        config = pipecat_bot.BotConfig(
            host=host, port=port, portrait=image, emotion=style.name, intensity=style.intensity,
            max_sessions=max_sessions,
        )  # fmt: skip
        server = pipecat_bot.BotServer(engine, config)
        typer.echo(f"emostream agent: open http://{host}:{port}/ (max {max_sessions} sessions)")
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(pipecat_bot.serve(server))
