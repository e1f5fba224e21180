"""The Ray front's placement and capacity rules, with real hosts and real aiortc clients: the
hosts run in this process behind stand-in actor handles (everything but Ray's transport), and
the placement bookkeeping on its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from browser.fakes import SyncPatternSession
from test_webrtc_server import Client, _until

from emostream.arkit import EmotionStyle
from emostream.cli import main
from emostream.integrations.ray.front import RayFront, RayOptions
from emostream.integrations.ray.host import EngineSpec, HostEngine, SessionHost
from emostream.integrations.ray.placement import HostLoad, HostSlot, Placement, ScalePolicy
from emostream.streaming.webrtc.server import ServerConfig

pytestmark = pytest.mark.timeout(120)

BUSY_2 = "Server busy: all 2 avatar sessions are in use; try again later."


def pattern_builder(spec: EngineSpec, default_portrait: Path | None) -> HostEngine:
    def factory(portrait: Path | None, style: EmotionStyle) -> SyncPatternSession:
        return SyncPatternSession(size=64)

    return HostEngine(factory, 25, 64)


# --- placement on its own ------------------------------------------------------------------
def _slot(p: Placement, name: str, sessions: int, capacity: int) -> HostSlot:
    slot = HostSlot(name, handle=None)
    p.add(slot)
    p.report(slot, HostLoad(name, f"node-{name}", sessions, capacity, "i1"), now=0.0)
    return slot


def test_placement_goes_to_the_least_loaded_host() -> None:
    p = Placement(max_sessions=9)
    _slot(p, "a", 2, 4)
    _slot(p, "b", 0, 2)
    _slot(p, "c", 1, 4)
    starting = HostSlot("d", handle=None)  # no report yet: never chosen
    p.add(starting)
    # load = (sessions + reserved) / capacity; ties: fewer sessions, then the name
    order = [p.reserve() for _ in range(5)]
    assert [s.name if s else None for s in order] == ["b", "c", "b", "a", "c"]
    assert p.live_sessions() == 8 and p.capacity() == 9
    assert [s.name if s else None for s in (p.reserve(), p.reserve())] == ["a", None], "cluster cap"
    # An answered offer: the host's report replaces the reservation.
    b = p.hosts["b"]
    p.release(b, HostLoad("b", "node-b", 1, 2, "i1"))
    assert (b.reserved, b.sessions, b.free) == (1, 1, 0)


def test_placement_skips_lost_and_full_hosts() -> None:
    p = Placement(max_sessions=10)
    a = _slot(p, "a", 0, 2)
    _slot(p, "b", 2, 2)
    p.lost(a)
    assert p.reserve() is None and p.capacity() == 2
    assert a.sessions == 0, "a lost host's sessions stop counting"
    p.report(a, HostLoad("a", "node-a", 0, 2, "i2"))  # Ray restarted it
    assert p.reserve() is a


def test_scaling_counts_sessions_within_bounds() -> None:
    policy = ScalePolicy(min_hosts=1, max_hosts=3, headroom=1, idle_s=10.0)
    p = Placement(max_sessions=100)
    assert p.scale(policy, now=0.0) == (1, []), "below the minimum"
    a = _slot(p, "a", 1, 2)
    assert p.scale(policy, now=0.0) == (0, [])
    p.report(a, HostLoad("a", "n", 2, 2, "i1"), now=1.0)  # full: no headroom left
    assert p.scale(policy, now=1.0) == (1, [])
    p.add(HostSlot("b", handle=None))  # starting: counts as coming capacity
    assert p.scale(policy, now=1.0) == (0, [])
    b = p.hosts["b"]
    p.report(b, HostLoad("b", "n", 0, 2, "i1"), now=2.0)
    _slot(p, "c", 0, 2)  # idle since 0
    assert p.scale(policy, now=5.0) == (0, []), "idle, but not for idle_s yet"
    assert p.scale(policy, now=20.0) == (0, ["c"]), "the longest idle goes; the other keeps the headroom"
    p.report(a, HostLoad("a", "n", 0, 2, "i1"), now=20.0)
    p.remove("c")
    assert p.scale(policy, now=40.0) == (0, ["b"]), "idle since 2 before a (since 20); a stays: minimum"
    with pytest.raises(ValueError):
        ScalePolicy(min_hosts=3, max_hosts=2)


# --- the front with in-process hosts -------------------------------------------------------
@dataclass
class Method:
    fn: Callable[..., Any]

    def remote(self, *args: Any) -> Any:
        return self.fn(*args)


class LocalHandle:
    """Stands in for a Ray actor handle: ``handle.method.remote(...)`` is awaitable."""

    def __init__(self, host: SessionHost, *, stuck: bool = False) -> None:
        self.host = host
        self.stuck = stuck
        self.offer = Method(self._offer)
        self.report = Method(host.report)
        self.close_all = Method(host.close_all)

    async def _offer(self, *args: Any) -> Any:
        if self.stuck:
            await asyncio.sleep(3600)
        return await self.host.offer(*args)


@dataclass
class Front:
    front: RayFront
    hosts: dict[str, SessionHost]
    url: str


async def _front(stuck: tuple[str, ...] = ()) -> tuple[Front, web.AppRunner]:
    cfg = ServerConfig(host="127.0.0.1", max_sessions=2)
    options = RayOptions(
        sessions_per_host=1, min_hosts=2, max_hosts=2, poll_s=0.1, offer_timeout_s=1.0, lost_grace_s=60
    )
    front = RayFront(cfg, EngineSpec(), options, build=pattern_builder)
    hosts: dict[str, SessionHost] = {}
    for name in ("h1", "h2"):
        hosts[name] = SessionHost(name, ServerConfig(host="127.0.0.1", max_sessions=1), EngineSpec(),
                                  build=pattern_builder)  # fmt: skip
        front.placement.add(HostSlot(name, LocalHandle(hosts[name], stuck=name in stuck)))
    runner = web.AppRunner(front.app, access_log=None)
    await runner.setup()  # starts the supervisor (min = max = the two hosts: it adds none)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await front.wait_ready(2, 10)
    return Front(front, hosts, f"http://127.0.0.1:{port}"), runner


@pytest.fixture
async def front() -> AsyncIterator[Front]:
    f, runner = await _front()
    yield f
    await runner.cleanup()


async def _health(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/health") as r:
        return await r.json()


async def test_sessions_spread_and_capacity_frees_on_mid_stream_disconnect(front: Front) -> None:
    a, b, c = Client(), Client(), Client()
    (sa, ans_a), (sb, ans_b) = await a.connect(front.url), await b.connect(front.url)
    assert (sa, sb) == (200, 200) and {ans_a["host"], ans_b["host"]} == {"h1", "h2"}
    assert (await c.connect(front.url)) == (503, {"error": BUSY_2})
    await _until(lambda: len(a.video) > 10 and len(b.video) > 10)
    health = await _health(front.url)
    assert health["sessions"] == 2 and health["max_sessions"] == 2
    assert sorted(h["sessions"] for h in health["ray"]["hosts"]) == [1, 1]

    await a.close()  # the page goes away mid-stream
    gone = ans_a["host"]
    await _until(lambda: not front.hosts[gone].server.peers, timeout=15)
    await _until(lambda: front.front.placement.hosts[gone].free == 1, timeout=5)
    assert (await _health(front.url))["sessions"] == 1
    d = Client()
    sd, ans_d = await d.connect(front.url)
    assert sd == 200 and ans_d["host"] == gone, "the freed session goes to the host that has room"
    for client in (b, c, d):
        await client.close()


async def test_a_stuck_host_does_not_block_the_others() -> None:
    f, runner = await _front(stuck=("h1",))
    try:
        a = Client()
        t = time.monotonic()
        status, answer = await a.connect(f.url)  # h1 is tried first (name order), times out
        assert status == 200 and answer["host"] == "h2"
        assert time.monotonic() - t < 5
        await _until(lambda: len(a.video) > 5)
        await a.close()
    finally:
        await runner.cleanup()


async def test_bad_offers_are_400_before_any_host(front: Front) -> None:
    async with aiohttp.ClientSession() as http:
        for body, needle in [
            (b"not json", "bad offer"),
            (b'{"sdp": "v=0", "type": "offer", "emotion": "bored"}', "unknown emotion"),
            (b'{"sdp": "v=0", "type": "offer", "portrait": "0123456789abcdef"}', "unknown portrait id"),
        ]:
            async with http.post(f"{front.url}/offer", data=body) as r:
                assert r.status == 400 and needle in (await r.json())["error"]
    assert all(not h.server.peers for h in front.hosts.values())


async def test_the_front_applies_the_web_safety_checks(front: Front) -> None:
    """Origin, token and nesting limits hold on the Ray path as on the single process (issue 18)."""
    front.front.config = replace(front.front.config, token="s3cret")
    async with aiohttp.ClientSession() as http:
        headers = {"Origin": "https://evil.example", "Authorization": "Bearer s3cret"}
        async with http.post(f"{front.url}/offer", data=b"{}", headers=headers) as r:
            assert r.status == 403
        async with http.post(f"{front.url}/portrait", data=b"x", headers=headers) as r:
            assert r.status == 403
        async with http.post(f"{front.url}/offer", data=b"{}") as r:
            assert r.status == 401
        deep, auth = b"[" * 100 + b"]" * 100, {"Authorization": "Bearer s3cret"}
        async with http.post(f"{front.url}/offer", data=deep, headers=auth) as r:
            assert r.status == 400
    assert all(not h.server.peers for h in front.hosts.values())


# --- bad input: one line, exit 2, before anything starts ------------------------------------
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--ray", "127.0.0.1:1"], "no Ray cluster at 127.0.0.1:1"),
        (["--ray", "nowhere"], "bad --ray address 'nowhere'"),
        (
            ["--ray", "auto", "--min-hosts", "3", "--max-hosts", "2"],
            "need 1 <= --min-hosts (3) <= --max-hosts (2)",
        ),
        (["--ray", "auto", "--sessions-per-host", "0"], "--sessions-per-host must be at least 1"),
    ],
)
def test_bad_ray_options_fail_fast(args: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    t = time.monotonic()
    with pytest.raises(SystemExit) as e:
        main(["serve", *args])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err
    assert time.monotonic() - t < 10
