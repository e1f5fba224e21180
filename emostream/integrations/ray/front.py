"""The HTTP front of ``emostream serve --ray``: the single-process server's page and API, with
the sessions on session-host actors spread over a Ray cluster.

- ``POST /offer`` is parsed here (a bad offer is a 400 without touching a host), then placed
  on the least loaded live host with a free session (``placement.Placement``) and relayed to
  it; the host's own aiortc peer answers, so media flows between the browser and that node.
  A host that is full, gone or too slow to answer is skipped and the next one tried. Beyond
  the cluster's capacity: the same 503 as the single-process server.
- ``POST /portrait`` is checked here (type, size, a face) and the PNG put in Ray's object
  store; an offer naming it hands the object to the host, which reads it from the store.
- ``GET /health``: sessions and capacity of the whole cluster, per host and per node.

Supervision (every ``poll_s``): each host reports its sessions. A host that fails to report
(node gone, process crashed or stuck) gets no new sessions and stops counting; Ray restarts a
crashed host (``max_restarts``), and its new incarnation reports with no sessions. Scaling
counts sessions: a host is added when free sessions drop below ``headroom`` (up to
``max_hosts``) and an idle host removed after ``idle_s`` (down to ``min_hosts``). Ray Serve's
autoscaler was not used: it counts in-flight HTTP requests, and a WebRTC session outlives its
``/offer`` request by minutes, so Serve would see idle replicas under full load. Adding
nodes for hosts that do not fit stays with Ray's cluster autoscaler (pending actors are its
resource demand).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import ray
from aiohttp import web
from ray.exceptions import ActorDiedError, RayError

from emostream.errors import ConfigError, EmostreamError
from emostream.integrations.ray.host import EngineSpec, FactoryBuilder, SessionHost, engine_factory
from emostream.integrations.ray.placement import HostSlot, Placement, ScalePolicy
from emostream.streaming.webrtc.server import (
    MAX_OFFER_BYTES,
    AvatarServer,
    ServerConfig,
    busy_response,
    parse_offer,
    read_limited,
)

log = logging.getLogger(__name__)

#: Portraits kept as objects in Ray's store (least recently used dropped; put again from disk).
MAX_SHARED_PORTRAITS = 32


@dataclass(frozen=True)
class RayOptions:
    sessions_per_host: int = 2
    #: Ray resources each session reserves; a host reserves ``sessions_per_host`` times these.
    cpus_per_session: float = 1.0
    gpus_per_session: float = 0.0
    min_hosts: int = 1
    max_hosts: int = 1
    headroom: int = 1
    idle_s: float = 60.0
    poll_s: float = 0.5
    #: A host that has not reported within this is skipped (its node is gone or it is stuck).
    report_timeout_s: float = 3.0
    offer_timeout_s: float = 20.0
    #: A host lost this long is killed and replaced.
    lost_grace_s: float = 30.0
    max_restarts: int = 3

    def __post_init__(self) -> None:
        if self.sessions_per_host < 1:
            raise ConfigError(f"--sessions-per-host must be at least 1, got {self.sessions_per_host}")
        if self.cpus_per_session < 0 or self.gpus_per_session < 0:
            raise ConfigError("--cpus-per-session and --gpus-per-session must not be negative")
        if not 1 <= self.min_hosts <= self.max_hosts:
            raise ConfigError(f"need 1 <= --min-hosts ({self.min_hosts}) <= --max-hosts ({self.max_hosts})")

    def policy(self) -> ScalePolicy:
        return ScalePolicy(self.min_hosts, self.max_hosts, self.headroom, self.idle_s)

    def actor_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "num_cpus": self.cpus_per_session * self.sessions_per_host,
            "max_restarts": self.max_restarts,
            "max_task_retries": 0,
            "scheduling_strategy": "SPREAD",
        }
        if self.gpus_per_session > 0:
            opts["num_gpus"] = self.gpus_per_session * self.sessions_per_host
        return opts


def _no_local_sessions(portrait: Path | None, style: object) -> Any:
    raise AssertionError("the Ray front runs no sessions itself")


class RayFront(AvatarServer):
    """The page, signalling and portraits of ``AvatarServer``; sessions on Ray actors."""

    def __init__(
        self,
        config: ServerConfig,
        spec: EngineSpec,
        options: RayOptions,
        default_portrait: bytes | None = None,
        build: FactoryBuilder = engine_factory,
    ) -> None:
        super().__init__(config, _no_local_sessions)
        self.spec = spec
        self.options = options
        self.policy = options.policy()
        self.build = build
        self.placement = Placement(config.max_sessions)
        self.default_ref = ray.put(default_portrait) if default_portrait is not None else None
        self._shared: OrderedDict[str, ray.ObjectRef] = OrderedDict()
        self._names = itertools.count(1)
        self._lost_since: dict[str, float] = {}
        self._actor = ray.remote(SessionHost).options(**options.actor_options())
        self._supervisor: asyncio.Task[None] | None = None
        #: Why hosts died before their first report (e.g. a renderer or device a node lacks).
        self.start_failures: deque[str] = deque(maxlen=8)
        self.app.on_startup.append(self._on_startup)

    # --- hosts ----------------------------------------------------------------------------
    def _start_host(self) -> HostSlot:
        name = f"h{next(self._names)}"
        config = replace(self.config, max_sessions=self.options.sessions_per_host)
        handle = self._actor.remote(name, config, self.spec, self.default_ref, self.build)
        slot = HostSlot(name, handle)
        self.placement.add(slot)
        log.info("ray: starting session host %s", name)
        return slot

    async def _report(self, slot: HostSlot) -> None:
        try:
            load = await asyncio.wait_for(slot.handle.report.remote(), self.options.report_timeout_s)
        except ActorDiedError as e:
            reason = _last_line(e)
            log.warning("ray: host %s died for good: %s", slot.name, reason)
            if slot.load is None:
                self.start_failures.append(reason)
            self._drop(slot)
            return
        except (RayError, TimeoutError) as e:
            if slot.load is None and time.monotonic() - slot.started < self.options.lost_grace_s * 4:
                return  # still starting (loading the engine, or waiting for resources)
            if slot.alive:
                log.warning("ray: host %s stopped answering (%s)", slot.name, type(e).__name__)
            self.placement.lost(slot)
            since = self._lost_since.setdefault(slot.name, time.monotonic())
            if time.monotonic() - since > self.options.lost_grace_s:
                self._drop(slot)
            return
        self._lost_since.pop(slot.name, None)
        if slot.load is not None and slot.load.incarnation != load.incarnation:
            log.warning("ray: host %s was restarted (its sessions were lost)", slot.name)
        elif slot.load is None:
            log.info("ray: host %s ready on node %s", slot.name, load.node[:8])
        self.placement.report(slot, load)

    def _drop(self, slot: HostSlot) -> None:
        self.placement.remove(slot.name)
        self._lost_since.pop(slot.name, None)
        if isinstance(slot.handle, ray.actor.ActorHandle):
            with contextlib.suppress(RayError):
                ray.kill(slot.handle, no_restart=True)

    async def supervise_once(self) -> None:
        await asyncio.gather(*(self._report(s) for s in list(self.placement.hosts.values())))
        add, remove = self.placement.scale(self.policy)
        for _ in range(add):
            self._start_host()
        for name in remove:
            slot = self.placement.hosts[name]
            log.info("ray: removing idle host %s", name)
            self.placement.lost(slot)  # no new session may land on it while it closes
            with contextlib.suppress(RayError, TimeoutError):
                await asyncio.wait_for(slot.handle.close_all.remote(), self.options.report_timeout_s)
            self._drop(slot)

    async def _supervise(self) -> None:
        while True:
            try:
                await self.supervise_once()
            except Exception:
                log.exception("ray: supervision round failed")
            await asyncio.sleep(self.options.poll_s)

    async def _on_startup(self, app: web.Application) -> None:
        self._supervisor = asyncio.create_task(self._supervise(), name="ray-supervisor")

    async def wait_ready(self, hosts: int, timeout_s: float) -> None:
        """Until ``hosts`` hosts report (the CLI waits for ``min_hosts`` before listening; the
        supervisor, started with the app, starts them)."""
        end = time.monotonic() + timeout_s
        while sum(s.alive for s in self.placement.hosts.values()) < hosts:
            if len(self.start_failures) >= max(2, hosts):
                raise EmostreamError(f"session hosts fail to start: {self.start_failures[-1]}")
            if time.monotonic() > end:
                raise EmostreamError(
                    f"only {sum(s.alive for s in self.placement.hosts.values())} of {hosts} session hosts "
                    f"started within {timeout_s:.0f} s (see `ray status` for the cluster's free resources)"
                )
            await asyncio.sleep(self.options.poll_s)

    async def close_all(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        slots = list(self.placement.hosts.values())
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                asyncio.gather(*(s.handle.close_all.remote() for s in slots), return_exceptions=True),
                self.options.report_timeout_s,
            )
        for s in slots:
            self._drop(s)
        await super().close_all()

    # --- HTTP -----------------------------------------------------------------------------
    def _busy(self) -> web.Response:
        cap = self.placement.capacity()
        if cap == 0:
            return web.json_response(
                {"error": "Server starting: no avatar session host is ready yet; try again later."},
                status=503,
                headers={"Retry-After": "10"},
            )
        return busy_response(cap)

    async def offer(self, request: web.Request) -> web.Response:
        refused = self._guard(request)  # Origin, token and rate limit, as on the single process
        if refused is not None:
            return refused
        if self.placement.live_sessions() >= self.placement.capacity():
            return self._busy()
        try:
            offer = parse_offer(await read_limited(request, MAX_OFFER_BYTES))
            ref = await self._shared_ref(offer.portrait) if offer.portrait else None
        except (ValueError, TypeError) as e:
            return web.json_response({"error": f"bad offer: {e}"}, status=400)
        except EmostreamError as e:
            return web.json_response({"error": str(e)}, status=400)
        tried: set[str] = set()
        while (slot := self.placement.reserve(frozenset(tried))) is not None:
            tried.add(slot.name)
            call = slot.handle.offer.remote(
                offer.sdp, offer.style.name, offer.style.intensity, offer.portrait, ref
            )
            try:
                status, body, load = await asyncio.wait_for(call, self.options.offer_timeout_s)
            except (RayError, TimeoutError) as e:
                log.warning("ray: host %s failed an offer (%s); trying another", slot.name, type(e).__name__)
                self.placement.release(slot)
                self.placement.lost(slot)
                continue
            self.placement.release(slot, load)
            if status != 503:
                return web.json_response(body, status=status)
        return self._busy()

    async def _shared_ref(self, pid: str) -> ray.ObjectRef:
        """The object-store copy of an uploaded portrait (put again from disk if dropped)."""
        path = self.portraits.path(pid)
        if pid not in self._shared:
            loop = asyncio.get_running_loop()
            put: ray.ObjectRef = await loop.run_in_executor(None, lambda: ray.put(path.read_bytes()))
            self._shared[pid] = put
            while len(self._shared) > MAX_SHARED_PORTRAITS:
                self._shared.popitem(last=False)
        self._shared.move_to_end(pid)
        return self._shared[pid]

    async def portrait_added(self, pid: str) -> None:
        await self._shared_ref(pid)  # into the object store now, for the hosts

    def cluster_health(self) -> dict[str, Any]:
        hosts = []
        nodes: dict[str, dict[str, int]] = {}
        for s in self.placement.hosts.values():
            entry: dict[str, Any] = {"host": s.name, "alive": s.alive, "sessions": s.busy}
            if s.load is not None:
                entry |= {"node": s.load.node, "capacity": s.capacity}
                if s.alive:
                    n = nodes.setdefault(s.load.node, {"sessions": 0, "capacity": 0, "hosts": 0})
                    n["sessions"] += s.busy
                    n["capacity"] += s.capacity
                    n["hosts"] += 1
            hosts.append(entry)
        return {
            "sessions": self.placement.live_sessions(),
            "max_sessions": self.placement.capacity(),
            "ray": {
                "hosts": hosts,
                "nodes": nodes,
                "session_cap": self.config.max_sessions,
                "options": asdict(self.options),
            },
        }

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response(self.cluster_health())


def _last_line(e: BaseException) -> str:
    """The last non-empty line of a Ray error (its cause; Ray prepends the remote traceback)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(e).__name__


def connect(address: str, *, loopback: bool) -> None:
    """Join the Ray cluster at ``address`` (``auto``: the local node's cluster; ``local``: a new
    single-node cluster in this process). A clear EmostreamError when there is none."""
    if address not in ("auto", "local"):
        check_reachable(address)
    kw: dict[str, Any] = {"logging_level": logging.WARNING, "configure_logging": False}
    if loopback:
        kw["_node_ip_address"] = "127.0.0.1"
    if address == "local":
        kw["include_dashboard"] = False  # "local": always a new cluster, never a running one
    kw["address"] = address
    try:
        ray.init(**kw)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise EmostreamError(
            f"cannot join the Ray cluster at {address!r} ({e}); start one with `ray start --head`"
        ) from e


def check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Fail fast with one clear line when nothing listens at a cluster address HOST:PORT (Ray's
    own client retries for a minute before giving up)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"bad --ray address {address!r}; expected HOST:PORT, auto or local")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise EmostreamError(
            f"no Ray cluster at {address} ({e.strerror or e}); start one with `ray start --head`"
        ) from e
