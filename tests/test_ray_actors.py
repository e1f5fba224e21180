"""The Ray front with real session-host actors on a local one-node Ray cluster: portraits
shared through the object store, and a crashed host restarted by Ray."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import browser.fakes
import pytest
import ray
from aiohttp import web
from ray_cluster import AUTH
from test_webrtc_server import Client, _until

from emostream.arkit import EmotionStyle
from emostream.assets import asset_path
from emostream.errors import DeviceError, EmostreamError
from emostream.integrations.ray.front import RayFront, RayOptions, connect
from emostream.integrations.ray.host import EngineSpec, HostEngine
from emostream.streaming.webrtc.server import ServerConfig

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
TESTS = Path(__file__).resolve().parent


def pattern_builder(spec: EngineSpec, default_portrait: Path | None) -> HostEngine:
    def factory(portrait: Path | None, style: EmotionStyle) -> browser.fakes.SyncPatternSession:
        return browser.fakes.SyncPatternSession(size=64)

    return HostEngine(factory, 25, 64)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    # The workers (started by this process's new cluster) import the test helpers from tests/.
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(TESTS.parent), saved or ""])
    os.environ.update(AUTH)  # no token file: see ray_cluster.AUTH
    try:
        connect("local", loopback=True)
        yield
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


@pytest.fixture
async def front(local_ray: None) -> AsyncIterator[tuple[RayFront, str]]:
    options = RayOptions(sessions_per_host=1, cpus_per_session=0.5, min_hosts=2, max_hosts=2, poll_s=0.2)
    f = RayFront(ServerConfig(host="127.0.0.1", max_sessions=2), EngineSpec(), options, build=pattern_builder)
    runner = web.AppRunner(f.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await f.wait_ready(2, 120)
    yield f, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_portrait_shared_with_every_host(front: tuple[RayFront, str]) -> None:
    f, url = front
    data = (asset_path("faces") / "luispedro.jpg").read_bytes()
    async with aiohttp.ClientSession() as http, http.post(f"{url}/portrait", data=data) as r:
        assert r.status == 200
        pid = (await r.json())["portrait"]
    stored = hashlib.sha256(f.portraits.path(pid).read_bytes()).hexdigest()
    clients = [Client(), Client()]
    answers = [await c.connect(url, portrait=pid) for c in clients]
    assert [s for s, _ in answers] == [200, 200]
    assert {a["host"] for _, a in answers} == {"h1", "h2"}, "one session per host, by load"
    for slot in f.placement.hosts.values():
        assert await slot.handle.cached_portraits.remote() == {pid: stored}, "the host's copy is the upload"
    for c in clients:
        await c.close()


async def test_crashed_host_is_restarted_by_ray(front: tuple[RayFront, str]) -> None:
    f, url = front
    client = Client()
    status, answer = await client.connect(url)
    assert status == 200
    slot = f.placement.hosts[answer["host"]]
    before = slot.load.incarnation if slot.load else None
    ray.kill(slot.handle, no_restart=False)  # the host's process dies; Ray restarts it
    await _until(lambda: slot.load is not None and slot.load.incarnation != before and slot.alive, timeout=90)
    assert slot.sessions == 0, "the restarted host starts empty"
    assert f.placement.capacity() == 2
    await client.close()


def failing_builder(spec: EngineSpec, default_portrait: Path | None) -> HostEngine:
    raise DeviceError("--device cuda was asked for but torch sees no CUDA GPU")


async def test_hosts_that_cannot_start_fail_the_start_with_their_reason(local_ray: None) -> None:
    options = RayOptions(sessions_per_host=1, cpus_per_session=0.5, min_hosts=2, max_hosts=2, max_restarts=0)
    f = RayFront(ServerConfig(host="127.0.0.1"), EngineSpec(), options, build=failing_builder)
    runner = web.AppRunner(f.app, access_log=None)
    await runner.setup()
    try:
        with pytest.raises(EmostreamError, match=r"session hosts fail to start: .*sees no CUDA GPU"):
            await f.wait_ready(2, 120)
    finally:
        await runner.cleanup()
