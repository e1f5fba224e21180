"""The avatar's voice: played on a sound card (sounddevice) or written to a WAV file.

The audio is the session's ``AudioFrame`` stream: the input speech delayed by exactly the
pipeline latency, so it plays in sync with the frames it comes with.
"""

from __future__ import annotations

import contextlib
import wave
from pathlib import Path
from typing import Any

import numpy as np

from emostream.config import SAMPLE_RATE
from emostream.engine.session import AudioFrame, SessionItem
from emostream.errors import DeviceError, InputError
from emostream.streaming.sinks.outfile import PartFile
from emostream.streaming.sources import _sounddevice


class SpeakerSink:
    """Play AudioFrames on an output device (None: the default one)."""

    def __init__(self, device: int | str | None = None) -> None:
        sd = _sounddevice()
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        try:
            self.stream: Any = sd.OutputStream(
                device=device, channels=1, samplerate=SAMPLE_RATE, dtype="float32"
            )
            self.stream.start()
        except (sd.PortAudioError, ValueError) as e:
            raise DeviceError(f"no usable audio output device {device!r}: {e}") from e

    def write(self, item: SessionItem) -> None:
        if isinstance(item, AudioFrame) and item.pcm.size:
            self.stream.write(np.ascontiguousarray(item.pcm[:, None]))

    def close(self) -> None:
        self.stream.stop()
        self.stream.close()


class WavSink:
    """Write AudioFrames to a 16 kHz mono 16-bit WAV (silence fills any gap in pts). The file is
    written under a hidden temporary name and appears at ``path`` whole, at ``close()``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._part = PartFile(self.path)
        try:
            self._w = wave.open(str(self._part.tmp), "wb")  # noqa: SIM115 (closed in close())
        except OSError as e:
            self._part.discard()
            raise InputError(f"cannot write audio: {e}", self.path) from e
        self._w.setnchannels(1)
        self._w.setsampwidth(2)
        self._w.setframerate(SAMPLE_RATE)
        self._next = 0

    def write(self, item: SessionItem) -> None:
        if not isinstance(item, AudioFrame):
            return
        try:
            if item.pts > self._next:
                self._w.writeframes(np.zeros(item.pts - self._next, np.int16).tobytes())
                self._next = item.pts
            self._w.writeframes(item.s16().astype("<i2").tobytes())
        except OSError as e:
            self.abort()
            raise InputError(f"cannot write audio: {e.strerror or e}", self.path) from e
        self._next += item.pcm.size

    def close(self) -> None:
        """Finish the header and move the file into place."""
        if self._part.tmp.exists():
            try:
                self._w.close()
            except OSError as e:
                self.abort()
                raise InputError(f"cannot write audio: {e.strerror or e}", self.path) from e
            self._part.commit()

    def abort(self) -> None:
        """Give up: nothing is left at ``path`` (nor the temporary file)."""
        with contextlib.suppress(OSError):
            self._w.close()
        self._part.discard()
