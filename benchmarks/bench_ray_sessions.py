"""The Ray path beside the single process, in one run (JSON on stdout): the same real engine
served by ``emostream serve`` and by ``emostream serve --ray local`` (one session host on a new
one-machine Ray cluster), N aiortc clients each, one after the other on the same machine.

Per session: ``first_frame_ms`` (POST /offer sent → first decoded video frame), received
``fps``, and ``latency_ms`` p50/p95 (the server's send time of a frame, from its stats
messages, → the client's decode of it; loopback, one clock). ``overhead`` = Ray − single
(first frame, p95) and the fps ratio. The Ray path adds the front → host SDP hop and a
separate host process; the media path is the same aiortc peer in both.

    .venv/bin/python benchmarks/bench_ray_sessions.py [--sessions 2] [--seconds 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack

#: Seconds a server may take to load the engine (and Ray to start) before the run gives up.
START_TIMEOUT_S = 300.0


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Viewer:
    """An aiortc client: silent microphone, records decode times by pts and the server's stats."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver(AudioStreamTrack(), direction="sendrecv")
        self.pc.addTransceiver("video", direction="recvonly")
        self.channel = self.pc.createDataChannel("control")
        self.sent_ms: dict[int, float] = {}
        self.channel.on("message", self._on_message)
        self.frames: list[tuple[float, int]] = []  # (wall ms at decode, pts)
        self.t_offer = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", lambda t: self._tasks.append(asyncio.create_task(self._read(t))))

    def _on_message(self, m: str | bytes) -> None:
        msg = json.loads(m)
        if msg.get("type") == "stats":
            self.sent_ms.update({int(p): float(t) for p, t in msg.get("recent_frames", [])})

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                f = await track.recv()
            except MediaStreamError:
                return
            if isinstance(f, av.VideoFrame) and f.pts is not None:
                self.frames.append((time.time() * 1000.0, f.pts))

    async def connect(self, url: str) -> int:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        body = {"sdp": self.pc.localDescription.sdp, "type": "offer"}
        self.t_offer = time.time() * 1000.0
        async with aiohttp.ClientSession() as http, http.post(f"{url}/offer", json=body) as r:
            answer = await r.json()
        if r.status == 200:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        return r.status

    def latencies(self, frames: list[tuple[float, int]]) -> list[float]:
        """Decode time − server send time per frame. The client sees RTP timestamps (random
        origin, 90 kHz), the server logs frame numbers: the origin is the largest frame number
        that makes every latency non-negative (as benchmarks/webrtc_browser_sessions.py does)."""
        if not frames or not self.sent_ms:
            return []
        first = frames[0][1]
        steps = [((p - first) % 2**32) // (90_000 // 25) for _, p in frames]
        best: list[float] = []
        for p0 in sorted(self.sent_ms):
            lat = [
                t - self.sent_ms[p0 + d]
                for (t, _), d in zip(frames, steps, strict=True)
                if p0 + d in self.sent_ms
            ]
            # stats messages may miss a send time now and then: most frames must match
            if len(lat) >= 0.9 * len(frames) and min(lat) >= -2.0:
                best = lat
        return best

    def summary(self, since_ms: float) -> dict[str, Any]:
        first = self.frames[0][0] - self.t_offer if self.frames else None
        recent = [(t, p) for t, p in self.frames if t >= since_ms]
        fps = (len(recent) - 1) / ((recent[-1][0] - recent[0][0]) / 1000.0) if len(recent) > 2 else 0.0
        # The server's stats carry the last 25 send times each second: match a window of them.
        lat = self.latencies([f for f in recent if f[0] <= recent[-1][0] - 2000.0][-250:])
        return {
            "first_frame_ms": None if first is None else round(first, 1),
            "fps": round(fps, 2),
            "latency_ms": {
                "p50": round(float(np.percentile(lat, 50)), 1) if lat else None,
                "p95": round(float(np.percentile(lat, 95)), 1) if lat else None,
                "frames": len(lat),
            },
        }

    async def close(self) -> None:
        await self.pc.close()
        for t in self._tasks:
            t.cancel()


async def _measure(url: str, sessions: int, seconds: float) -> list[dict[str, Any]]:
    viewers = [Viewer() for _ in range(sessions)]
    statuses = [await v.connect(url) for v in viewers]
    if any(s != 200 for s in statuses):
        raise RuntimeError(f"offers answered {statuses}")
    await asyncio.sleep(3.0)  # warm-up: first frames, jitter buffers
    since = time.time() * 1000.0
    await asyncio.sleep(seconds)
    out = [v.summary(since) for v in viewers]
    for v in viewers:
        await v.close()
    return out


def _serve(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    # No ~/.ray/auth_token left behind (a new local cluster would create one; loopback only here).
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    with log.open("wb") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "emostream", "serve", *args],
            stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip


async def run_path(
    name: str, extra: list[str], sessions: int, seconds: float, logdir: Path
) -> dict[str, Any]:
    port = _port()
    log = logdir / f"{name}.log"
    t0 = time.monotonic()
    proc = _serve(["--port", str(port), "--max-sessions", str(sessions), *extra], log)
    try:
        while b"serving on" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() - t0 > START_TIMEOUT_S:
                raise RuntimeError(f"{name}: the server did not start:\n{log.read_text()[-2000:]}")
            await asyncio.sleep(0.5)
        start_s = time.monotonic() - t0
        per = await _measure(f"http://127.0.0.1:{port}", sessions, seconds)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return {
        "path": name,
        "start_s": round(start_s, 1),
        "sessions": per,
        "first_frame_ms_max": _worst([s["first_frame_ms"] for s in per]),
        "fps_min": min(s["fps"] for s in per),
        "latency_p95_ms_max": _worst([s["latency_ms"]["p95"] for s in per]),
    }


def _worst(values: list[float | None]) -> float | None:
    """The largest value; None when any session has none (no frame, or none matched)."""
    return None if any(v is None for v in values) else max(v for v in values if v is not None)


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 1)


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if len(present) == len(values) else None


def _overhead(single: dict[str, Any], ray_path: dict[str, Any]) -> dict[str, float | None]:
    """Ray − single: worst first frame and p95 latency; fps ratio; median first frame."""
    return {
        "first_frame_ms": _diff(ray_path["first_frame_ms_max"], single["first_frame_ms_max"]),
        "latency_p95_ms": _diff(ray_path["latency_p95_ms_max"], single["latency_p95_ms_max"]),
        "fps_ratio": round(ray_path["fps_min"] / single["fps_min"], 3) if single["fps_min"] else None,
        "median_first_frame_ms": _diff(
            statistics.median(s["first_frame_ms"] or 0.0 for s in ray_path["sessions"]),
            statistics.median(s["first_frame_ms"] or 0.0 for s in single["sessions"]),
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=2, help="Concurrent sessions on each path.")
    ap.add_argument("--seconds", type=float, default=20.0, help="Measured seconds per path.")
    ap.add_argument("--rounds", type=int, default=2, help="Alternated single/Ray runs.")
    ap.add_argument("--logs", type=Path, default=Path("out/bench_ray"), help="Server logs.")
    a = ap.parse_args()
    a.logs.mkdir(parents=True, exist_ok=True)
    n = a.sessions
    ray_args = [
        "--ray",
        "local",
        "--sessions-per-host",
        str(n),
        "--cpus-per-session",
        "0",
        "--min-hosts",
        "1",
    ]
    rounds = []
    for _ in range(a.rounds):  # alternated: a shared machine's load drifts between runs
        single = asyncio.run(run_path("single", [], n, a.seconds, a.logs))
        ray_path = asyncio.run(run_path("ray", ray_args, n, a.seconds, a.logs))
        rounds.append({"single": single, "ray": ray_path, "overhead": _overhead(single, ray_path)})
    keys = rounds[0]["overhead"]
    out = {
        "benchmark": "ray_sessions",
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
        },
        "sessions": n,
        "seconds": a.seconds,
        "rounds": rounds,
        "overhead_median": {k: _median([r["overhead"][k] for r in rounds]) for k in keys},
    }
    print(json.dumps(out, indent=2, allow_nan=False))


if __name__ == "__main__":
    main()
