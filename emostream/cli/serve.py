"""``emostream serve``: the WebRTC server and its browser page."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import typer

from emostream.arkit import EmotionStyle
from emostream.cli.options import crop_option, framing_from, max_side_option
from emostream.errors import InputError


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        port: int = typer.Option(8080, "--port", help="TCP port of the page and the signalling."),
        image: Path | None = typer.Option(
            None, "--image", help="Portrait photo (default: the bundled portrait)."
        ),
        max_sessions: int = typer.Option(
            4, "--max-sessions", min=1, help="Concurrent avatar sessions; more get HTTP 503."
        ),
        ice_server: list[str] = typer.Option(
            [],
            "--ice-server",
            help="STUN/TURN server URL, repeatable: stun:HOST:PORT or turn:USER:PASS@HOST:PORT "
            "(default: none, no STUN traffic).",
        ),
        renderer: str = typer.Option("analytic", "--renderer", help="Renderer: analytic or fomm."),
        size: int = typer.Option(256, "--size", help="Face working resolution: 256 or 512."),
        crop: str = crop_option(),
        max_side: int = max_side_option(live=True),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
        ray_address: str | None = typer.Option(
            None,
            "--ray",
            metavar="ADDRESS",
            help="Run the sessions on a Ray cluster: `auto` (the cluster this machine is part of), "
            "a cluster address HOST:PORT, or `local` (a new one-machine cluster). Needs the `ray` extra.",
        ),
        sessions_per_host: int = typer.Option(
            2, "--sessions-per-host", help="With --ray: sessions per session host (one engine each)."
        ),
        cpus_per_session: float = typer.Option(
            1.0, "--cpus-per-session", help="With --ray: Ray CPUs each session reserves."
        ),
        gpus_per_session: float = typer.Option(
            0.0, "--gpus-per-session", help="With --ray: fraction of a GPU each session reserves."
        ),
        min_hosts: int = typer.Option(1, "--min-hosts", help="With --ray: session hosts kept running."),
        max_hosts: int | None = typer.Option(
            None, "--max-hosts", help="With --ray: most session hosts (default: --min-hosts)."
        ),
        idle_s: float = typer.Option(
            60.0, "--host-idle-s", help="With --ray: seconds an idle host above --min-hosts is kept."
        ),
    ) -> None:
        """Serve the avatar to browsers over WebRTC: open http://HOST:PORT and speak."""
        # deferred: the engine and aiortc (heavy), after the arguments are checked
        from emostream.engine.pipeline import Engine, EngineConfig
        from emostream.engine.session import Session
        from emostream.streaming.webrtc.ice import rtc_configuration
        from emostream.streaming.webrtc.server import AvatarServer, ServerConfig
        from emostream.streaming.webrtc.server import serve as run_server

        if image is not None and not image.is_file():
            raise InputError("portrait image not found", image)
        rtc_configuration(ice_server)  # validates the URLs before anything loads
        framing = framing_from(crop, max_side)
        if ray_address is not None:
            # deferred: ray (optional dependency, the `ray` extra)
            from emostream.integrations.ray.cli import RayServeArgs, serve_on_ray

            args = RayServeArgs(
                address=ray_address, host=host, port=port, image=image, max_sessions=max_sessions,
                ice_servers=tuple(ice_server), renderer=renderer, size=size, device=device,
                framing=framing, sessions_per_host=sessions_per_host, cpus_per_session=cpus_per_session,
                gpus_per_session=gpus_per_session, min_hosts=min_hosts,
                max_hosts=max_hosts if max_hosts is not None else max(min_hosts, 1), idle_s=idle_s,
            )  # fmt: skip
            serve_on_ray(args, echo=typer.echo)
            return
        engine = Engine.load(EngineConfig(renderer=renderer, size=size, device=device, framing=framing))
        first = engine.renderer_for(image)  # prepare the portrait now: a bad image fails at start
        cfg = ServerConfig(
            host=host,
            port=port,
            max_sessions=max_sessions,
            ice_servers=tuple(ice_server),
            fps=engine.fps,
            frame_size=max(first.width, first.height),  # the bitrate's scale
        )

        def new_session(portrait: Path | None, style: EmotionStyle) -> Session:
            return engine.new_session(portrait if portrait is not None else image, emotion=style)

        server = AvatarServer(cfg, new_session)
        typer.echo(f"emostream: serving on http://{host}:{port}/ (max {max_sessions} sessions)")
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_server(server))
