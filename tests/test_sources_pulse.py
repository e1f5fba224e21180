"""Real paced capture through a private PulseAudio null sink (skipped where pulseaudio is absent).

CI: needs the Debian packages ``pulseaudio`` (daemon + ``paplay``) and ``libportaudio2``;
the test starts and stops its own daemon in a temporary runtime directory.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    not (shutil.which("pulseaudio") and shutil.which("paplay")), reason="pulseaudio/paplay not installed"
)


@pytest.fixture
def pulse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "HOME": str(tmp_path)}
    env.pop("PULSE_SERVER", None)
    proc = subprocess.Popen(
        ["pulseaudio", "--daemonize=no", "-n", "--exit-idle-time=-1", "--disallow-exit",
         "--load=module-native-protocol-unix", "--load=module-null-sink sink_name=avsink",
         "--load=module-always-sink"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    sock = tmp_path / "pulse" / "native"
    deadline = time.monotonic() + 10
    while not sock.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if not sock.exists():
        proc.kill()
        pytest.skip("could not start a private pulseaudio daemon here")
    server = f"unix:{sock}"
    monkeypatch.setenv("PULSE_SERVER", server)
    try:
        import sounddevice as sd
    except OSError:
        proc.kill()
        pytest.skip("PortAudio (libportaudio2) is not installed")
    sd._terminate()  # PortAudio lists devices once, at initialisation: list them again
    sd._initialize()
    try:
        yield {**env, "PULSE_SERVER": server}
    finally:
        proc.terminate()
        proc.wait(5)
        sd._terminate()
        sd._initialize()


def test_mic_captures_real_audio_through_a_null_sink(pulse: dict[str, str], tmp_path: Path) -> None:
    from emostream.streaming.sources import MicSource

    wav = tmp_path / "tone.wav"
    t = np.arange(16000 * 4) / 16000
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((0.5 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes())
    mic = MicSource("pulse", sample_rate=16000)
    player = subprocess.Popen(["paplay", "--device=avsink", str(wav)], env=pulse)

    async def capture() -> list[np.ndarray]:
        out: list[np.ndarray] = []
        start = time.monotonic()
        async for chunk in mic:
            out.append(chunk)
            if time.monotonic() - start > 3.5:
                break
        return out

    try:
        chunks = asyncio.run(capture())
    finally:
        player.terminate()
        player.wait(5)
    audio = np.concatenate(chunks)
    assert all(c.size == 320 for c in chunks)  # 20 ms blocks at 16 kHz
    assert np.sqrt(np.mean(audio**2)) > 0.05  # the tone came through
    spec = np.abs(np.fft.rfft(audio[-16000:]))
    assert abs(np.argmax(spec) * 16000 / 16000 - 440) < 5
