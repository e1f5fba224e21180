"""Drive a real headless Debian Chromium or Firefox ESR against an in-process AvatarServer.

``BrowserRun`` serves the real page plus tests/browser/measure.js at ``/test``, starts the
browser with fake media, waits for the page's ``POST /report`` and returns it. The browsers
never exit by themselves: each one's whole process group is killed on exit.

- **Chromium** plays ``speech_wav`` as its microphone (``--use-file-for-fake-audio-capture``);
  ``screenshot()`` uses the DevTools protocol.
- **Firefox** (profile prefs in ``FIREFOX_PREFS``) has no file-backed fake microphone: its fake
  device is a tone. With a ``wav``, the page is given ``micfile=/harness/mic.wav`` and
  measure.js answers the page's ``getUserMedia`` (after the browser's own call, so the
  permission path still runs) with that file played through WebAudio
  (``createMediaStreamDestination``). ``screenshot()`` uses WebDriver BiDi
  (``browsingContext.captureScreenshot``; Firefox dropped the DevTools protocol). It has no
  fake audio output either: it plays into a private 48 kHz PulseAudio null sink (pulse.py),
  without which its AudioContexts never leave ``suspended``. Its received-audio tap is a
  ScriptProcessorNode (``tap=script``, see measure.js for why).
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
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import aiohttp
from aiohttp import web

from browser.pulse import null_sink_server
from emostream.streaming.webrtc.server import AvatarServer, web_root

HERE = Path(__file__).resolve().parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Set (to anything) to give Chromium the PulseAudio null sink in every run (see ``null_sink``).
CHROMIUM_PULSE_ENV = "EMOSTREAM_CHROMIUM_PULSE"
FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox") or "/usr/bin/firefox-esr"
Browser = Literal["chromium", "firefox"]
MIC_PATH = "/harness/mic.wav"

#: Firefox test-profile prefs (user.js): fake media without a permission prompt, autoplay with
#: sound, loopback ICE candidates (the server offers 127.0.0.1, see webrtc/ice.py) and no mDNS
#: obfuscation of host candidates; no first-run, telemetry, update or remote-settings traffic;
#: the page's console on stdout (the browser log quoted when no report comes).
FIREFOX_PREFS: dict[str, bool | int | str] = {
    "devtools.console.stdout.content": True,
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.aboutwelcome.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.disabledForTesting": True,
    "app.normandy.enabled": False,
    "extensions.update.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "services.settings.server": "http://127.0.0.1:9/",
    "browser.safebrowsing.update.enabled": False,
}


#: Where the browser tests leave their reports, figures and screenshots (a fresh clone has no out/).
OUT_DIR = Path("out/webrtc")


def out_path(name: str) -> Path:
    """``OUT_DIR / name``, creating the folder."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    return OUT_DIR / name


def write_json(name: str, data: dict[str, Any]) -> None:
    out_path(name).write_text(json.dumps(data, indent=2, default=float))


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


def firefox_available() -> bool:
    return Path(FIREFOX).exists()


def firefox_version() -> str:
    out = subprocess.run([FIREFOX, "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


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


def firefox_profile(profile_dir: str, extra: Mapping[str, bool | int | str] | None = None) -> None:
    prefs = {**FIREFOX_PREFS, **(extra or {})}
    lines = [f"user_pref({json.dumps(k)}, {json.dumps(v)});" for k, v in prefs.items()]
    (Path(profile_dir) / "user.js").write_text("\n".join(lines) + "\n")


def firefox_args(profile_dir: str, url: str) -> list[str]:
    return [
        FIREFOX, "--headless", "--no-remote", "--profile", profile_dir,
        "--width", "1000", "--height", "760", "--remote-debugging-port", "0", url,
    ]  # fmt: skip


class PageFrozen(TimeoutError):
    """A page stopped running JavaScript (no ``/progress``): Firefox 153 deadlocks its media
    graph now and then when WebAudio is connected to WebRTC tracks (see measure.js)."""


class BrowserRun:
    """One server + N browser processes (one page each), each page posting a report."""

    def __init__(
        self,
        server: AvatarServer,
        *,
        wav: Path | None,
        seconds: float,
        crop: tuple[float, float, float, float] | None = None,
        browser: Browser = "chromium",
        warmup: float = 0.0,
        prefs: Mapping[str, bool | int | str] | None = None,
        null_sink: bool = False,
    ) -> None:
        self.server = server
        self.browser: Browser = browser
        #: Play the page's audio into a PulseAudio null sink (always for Firefox; see __aenter__).
        self.null_sink = null_sink or browser == "firefox" or bool(os.environ.get(CHROMIUM_PULSE_ENV))
        #: Seconds streamed before the measured window (measure.js ``warmup``).
        self.warmup = warmup
        #: Firefox prefs on top of FIREFOX_PREFS (e.g. to turn a web API off).
        self.prefs = dict(prefs or {})
        self.wav = wav
        self.seconds = seconds
        self.crop = crop
        self.reports: list[dict[str, Any]] = []
        self._got = asyncio.Event()
        self._expected = 1
        self.procs: list[subprocess.Popen[bytes]] = []
        self._stack = contextlib.ExitStack()
        self._browser_env: dict[str, str] = {}
        self.user_dirs: list[str] = []
        self.logs: list[Path] = []
        self.port = 0
        server.app.router.add_get("/test", self._test_page)
        server.app.router.add_get("/harness/measure.js", self._measure_js)
        server.app.router.add_post("/report", self._report)
        server.app.router.add_post("/progress", self._page_progress)
        self._progress: float | None = None
        server.app.router.add_get(MIC_PATH, self._mic_wav)
        self._runner: web.AppRunner | None = None

    async def _test_page(self, request: web.Request) -> web.Response:
        html = (web_root() / "index.html").read_text("utf-8")
        html = html.replace("</body>", '<script src="/harness/measure.js"></script>\n</body>')
        return web.Response(text=html, content_type="text/html")

    async def _measure_js(self, request: web.Request) -> web.Response:
        return web.Response(text=(HERE / "measure.js").read_text("utf-8"), content_type="text/javascript")

    async def _mic_wav(self, request: web.Request) -> web.Response:
        if self.wav is None:
            raise web.HTTPNotFound()
        return web.Response(body=self.wav.read_bytes(), content_type="audio/wav")

    async def _page_progress(self, request: web.Request) -> web.Response:
        self._progress = asyncio.get_running_loop().time()
        return web.json_response({"ok": True})

    async def _report(self, request: web.Request) -> web.Response:
        self.reports.append(json.loads(await request.read()))
        if len(self.reports) >= self._expected:
            self._got.set()
        return web.json_response({"ok": True})

    async def __aenter__(self) -> BrowserRun:
        if self.null_sink:
            # Headless Firefox has no fake audio output: it needs a null sink (pulse.py). Chromium
            # has one, but it misreports its playout delay to the A/V sync: the same streams
            # measured ~40 ms later (sound late) with it than with the null sink, which plays
            # at a real clock like a sound card (`null_sink=True` or EMOSTREAM_CHROMIUM_PULSE=1).
            self._browser_env = self._stack.enter_context(null_sink_server())
        self._runner = web.AppRunner(self.server.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    def url(self) -> str:
        q = f"seconds={self.seconds}"
        if self.warmup > 0:
            q += f"&warmup={self.warmup}"
        if self.crop is not None:
            q += "&crop=" + ",".join(f"{c:.4f}" for c in self.crop)
        if self.browser == "firefox":
            q += "&tap=script"  # measure.js: Firefox froze with the AudioWorklet tap
            if self.wav is not None:
                q += f"&micfile={MIC_PATH}"
        return f"http://127.0.0.1:{self.port}/test?{q}"

    def launch(self, browsers: int = 1) -> None:
        """Start ``browsers`` browser processes, each in its own process group and profile."""
        self._expected = browsers
        for _ in range(browsers):
            user_dir = tempfile.mkdtemp(prefix=f"emostream-{self.browser}-")
            self.user_dirs.append(user_dir)
            if self.browser == "firefox":
                firefox_profile(user_dir, self.prefs)
                args = firefox_args(user_dir, self.url())
            else:
                args = [CHROMIUM, *chromium_flags(user_dir, self.wav), self.url()]
            env = {**os.environ, **self._browser_env}
            # The browser's output goes to a file, quoted when no report comes.
            log = Path(f"{user_dir}.log")
            self.logs.append(log)
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            self.procs.append(proc)

    async def wait_reports(self, timeout: float, stall_s: float = 12.0) -> list[dict[str, Any]]:
        """The pages' reports. Every page path ends in a report (errors included) and each page
        posts ``/progress`` every second while its JavaScript runs: a page silent for
        ``stall_s`` seconds is frozen (``PageFrozen``), any other miss is a ``TimeoutError``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._got.is_set():
            now = loop.time()
            if now >= deadline or (self._progress is not None and now - self._progress > stall_s):
                frozen = now < deadline
                tail = self.logs[0].read_text("utf-8", "replace")[-2000:] if self.logs else ""
                what = f"no page progress for {stall_s} s" if frozen else f"no report within {timeout} s"
                msg = f"{len(self.reports)}/{self._expected} page reports: {what}; "
                msg += f"{self.browser} output (tail):\n{tail}"
                raise PageFrozen(msg) if frozen else TimeoutError(msg)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._got.wait(), 0.5)
        return self.reports

    async def screenshot(self, path: Path) -> None:
        """PNG of the first page (the page keeps running)."""
        png = await (self._firefox_screenshot() if self.browser == "firefox" else self._chromium_screenshot())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)

    async def _chromium_screenshot(self) -> bytes:
        """Over the DevTools protocol."""
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
        return base64.b64decode(msg["result"]["data"])

    async def _firefox_screenshot(self) -> bytes:
        """Over WebDriver BiDi: a session, the top-level context, captureScreenshot."""
        info = Path(self.user_dirs[0]) / "WebDriverBiDiServer.json"
        for _ in range(100):
            if info.exists() and info.read_text().strip():
                break
            await asyncio.sleep(0.1)
        where = json.loads(info.read_text())
        url = f"ws://{where['ws_host']}:{where['ws_port']}/session"
        async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:

            async def call(n: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
                await ws.send_json({"id": n, "method": method, "params": params})
                while True:
                    try:
                        msg = await ws.receive_json(timeout=30)
                    except TimeoutError as e:
                        raise TimeoutError(f"BiDi {method}: no answer from Firefox in 30 s") from e
                    if msg.get("id") == n:
                        if msg.get("type") == "error":
                            raise RuntimeError(f"BiDi {method}: {msg}")
                        return dict(msg["result"])

            await call(1, "session.new", {"capabilities": {}})
            tree = await call(2, "browsingContext.getTree", {})
            context = tree["contexts"][0]["context"]
            shot = await call(3, "browsingContext.captureScreenshot", {"context": context})
            await call(4, "session.end", {})
        return base64.b64decode(shot["data"])

    def kill(self) -> None:
        """Browsers never exit by themselves: kill each browser's whole process group."""
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
        for log in self.logs:
            log.unlink(missing_ok=True)
        self._stack.close()


async def busy_report(browser: Browser) -> dict[str, Any]:
    """The report of a page opened while the server's only session slot is held by another client
    (``--max-sessions 1``): what the over-capacity tests of both browsers check."""
    from test_webrtc_server import Client

    from browser.fakes import SyncPatternSession
    from emostream.streaming.webrtc.server import AvatarServer, ServerConfig

    server = AvatarServer(ServerConfig(max_sessions=1), lambda portrait, style: SyncPatternSession(size=64))
    async with BrowserRun(server, wav=speech_wav(), seconds=1, browser=browser) as run:
        holder = Client()
        status, _ = await holder.connect(f"http://127.0.0.1:{run.port}")
        assert status == 200
        run.launch()
        report: dict[str, Any] = (await run.wait_reports(timeout=40))[0]
        await holder.close()
    return report
