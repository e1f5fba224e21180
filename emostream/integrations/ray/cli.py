"""``emostream serve --ray``: check the options, join the cluster, start the hosts, listen."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import ray
from aiohttp import web

from emostream.errors import ImageError
from emostream.integrations.ray.front import RayFront, RayOptions, connect
from emostream.integrations.ray.host import EngineSpec
from emostream.render.framing import Framing
from emostream.streaming.webrtc.guard import RateLimit
from emostream.streaming.webrtc.ice import is_loopback_host
from emostream.streaming.webrtc.portrait import check_face, decode_portrait
from emostream.streaming.webrtc.server import ServerConfig

#: Seconds the hosts may take to load the engine (and Ray to find room for them) at start.
START_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class RayServeArgs:
    address: str
    host: str
    port: int
    image: Path | None
    max_sessions: int
    ice_servers: tuple[str, ...]
    renderer: str
    size: int
    device: str
    framing: Framing | None
    sessions_per_host: int
    cpus_per_session: float
    gpus_per_session: float
    min_hosts: int
    max_hosts: int
    idle_s: float
    #: The web-safety settings of the single-process server (issue 18), applied at the front.
    allow_origins: tuple[str, ...] = ()
    token: str | None = None
    rate_limit: RateLimit = field(default_factory=RateLimit)


def portrait_png(path: Path) -> bytes:
    """The default portrait, checked like an upload (type, size, a face), as PNG bytes."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ImageError(f"cannot read the portrait ({e.strerror})", path) from e
    rgb = decode_portrait(data, str(path))
    check_face(rgb, str(path))
    ok, png = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise ImageError("cannot encode the portrait as PNG", path)
    return png.tobytes()


def serve_on_ray(args: RayServeArgs, echo: Callable[[str], None] = print) -> None:
    options = RayOptions(
        sessions_per_host=args.sessions_per_host,
        cpus_per_session=args.cpus_per_session,
        gpus_per_session=args.gpus_per_session,
        min_hosts=args.min_hosts,
        max_hosts=args.max_hosts,
        idle_s=args.idle_s,
    )  # checks the options before anything starts
    png = portrait_png(args.image) if args.image is not None else None
    spec = EngineSpec(renderer=args.renderer, size=args.size, device=args.device, framing=args.framing)
    config = ServerConfig(
        host=args.host,
        port=args.port,
        max_sessions=args.max_sessions,
        ice_servers=args.ice_servers,
        frame_size=args.size,
        allow_origins=args.allow_origins,
        token=args.token,
        rate_limit=args.rate_limit,
    )
    connect(args.address, loopback=is_loopback_host(args.host))
    try:
        front = RayFront(config, spec, options, png)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run(front, echo))
    finally:
        ray.shutdown()


async def _run(front: RayFront, echo: Callable[[str], None]) -> None:
    cfg = front.config
    runner = web.AppRunner(front.app, access_log=None)
    await runner.setup()  # starts the supervisor, which starts the hosts
    try:
        echo(f"emostream: starting {front.options.min_hosts} session host(s) on the Ray cluster")
        await front.wait_ready(front.options.min_hosts, START_TIMEOUT_S)
        site = web.TCPSite(runner, cfg.host, cfg.port)
        await site.start()
        cap = front.placement.capacity()
        echo(f"emostream: serving on http://{cfg.host}:{cfg.port}/ (Ray, {cap} sessions)")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
