"""Drive a real headless Debian Chromium against an in-process AvatarServer.

``BrowserRun`` serves the real page plus tests/browser/measure.js at ``/test``, starts
Chromium with fake media (the microphone plays ``speech_wav``), waits for the page's
``POST /report`` and returns it. Chromium never exits by itself: its whole process group is
killed on exit. ``screenshot()`` captures the page over the DevTools protocol.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from emostream.streaming.webrtc.server import AvatarServer, web_root

HERE = Path(__file__).resolve().parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


def speech_wav() -> Path:
    """The bundled speech sample (emostream.assets.sample_path())."""
    from emostream import assets

    return Path(assets.sample_path())


def chromium_flags(user_dir: str, wav: Path | None) -> list[str]:
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={user_dir}", "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required",
        "--remote-debugging-port=0", "--window-size=1000,760", "--allow-loopback-in-peer-connection",
    ]  # fmt: skip
    if wav is not None:
        flags.append(f"--use-file-for-fake-audio-capture={wav}")
    return flags


class BrowserRun:
    """One server + N Chromium processes (one page each), each page posting a report."""

    def __init__(
        self,
        server: AvatarServer,
        *,
        wav: Path | None,
        seconds: float,
        crop: tuple[float, float, float, float] | None = None,
    ) -> None:
        self.server = server
        self.wav = wav
        self.seconds = seconds
        self.crop = crop
        self.reports: list[dict[str, Any]] = []
        self._got = asyncio.Event()
        self._expected = 1
        self.procs: list[subprocess.Popen[bytes]] = []
        self.user_dirs: list[str] = []
        self.port = 0
        server.app.router.add_get("/test", self._test_page)
        server.app.router.add_get("/harness/measure.js", self._measure_js)
        server.app.router.add_post("/report", self._report)
        self._runner: web.AppRunner | None = None

    async def _test_page(self, request: web.Request) -> web.Response:
        html = (web_root() / "index.html").read_text("utf-8")
        html = html.replace("</body>", '<script src="/harness/measure.js"></script>\n</body>')
        return web.Response(text=html, content_type="text/html")

    async def _measure_js(self, request: web.Request) -> web.Response:
        return web.Response(text=(HERE / "measure.js").read_text("utf-8"), content_type="text/javascript")

    async def _report(self, request: web.Request) -> web.Response:
        self.reports.append(json.loads(await request.read()))
        if len(self.reports) >= self._expected:
            self._got.set()
        return web.json_response({"ok": True})

    async def __aenter__(self) -> BrowserRun:
        self._runner = web.AppRunner(self.server.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    def url(self) -> str:
        q = f"seconds={self.seconds}"
        if self.crop is not None:
            q += "&crop=" + ",".join(f"{c:.4f}" for c in self.crop)
        return f"http://127.0.0.1:{self.port}/test?{q}"

    def launch(self, browsers: int = 1) -> None:
        """Start ``browsers`` Chromium processes, each in its own process group and profile."""
        self._expected = browsers
        for _ in range(browsers):
            user_dir = tempfile.mkdtemp(prefix="emostream-chromium-")
            self.user_dirs.append(user_dir)
            args = [CHROMIUM, *chromium_flags(user_dir, self.wav), self.url()]
            self.procs.append(
                subprocess.Popen(
                    args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
                )
            )

    async def wait_reports(self, timeout: float) -> list[dict[str, Any]]:
        await asyncio.wait_for(self._got.wait(), timeout)
        return self.reports

    async def screenshot(self, path: Path) -> None:
        """PNG of the first page via the DevTools protocol (the page keeps running)."""
        port_file = Path(self.user_dirs[0]) / "DevToolsActivePort"
        for _ in range(100):
            if port_file.exists() and port_file.read_text().strip():
                break
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                targets = await r.json(content_type=None)
            page = next(t for t in targets if t.get("type") == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                await ws.send_json({"id": 1, "method": "Page.captureScreenshot", "params": {"format": "png"}})
                while True:
                    msg = await ws.receive_json(timeout=20)
                    if msg.get("id") == 1:
                        break
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(msg["result"]["data"]))

    def kill(self) -> None:
        """Chromium never exits by itself: kill each browser's whole process group."""
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        self.procs = []

    async def __aexit__(self, *exc: object) -> None:
        self.kill()
        await self.server.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
        for d in self.user_dirs:
            shutil.rmtree(d, ignore_errors=True)
