"""Soak: `emostream serve` (a real process, the shipped engine) under random use for N minutes.

Real aiortc peers connect, speak (the bundled speech as their microphone) or stay silent, and
disconnect at random, gracefully (``pc.close()``) or abruptly (their sockets closed with no
DTLS/SCTP goodbye, as when a browser is killed); interleaved with malformed requests (nested
JSON, garbage SDP, a foreign Origin, an oversized body, a PNG bomb) and over-capacity attempts.

Reports one JSON object:
- ``stalled_sessions``: admitted sessions that got no video within 2 s of connecting (ICE and
  DTLS up), or whose video stopped for more than 2 s while connected (must be 0); each stall
  says how many frames the server's track sent meanwhile (from its stats messages);
- ``resources``: the server process's RSS, open fds and threads, sampled every 2 s
  (``samples``) and at idle points: after a warm-up with every slot taken, and then every
  ``--drain-every`` seconds, all peers leave and the server is sampled once it reports 0
  sessions and has collected and trimmed after them. ``growth_pct`` compares the last idle
  point with the first (after the warm-up), ``trend_pct`` the later half of them with the
  earlier half;
- ``fps``: received video frames per second per session (sessions that lasted >= 3 s);
- ``refused``: requests refused, by reason (client side: HTTP status per kind of request;
  server side: the counts from /health).

    .venv/bin/python benchmarks/soak.py --minutes 2
    .venv/bin/python benchmarks/soak.py --minutes 30 --out soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from hostile_inputs import png_bomb

from emostream.assets import sample_path
from emostream.media.audio import load_audio

#: A session whose video pauses longer than this (or starts later) counts as stalled.
STALL_S = 2.0
SAMPLE_EVERY_S = 2.0


class SpeechTrack(MediaStreamTrack):
    """A microphone: 20 ms packets of 48 kHz speech (the bundled sample, looped) or silence."""

    kind = "audio"

    def __init__(self, speech: np.ndarray, speaking: bool) -> None:
        super().__init__()
        self.pcm = speech
        self.speaking = speaking
        self.n = 0
        self.t0: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self.t0 is None:
            self.t0 = time.monotonic()
        await asyncio.sleep(max(0.0, self.t0 + self.n * 0.02 - time.monotonic()))
        start = (self.n * 960) % max(len(self.pcm) - 960, 1)
        chunk = self.pcm[start : start + 960] if self.speaking else np.zeros(960, np.int16)
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, self.n * 960, Fraction(1, 48000)
        self.n += 1
        return frame


@dataclass
class Peer:
    pc: RTCPeerConnection
    started: float = 0.0
    frames: list[float] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    ended: float | None = None
    connected: float | None = None  # ICE + DTLS up
    #: (arrival time, video frames the server's track had sent) from its stats messages.
    server_sent: list[tuple[float, int]] = field(default_factory=list)

    async def read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                f = await track.recv()
            except MediaStreamError:
                return
            if isinstance(f, av.VideoFrame):
                self.frames.append(time.monotonic())

    def sent_between(self, a: float, b: float) -> int | None:
        """Frames the server sent between a and b (from its stats messages), None if unknown."""
        inside = [n for t, n in self.server_sent if a <= t <= b]
        return inside[-1] - inside[0] if len(inside) >= 2 else None

    def stalled(self) -> str | None:
        """Why this session counts as stalled, or None. A peer whose ICE never connected is not
        a stalled session (``never_connected``: the server drops it after its connect timeout)."""
        end = self.ended or time.monotonic()
        if self.connected is None:
            return None
        base = self.connected  # "within 2 s of connecting": ICE + DTLS up
        if not self.frames:
            return f"no video in {end - base:.1f} s after connecting" if end - base > STALL_S else None
        if self.frames[0] - base > STALL_S:
            return f"first video {self.frames[0] - base:.1f} s after connecting"
        times = [*self.frames, end]
        gaps = np.diff(times)
        if gaps.size and gaps.max() > STALL_S:
            k = int(gaps.argmax())
            sent = self.sent_between(times[k], times[k + 1])
            meanwhile = "no stats message either" if sent is None else f"the server sent {sent} frames"
            return f"video paused {gaps.max():.1f} s ({meanwhile})"
        return None

    def fps(self) -> float | None:
        if len(self.frames) < 2 or self.frames[-1] - self.frames[0] < 3.0:
            return None
        return (len(self.frames) - 1) / (self.frames[-1] - self.frames[0])


def connect_times(peers: list[Peer]) -> list[float]:
    """Answer → ICE and DTLS up, per peer that connected."""
    return [p.connected - p.started for p in peers if p.connected is not None]


def proc_sample(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
        "threads": int(fields["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def growth(idle: list[dict[str, float]], key: str) -> dict[str, float]:
    """``growth_pct``: the last idle sample against the first (after warm-up). ``trend_pct``: the
    mean of the later half of the idle samples against the mean of the earlier half: a leak moves
    both, while the idle RSS of a healthy server wanders by a few % from one idle point to the
    next (513-538 MB over 30 minutes here), so one low first point can fake growth in a short run."""
    warm, end = idle[0][key], idle[-1][key]
    half = len(idle) // 2
    early = statistics.fmean(s[key] for s in idle[: max(half, 1)])
    late = statistics.fmean(s[key] for s in idle[half:])
    return {
        "warm": round(warm, 1),
        "end": round(end, 1),
        "growth_pct": round(100.0 * (end - warm) / warm, 2),
        "trend_pct": round(100.0 * (late - early) / early, 2),
    }


class Soak:
    def __init__(self, url: str, pid: int, max_sessions: int, rng: random.Random) -> None:
        self.url = url
        self.pid = pid
        self.max_sessions = max_sessions
        self.rng = rng
        speech = load_audio(sample_path())
        self.speech = (
            np.interp(np.arange(len(speech) * 3) / 3, np.arange(len(speech)), speech) * 32767
        ).astype(np.int16)
        self.live: list[Peer] = []
        self.done: list[Peer] = []
        self.refused: dict[str, int] = {}
        self.malformed: dict[str, dict[int, int]] = {}
        self.samples: list[dict[str, float]] = []
        self.idle: list[dict[str, float]] = []
        self.t0 = time.monotonic()
        self.counts = {"connected": 0, "graceful": 0, "abrupt": 0, "over_capacity": 0}
        self.bomb = png_bomb()

    def count(self, kind: str, status: int) -> None:
        key = f"{kind}:{status}"
        self.refused[key] = self.refused.get(key, 0) + 1

    async def connect(self, http: aiohttp.ClientSession) -> None:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver(SpeechTrack(self.speech, self.rng.random() < 0.7), direction="sendrecv")
        pc.addTransceiver("video", direction="recvonly")
        channel = pc.createDataChannel("control")
        peer = Peer(pc)
        pc.on("track", lambda t: peer.readers.append(asyncio.ensure_future(peer.read(t))))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected" and peer.connected is None:
                peer.connected = time.monotonic()

        @channel.on("message")
        def on_message(text: str | bytes) -> None:
            msg = json.loads(text)
            if msg.get("type") == "stats":
                peer.server_sent.append((time.monotonic(), int(msg["video"]["sent"])))

        @channel.on("open")
        def pinger() -> None:
            async def ping() -> None:
                while channel.readyState == "open":
                    channel.send(json.dumps({"type": "ping", "t": time.monotonic() * 1000}))
                    await asyncio.sleep(1.0)

            peer.readers.append(asyncio.ensure_future(ping()))

        await pc.setLocalDescription(await pc.createOffer())
        body = {
            "sdp": pc.localDescription.sdp,
            "type": "offer",
            "emotion": self.rng.choice(["happy", "sad", "neutral"]),
        }
        async with http.post(f"{self.url}/offer", json=body) as r:
            answer = await r.json()
        if r.status != 200:
            self.count("offer", r.status)
            await pc.close()
            return
        peer.started = time.monotonic()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        self.counts["connected"] += 1
        self.live.append(peer)

    async def disconnect(self, peer: Peer) -> None:
        self.live.remove(peer)
        peer.ended = time.monotonic()
        if self.rng.random() < 0.5:
            self.counts["abrupt"] += 1
            abort_sockets(peer.pc)
        else:
            self.counts["graceful"] += 1
        self.done.append(peer)
        for t in peer.readers:
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(peer.pc.close(), 5)

    async def malformed_request(self, http: aiohttp.ClientSession) -> None:
        nested = 100_000
        kinds: dict[str, tuple[str, bytes, dict[str, str]]] = {
            "nested_json": ("/offer", b'{"sdp": ' + b"[" * nested + b"]" * nested + b"}", {}),
            "garbage_sdp": ("/offer", json.dumps({"sdp": "v=0\r\nfoo", "type": "offer"}).encode(), {}),
            "not_json": ("/offer", b"\xff\xfe not json", {}),
            "foreign_origin": (
                "/offer",
                b"{}",
                {"Origin": "https://evil.example", "Content-Type": "text/plain"},
            ),
            "oversized": ("/offer", b" " * 400_000, {}),
            "png_bomb": ("/portrait", self.bomb, {"X-Filename": "bomb.png"}),
            "not_an_image": ("/portrait", b"GIF89a" + bytes(100), {}),
        }
        name = self.rng.choice(sorted(kinds))
        path, data, headers = kinds[name]
        async with http.post(f"{self.url}{path}", data=data, headers=headers) as r:
            await r.read()
            self.malformed.setdefault(name, {})
            self.malformed[name][r.status] = self.malformed[name].get(r.status, 0) + 1
            self.count(name, r.status)

    async def sampler(self, until: float) -> None:
        while time.monotonic() < until:
            s = proc_sample(self.pid)
            s["t"] = round(time.monotonic() - self.t0, 1)
            s["sessions"] = len(self.live)
            self.samples.append(s)
            await asyncio.sleep(SAMPLE_EVERY_S)

    async def drain(self, http: aiohttp.ClientSession) -> None:
        """Every peer leaves; once the server holds no session, sample it (an idle point)."""
        for peer in list(self.live):
            await self.disconnect(peer)
        t = time.monotonic()
        drain_s: float | None = None  # until the server holds no session
        while True:
            async with http.get(f"{self.url}/health") as r:
                health = await r.json()
            waited = time.monotonic() - t
            if drain_s is None and (health["sessions"] == 0 or waited > 30.0):
                drain_s = waited
            if drain_s is not None and (not health.get("reclaim_pending") or waited > 40.0):
                break  # and its gc + heap trim after them are done
            await asyncio.sleep(0.25)
        s = proc_sample(self.pid)
        s.update(t=round(time.monotonic() - self.t0, 1), drain_s=round(drain_s, 1))
        s["reclaim"] = health.get("last_reclaim")
        s["sessions_left"] = health["sessions"]
        self.idle.append(s)

    async def warm_up(self, http: aiohttp.ClientSession, seconds: float) -> None:
        """Every slot taken for ``seconds`` (models, codecs, thread pools and the allocator's
        per-thread arenas all in use), then all leave: the first idle point is the baseline."""
        for _ in range(self.max_sessions):
            await self.connect(http)
        await asyncio.sleep(seconds)
        await self.drain(http)

    async def run(self, seconds: float, drain_every: float, warm_up_s: float) -> None:
        until = time.monotonic() + seconds
        sampler = asyncio.ensure_future(self.sampler(until))
        async with aiohttp.ClientSession() as http:
            await self.warm_up(http, warm_up_s)
            next_drain = time.monotonic() + drain_every
            while time.monotonic() < until:
                if time.monotonic() >= next_drain:
                    await self.drain(http)
                    next_drain = time.monotonic() + drain_every
                roll = self.rng.random()
                if roll < 0.45:
                    if len(self.live) >= self.max_sessions:
                        self.counts["over_capacity"] += 1
                    await self.connect(http)
                elif roll < 0.75 and self.live:
                    await self.disconnect(self.rng.choice(self.live))
                elif roll < 0.9:
                    await self.malformed_request(http)
                await asyncio.sleep(self.rng.uniform(0.5, 3.0))
            await self.drain(http)
            async with http.get(f"{self.url}/health") as r:
                self.health = await r.json()
        await sampler

    def report(self, minutes: float) -> dict[str, Any]:
        stalls = [s for p in self.done if (s := p.stalled()) is not None]
        fps = [f for p in self.done if (f := p.fps()) is not None]
        return {
            "benchmark": "soak",
            "minutes": minutes,
            "max_sessions": self.max_sessions,
            "sessions": {
                **self.counts,
                "completed": len(self.done),
                "never_connected": sum(p.connected is None for p in self.done),
                "connect_s": {
                    "median": round(statistics.median(cs), 2) if (cs := connect_times(self.done)) else None,
                    "max": round(max(cs), 2) if cs else None,
                },
            },
            "stalled_sessions": len(stalls),
            "stalls": stalls[:20],
            "fps": {
                "median": round(statistics.median(fps), 2) if fps else None,
                "min": round(min(fps), 2) if fps else None,
                "per_session": [round(f, 2) for f in fps],
            },
            "resources": {k: growth(self.idle, k) for k in ("rss_mb", "fds", "threads")},
            "idle_points": self.idle,
            "max_drain_s": max(s["drain_s"] for s in self.idle),
            "sessions_left_after_drain": max(s["sessions_left"] for s in self.idle),
            "samples": self.samples,
            "refused": self.refused,
            "malformed": {k: {str(s): n for s, n in v.items()} for k, v in self.malformed.items()},
            "server_health_after": self.health,
        }


def abort_sockets(pc: RTCPeerConnection) -> None:
    """Close the peer's UDP sockets with no DTLS close_notify or SCTP ABORT: to the server it
    looks like a killed browser (aiortc keeps them in its ICE transports' aioice connections)."""
    for t in pc.getTransceivers():
        ice = t.sender.transport.transport if t.sender.transport else None
        conn = getattr(ice, "_connection", None)
        for proto in getattr(conn, "_protocols", []):
            if proto.transport is not None:
                proto.transport.abort()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    port: int, max_sessions: str, size: int, log: Any, image: Path | None = None
) -> tuple[subprocess.Popen[str], int]:
    """``emostream serve`` on ``port``, its log (stderr) into ``log``; (process, max sessions)."""
    cmd = [sys.executable, "-m", "emostream", "serve", "--port", str(port), "--size", str(size),
           "--max-sessions", max_sessions]  # fmt: skip
    if image is not None:
        cmd += ["--image", str(image)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "serving on" not in line:
        proc.kill()
        log.seek(0)
        raise SystemExit(f"soak: the server did not start: {line!r} {log.read()[-2000:]}")
    return proc, int(line.rsplit("(max ", 1)[1].split()[0])


def drop_reasons(log_text: str) -> dict[str, int]:
    """The server's logged reasons for dropping peers ("peer sN: REASON; dropping it")."""
    out: dict[str, int] = {}
    for line in log_text.splitlines():
        if line.endswith("; dropping it") and ": " in line:
            reason = line.rsplit("; dropping it", 1)[0].split(": ", 2)[-1]
            out[reason] = out.get(reason, 0) + 1
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--max-sessions", default="auto")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--drain-every",
        type=float,
        default=None,
        help="Seconds between idle points (default: a quarter of the run, at most 5 min).",
    )
    ap.add_argument(
        "--warm-up",
        type=float,
        default=None,
        help="Seconds with every slot taken before the baseline (default: a tenth of the run, 20-120 s).",
    )
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--image", type=Path, default=None, help="The server's portrait (default: its own).")
    args = ap.parse_args(argv)
    port = free_port()
    with tempfile.TemporaryFile("w+") as log:
        proc, n = start_server(port, args.max_sessions, args.size, log, args.image)
        try:
            soak = Soak(f"http://127.0.0.1:{port}", proc.pid, n, random.Random(args.seed))
            drain = args.drain_every or min(args.minutes * 60.0 / 4, 300.0)
            warm = (
                args.warm_up if args.warm_up is not None else min(max(20.0, args.minutes * 60.0 / 10), 120.0)
            )
            asyncio.run(soak.run(args.minutes * 60.0, drain, warm))
            report = soak.report(args.minutes)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.seek(0)
        text = log.read()
    report["server_exit_code"] = proc.returncode
    report["server_drop_reasons"] = drop_reasons(text)
    report["server_tracebacks"] = text.count("Traceback")
    report["server_errors"] = sorted(
        {ln for ln in text.splitlines() if ln.startswith(("ERROR", "Traceback")) or "Error:" in ln}
    )[:20]
    text = json.dumps(report)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}))
    return report


if __name__ == "__main__":
    main()
