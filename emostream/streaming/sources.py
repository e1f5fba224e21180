"""Live audio sources for a session: microphone (sounddevice), file, raw PCM on stdin.

Every source is an async iterator of float32 mono chunks at ``source.sample_rate``; the
session resamples. A file can be paced like a microphone (each chunk delivered when its last
sample would have been captured) or read as fast as possible.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np

from emostream.config import SAMPLE_RATE
from emostream.engine.clock import Clock, WallClock
from emostream.errors import AudioError, DependencyError, DeviceError
from emostream.media.audio import load_audio

PORTAUDIO_APT = "sudo apt-get install libportaudio2"


class AudioSource(Protocol):
    sample_rate: int

    def __aiter__(self) -> AsyncIterator[np.ndarray]: ...


class FileSource:
    """A decoded audio file, in ``chunk_ms`` pieces, paced in real time or not."""

    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        path: str | Path,
        *,
        realtime: bool = True,
        chunk_ms: float = 20.0,
        clock: Clock | None = None,
        audio: np.ndarray | None = None,
    ) -> None:
        self.path = Path(path)
        self.audio = load_audio(self.path) if audio is None else np.asarray(audio, np.float32)
        self.realtime = realtime
        self.chunk = max(1, round(chunk_ms * SAMPLE_RATE / 1000))
        self.clock = clock or WallClock()

    @property
    def duration_s(self) -> float:
        return self.audio.size / SAMPLE_RATE

    async def __aiter__(self) -> AsyncIterator[np.ndarray]:
        start = self.clock.now()
        for a in range(0, self.audio.size, self.chunk):
            b = min(a + self.chunk, self.audio.size)
            if self.realtime:  # a microphone delivers a chunk when its last sample is captured
                await self.clock.sleep_until(start + b / SAMPLE_RATE)
            else:
                await asyncio.sleep(0)
            yield self.audio[a:b]


class StdinSource:
    """Raw signed 16-bit little-endian mono PCM at ``sample_rate`` from a pipe (e.g. any TTS)."""

    def __init__(
        self, sample_rate: int = SAMPLE_RATE, *, chunk_ms: float = 20.0, stream: BinaryIO | None = None
    ) -> None:
        if sample_rate <= 0:
            raise AudioError(f"stdin sample rate must be positive, got {sample_rate}")
        self.sample_rate = int(sample_rate)
        self.stream = stream if stream is not None else sys.stdin.buffer
        self.chunk_bytes = 2 * max(1, round(chunk_ms * sample_rate / 1000))

    async def __aiter__(self) -> AsyncIterator[np.ndarray]:
        loop = asyncio.get_running_loop()
        carry = b""
        while True:
            data = await loop.run_in_executor(None, self.stream.read, self.chunk_bytes)
            if not data:
                break
            data = carry + data
            n = len(data) // 2 * 2
            carry = data[n:]
            if n:
                yield np.frombuffer(data[:n], dtype="<i2").astype(np.float32) / 32768.0


def _sounddevice() -> Any:
    """Import sounddevice, turning a missing PortAudio into a DependencyError."""
    # deferred: sounddevice (optional: needs the PortAudio library)
    try:
        import sounddevice
    except OSError as e:  # "PortAudio library not found"
        raise DependencyError(f"PortAudio is missing ({e}); install it with: {PORTAUDIO_APT}") from e
    return sounddevice


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    channels: int
    default_samplerate: float
    is_default: bool


def list_input_devices() -> list[InputDevice]:
    """Audio capture devices PortAudio can see."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        default_in = sd.default.device[0] if sd.default.device is not None else -1
    except sd.PortAudioError as e:
        raise DeviceError(f"cannot list audio devices: {e}") from e
    return [
        InputDevice(
            i, str(d["name"]), int(d["max_input_channels"]), float(d["default_samplerate"]), i == default_in
        )
        for i, d in enumerate(devices)
        if int(d["max_input_channels"]) > 0
    ]


class MicSource:
    """Capture from a microphone (``device``: index, name substring, or None for the default)."""

    def __init__(
        self, device: int | str | None = None, *, sample_rate: int | None = None, chunk_ms: float = 20.0
    ) -> None:
        sd = _sounddevice()
        self._sd = sd
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        try:
            info = sd.query_devices(device, "input")
        except (sd.PortAudioError, ValueError) as e:
            raise DeviceError(
                f"no usable audio input device {device if device is not None else '(default)'}: {e}; "
                "list devices with: emostream stream --list-devices"
            ) from e
        self.device = device
        self.sample_rate = int(sample_rate or info["default_samplerate"] or SAMPLE_RATE)
        self.blocksize = max(1, round(chunk_ms * self.sample_rate / 1000))
        self.overflows = 0

    async def __aiter__(self) -> AsyncIterator[np.ndarray]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[np.ndarray] = asyncio.Queue(maxsize=500)

        def put(block: np.ndarray) -> None:
            if queue.full():  # the consumer stalled: drop the oldest, keep it live
                queue.get_nowait()
                self.overflows += 1
            queue.put_nowait(block)

        def callback(indata: np.ndarray, frames: int, time: Any, status: Any) -> None:
            if status.input_overflow:
                self.overflows += 1
            loop.call_soon_threadsafe(put, indata[:, 0].astype(np.float32).copy())

        try:
            stream = self._sd.InputStream(
                device=self.device, channels=1, samplerate=self.sample_rate,
                blocksize=self.blocksize, dtype="float32", callback=callback,
            )  # fmt: skip
        except self._sd.PortAudioError as e:
            raise DeviceError(f"cannot open audio input {self.device!r}: {e}") from e
        with stream:
            while True:
                yield await queue.get()
