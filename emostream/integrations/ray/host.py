"""The session host: one per Ray actor, loads the engine once and runs up to N sessions.

The host answers offers with its own aiortc peers (``AvatarServer.answer_offer``, the same
code as the single-process server), so a session's media flows directly between the browser
and the host's node; the front only relays the SDP. Portraits arrive as PNG bytes from Ray's
object store and are written once per host under its own folder.

The class is plain Python; ``front.py`` turns it into an actor with ``ray.remote`` and its
resources. It runs as an async actor: every method runs on one event loop, which also drives
the peers' tasks between calls.
"""

from __future__ import annotations

import hashlib
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from emostream.arkit import EmotionStyle
from emostream.errors import ImageError
from emostream.integrations.ray.placement import HostLoad
from emostream.render.framing import Framing
from emostream.streaming.heap import freeze_loaded_objects, limit_arenas
from emostream.streaming.webrtc.server import (
    AvatarServer,
    Offer,
    OfferRejected,
    ServerConfig,
    SessionFactory,
    busy_message,
)


@dataclass(frozen=True)
class EngineSpec:
    """What every host loads (the ``emostream serve`` engine options)."""

    renderer: str = "analytic"
    size: int = 256
    device: str = "cpu"
    #: Crop and output size of the frames (``--crop``/``--max-side``); None: the engine's default.
    framing: Framing | None = None


@dataclass(frozen=True)
class HostEngine:
    """What a host runs sessions with."""

    factory: SessionFactory
    fps: int
    #: Longest side of the output frames (sets the pinned video bitrate).
    frame_size: int


#: EngineSpec + the default portrait's path on the host (None: the bundled one) → HostEngine.
FactoryBuilder = Callable[[EngineSpec, Path | None], HostEngine]


def engine_factory(spec: EngineSpec, default_portrait: Path | None) -> HostEngine:
    """Load the engine once."""
    # deferred: the engine (heavy: torch, onnxruntime), loaded in the host's process only
    from emostream.engine.pipeline import Engine, EngineConfig

    config = EngineConfig(renderer=spec.renderer, size=spec.size, device=spec.device, framing=spec.framing)
    engine = Engine.load(config)
    first = engine.renderer_for(default_portrait)

    def new_session(portrait: Path | None, style: EmotionStyle) -> Any:
        return engine.new_session(portrait if portrait is not None else default_portrait, emotion=style)

    return HostEngine(new_session, engine.fps, max(first.width, first.height))


class SessionHost:
    """Up to ``config.max_sessions`` live sessions on this node."""

    def __init__(
        self,
        name: str,
        config: ServerConfig,
        spec: EngineSpec,
        default_portrait: bytes | None = None,
        build: FactoryBuilder = engine_factory,
    ) -> None:
        limit_arenas()  # this actor's process serves sessions for hours: flat memory
        self.name = name
        self.incarnation = uuid.uuid4().hex[:12]
        self.node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
        self._tmp = tempfile.TemporaryDirectory(prefix=f"emostream-host-{name}-")
        self.folder = Path(self._tmp.name)
        default = self._write_portrait("default", default_portrait) if default_portrait else None
        built = build(spec, default)
        cfg = ServerConfig(
            host=config.host,
            max_sessions=config.max_sessions,
            ice_servers=config.ice_servers,
            fps=built.fps,
            connect_timeout_s=config.connect_timeout_s,
            lead_s=config.lead_s,
            upload_dir=self.folder,
            frame_size=built.frame_size,
        )
        self.server = AvatarServer(cfg, built.factory, id_prefix=f"{name}.{self.incarnation[:4]}.")
        freeze_loaded_objects()  # the engine is loaded: the collections after sessions skip it
        self._pending = 0

    def _write_portrait(self, pid: str, png: bytes) -> Path:
        path = self.folder / f"{pid}.png"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(png)
            tmp.replace(path)
        return path

    def portrait_path(self, pid: str, png: bytes) -> Path:
        """The host's copy of a shared portrait (written on first use, named by its id)."""
        if len(pid) != 16 or any(c not in "0123456789abcdef" for c in pid):
            raise ImageError(f"bad portrait id {pid!r}")
        return self._write_portrait(pid, png)

    def load(self) -> HostLoad:
        return HostLoad(
            host=self.name,
            node=self.node,
            sessions=len(self.server.peers) + self._pending,
            capacity=self.server.config.max_sessions,
            incarnation=self.incarnation,
        )

    async def report(self) -> HostLoad:
        return self.load()

    async def offer(
        self, sdp: str, emotion: str, intensity: float, pid: str | None, png: bytes | None
    ) -> tuple[int, dict[str, Any], HostLoad]:
        """``(HTTP status, body, load after)``: 200 with the answer, 400 for what the client
        sent, 503 when this host is full (the front then tries another)."""
        if len(self.server.peers) + self._pending >= self.server.config.max_sessions:
            return 503, {"error": busy_message(self.server.config.max_sessions)}, self.load()
        self._pending += 1
        try:
            portrait = self.portrait_path(pid, png) if pid and png is not None else None
            answer = await self.server.answer_offer(Offer(sdp, EmotionStyle(emotion, intensity)), portrait)
        except (OfferRejected, ImageError) as e:
            return 400, {"error": str(e)}, self.load()
        finally:
            self._pending -= 1
        answer["host"] = self.name
        answer["node"] = self.node
        return 200, answer, self.load()

    async def peer_ids(self) -> list[str]:
        return sorted(self.server.peers)

    async def cached_portraits(self) -> dict[str, str]:
        """Portrait id → SHA-256 of this host's copy (the shared portraits it has used)."""
        return {
            p.stem: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(self.folder.glob("*.png"))
            if p.stem != "default"
        }

    async def close_all(self) -> None:
        await self.server.close_all()
