"""A private PulseAudio daemon with a null sink, for browsers that need an audio output.

Headless Firefox has no fake audio output (Chromium has one): without an audio server its
AudioContexts stay ``suspended``, so the page's WebAudio (the test's microphone file and the
received-audio tap) never runs. A null sink plays at the real clock into nothing, like a
sound card nobody listens to. The daemon lives in its own runtime directory and is stopped
on exit.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

SINK = "emostream_null"
#: The sink's rate: WebRTC audio is 48 kHz.
RATE = 48000
#: Most a fresh sink may have rendered ahead when a client is let in (see ``_wait_drained``).
DRAINED_MS = 60.0
SETTLED_S = 0.5
#: The latency the keeper asks for: above Chromium's own request (~11 ms), which then sets the
#: sink's pace while a browser plays, as without the keeper.
KEEPER_LATENCY_MS = 20


def pulseaudio_available() -> bool:
    return shutil.which("pulseaudio") is not None


@contextlib.contextmanager
def null_sink_server(timeout_s: float = 10.0) -> Iterator[dict[str, str]]:
    """Start the daemon; yields the environment a client needs: ``PULSE_SERVER`` (the socket
    accepts any local client, so the client keeps its own ``HOME``)."""
    runtime = tempfile.mkdtemp(prefix="emostream-pulse-")
    env = {"XDG_RUNTIME_DIR": runtime, "HOME": runtime}
    conf = Path(runtime) / ".config" / "pulse" / "daemon.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(f"default-sample-rate = {RATE}\nalternate-sample-rate = {RATE}\n")
    proc = subprocess.Popen(
        ["pulseaudio", "--daemonize=no", "-n", "--exit-idle-time=-1", "--disallow-exit",
         "--load=module-native-protocol-unix auth-anonymous=1",
         f"--load=module-null-sink sink_name={SINK} rate={RATE}", "--load=module-always-sink"],
        env={**_base_env(), **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    sock = Path(runtime) / "pulse" / "native"
    deadline = time.monotonic() + timeout_s
    while not sock.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    keeper: subprocess.Popen[bytes] | None = None
    try:
        if not sock.exists():
            raise RuntimeError(f"pulseaudio did not start (exit code {proc.poll()})")
        client = {"PULSE_SERVER": f"unix:{sock}"}
        client_env = {**_base_env(), **client}
        keeper = subprocess.Popen(
            ["parec", "--raw", f"--latency-msec={KEEPER_LATENCY_MS}", "-d", f"{SINK}.monitor"],
            env=client_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_drained(client_env, deadline)
        yield client
    finally:
        if keeper is not None:
            keeper.terminate()
            keeper.wait(5)
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(runtime, ignore_errors=True)


def _sink_latency_ms(env: dict[str, str]) -> float | None:
    out = subprocess.run(
        ["pactl", "list", "sinks"], env=env, capture_output=True, text=True, timeout=5
    ).stdout
    m = re.search(r"Latency: (\d+) usec", out)
    return int(m.group(1)) / 1000.0 if m else None


def _wait_drained(env: dict[str, str], deadline: float) -> None:
    """Until the sink has had less than ``DRAINED_MS`` rendered ahead for ``SETTLED_S``.

    A null sink renders ahead by its latency -- 2 s while no client asks for less -- and drains
    that at the real clock; it does not rewind, so a stream that connects meanwhile plays up to
    that much late (the agent's first line played 1-1.5 s late in some runs, and Interrupt
    seemed to take a second). The keeper (a monitor reader asking for ``KEEPER_LATENCY_MS``)
    holds the latency down once the first 2 s block has drained."""
    latency, low_since = None, None
    while time.monotonic() < deadline:
        latency = _sink_latency_ms(env)
        now = time.monotonic()
        if latency is None or latency >= DRAINED_MS:
            low_since = None
        elif low_since is None:
            low_since = now
        elif now - low_since >= SETTLED_S:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the null sink did not drain within the start-up time ({latency} ms ahead)")


def _base_env() -> dict[str, str]:
    base = dict(os.environ)
    base.pop("PULSE_SERVER", None)
    return base
