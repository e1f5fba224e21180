"""``emostream serve``: the WebRTC server and its browser page."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import typer

from emostream.arkit import EmotionStyle
from emostream.cli import options
from emostream.errors import ConfigError
from emostream.streaming.heap import limit_arenas

#: Environment variable holding the bearer token (instead of ``--token`` on the command line,
#: where other users of the machine can read it).
TOKEN_ENV = "EMOSTREAM_TOKEN"


def parse_max_sessions(value: str) -> int | None:
    """``auto`` → None (calibrate), else a positive integer."""
    if value == "auto":
        return None
    try:
        n = int(value)
    except ValueError as e:
        raise ConfigError(f"--max-sessions must be 'auto' or a positive integer, got {value!r}") from e
    if n < 1:
        raise ConfigError(f"--max-sessions must be 'auto' or a positive integer, got {value!r}")
    return n


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        port: int = typer.Option(8080, "--port", help="TCP port of the page and the signalling."),
        image: Path | None = options.IMAGE,
        renderer: str = options.RENDERER,
        size: int = options.SIZE,
        device: str = options.DEVICE,
        checkpoint: Path | None = options.CHECKPOINT,
        config: Path | None = options.CONFIG,
        crop: str = options.crop_option(),
        max_side: int = options.max_side_option(live=True),
        max_sessions: str = typer.Option(
            "auto",
            "--max-sessions",
            help="Concurrent avatar sessions, or auto: what this machine holds at this size and fps "
            "(a one-second calibration at start). More get HTTP 503.",
        ),
        ice_server: list[str] = typer.Option(
            [],
            "--ice-server",
            help="STUN/TURN server URL, repeatable: stun:HOST:PORT or turn:USER:PASS@HOST:PORT "
            "(default: none, no STUN traffic).",
        ),
        allow_origin: list[str] = typer.Option(
            [],
            "--allow-origin",
            help="Web origin (scheme://host[:port]) allowed to call /offer and /portrait besides the "
            "server's own; repeatable; * allows any.",
        ),
        token: str | None = typer.Option(
            None,
            "--token",
            envvar=TOKEN_ENV,
            show_envvar=True,
            help="Require 'Authorization: Bearer TOKEN' on /offer and /portrait (the page takes it "
            "from #token=TOKEN in its address).",
        ),
        rate_limit: float = typer.Option(
            60.0,
            "--rate-limit",
            min=0.0,
            help="Requests per minute per client address on /offer and /portrait (bursts of 20); 0: off.",
        ),
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
        limit_arenas()  # before the threads that allocate start (flat memory over hours)
        # deferred: aiortc (heavy), after the arguments are checked
        from emostream.streaming.webrtc.guard import RateLimit
        from emostream.streaming.webrtc.ice import rtc_configuration
        from emostream.streaming.webrtc.server import AvatarServer, ServerConfig, check_listen
        from emostream.streaming.webrtc.server import serve as run_server

        opts = options.RendererOptions(
            image=image, renderer=renderer, size=size, device=device, checkpoint=checkpoint,
            config=config, crop=crop, max_side=max_side,
        ).check()  # fmt: skip
        wanted = parse_max_sessions(max_sessions)
        if token is not None and not token.strip():
            raise ConfigError(f"--token (or {TOKEN_ENV}) must not be empty")
        rtc_configuration(ice_server)  # validates the URLs before anything loads
        check_listen(host, port)  # a bad host or a port in use fails now, not after loading
        if ray_address is not None:
            # deferred: ray (optional dependency, the `ray` extra)
            from emostream.integrations.ray.cli import RayServeArgs, serve_on_ray

            hosts = max_hosts if max_hosts is not None else max(min_hosts, 1)
            args = RayServeArgs(
                address=ray_address, host=host, port=port, image=image,
                max_sessions=wanted if wanted is not None else sessions_per_host * hosts,
                ice_servers=tuple(ice_server), renderer=renderer, size=size, device=device,
                framing=opts.framing(), sessions_per_host=sessions_per_host,
                cpus_per_session=cpus_per_session, gpus_per_session=gpus_per_session,
                min_hosts=min_hosts, max_hosts=hosts, idle_s=idle_s,
                allow_origins=tuple(allow_origin), token=token.strip() if token else None,
                rate_limit=RateLimit(per_minute=rate_limit),
            )  # fmt: skip
            serve_on_ray(args, echo=typer.echo)
            return
        opts.check_portrait()  # the image and its face, before the models load
        # deferred: torch, onnxruntime (the engine), after the arguments are checked
        from emostream.engine.pipeline import Engine, EngineConfig
        from emostream.engine.session import Session

        engine = Engine.load(EngineConfig(**opts.engine_kwargs()))
        first = engine.renderer_for(image)  # prepare the portrait now: a bad image fails at start
        if wanted is None:
            # deferred: the calibration's aiortc encoder, only for --max-sessions auto
            from emostream.streaming.webrtc.capacity import calibrate

            cap = calibrate(engine, image)
            wanted = cap.sessions
            typer.echo(f"emostream: capacity {cap.describe()}", err=True)
        cfg = ServerConfig(
            host=host,
            port=port,
            max_sessions=wanted,
            ice_servers=tuple(ice_server),
            fps=engine.fps,
            frame_size=max(first.width, first.height),  # the bitrate's scale
            allow_origins=tuple(allow_origin),
            token=token.strip() if token else None,
            rate_limit=RateLimit(per_minute=rate_limit),
        )

        def new_session(portrait: Path | None, style: EmotionStyle) -> Session:
            return engine.new_session(portrait if portrait is not None else image, emotion=style)

        server = AvatarServer(cfg, new_session)

        def ready() -> None:
            typer.echo(f"emostream: serving on http://{host}:{port}/ (max {wanted} sessions)")

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_server(server, on_ready=ready))
