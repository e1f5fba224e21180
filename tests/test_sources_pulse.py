"""Real paced capture through a private PulseAudio null sink (skipped where pulseaudio is absent).

CI: needs the Debian packages ``pulseaudio`` (daemon + ``paplay``) and ``libportaudio2``;
the test starts and stops its own daemon in a temporary runtime directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from browser.pulse import SINK, null_sink_server, pulseaudio_available

pytestmark = pytest.mark.skipif(
    not (pulseaudio_available() and shutil.which("paplay")), reason="pulseaudio/paplay not installed"
)


@pytest.fixture
def pulse(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The private null-sink daemon of the browser tests, with PortAudio pointed at it."""
    with contextlib.ExitStack() as stack:
        try:
            client_env = stack.enter_context(null_sink_server())
        except RuntimeError as e:
            pytest.skip(f"could not start a private pulseaudio daemon here: {e}")
        monkeypatch.setenv("PULSE_SERVER", client_env["PULSE_SERVER"])
        try:
            import sounddevice as sd
        except OSError:
            pytest.skip("PortAudio (libportaudio2) is not installed")
        sd._terminate()  # PortAudio lists devices once, at initialisation: list them again
        sd._initialize()
        stack.callback(sd._initialize)
        stack.callback(sd._terminate)
        yield {**os.environ, **client_env}


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
    player = subprocess.Popen(["paplay", f"--device={SINK}", str(wav)], env=pulse)

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
