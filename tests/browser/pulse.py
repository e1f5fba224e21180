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
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

SINK = "emostream_null"
#: The sink's rate: WebRTC audio is 48 kHz.
RATE = 48000


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
    try:
        if not sock.exists():
            raise RuntimeError(f"pulseaudio did not start (exit code {proc.poll()})")
        yield {"PULSE_SERVER": f"unix:{sock}"}
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(runtime, ignore_errors=True)


def _base_env() -> dict[str, str]:
    base = dict(os.environ)
    base.pop("PULSE_SERVER", None)
    return base
