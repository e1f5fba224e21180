"""Live sources: microphone errors on machines without PortAudio or devices, stdin PCM, files."""

from __future__ import annotations

import importlib.abc
import io
import sys
from typing import Any

import numpy as np
import pytest

from emostream.errors import DependencyError, DeviceError
from emostream.streaming import sources
from emostream.streaming.sources import FileSource, MicSource, StdinSource, list_input_devices


class _NoPortAudio(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if name == "sounddevice":
            raise OSError("PortAudio library not found")  # what sounddevice raises without libportaudio2
        return None


def test_missing_portaudio_gives_the_apt_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoPortAudio(), *sys.meta_path])
    with pytest.raises(DependencyError, match="sudo apt-get install libportaudio2"):
        MicSource()
    with pytest.raises(DependencyError, match="libportaudio2"):
        list_input_devices()


def test_no_input_device_gives_a_clear_error() -> None:
    try:
        devices = list_input_devices()
    except DependencyError:
        pytest.skip("PortAudio is not installed here (covered above)")
    if devices:
        pytest.skip("this machine has audio input devices")
    with pytest.raises(DeviceError, match=r"no usable audio input device \(default\).*--list-devices"):
        MicSource()
    with pytest.raises(DeviceError, match="no usable audio input device 7"):
        MicSource("7")


async def test_stdin_source_reads_s16le_in_chunks() -> None:
    pcm = (np.arange(1001, dtype=np.int64) * 37 % 65536 - 32768).astype("<i2")
    src = StdinSource(8000, chunk_ms=20, stream=io.BytesIO(pcm.tobytes() + b"\x01"))  # odd trailing byte
    chunks = [c async for c in src]
    assert src.sample_rate == 8000
    assert all(c.size == 160 for c in chunks[:-1])
    np.testing.assert_array_equal(np.concatenate(chunks), pcm.astype(np.float32) / 32768.0)


async def test_file_source_as_fast_as_possible() -> None:
    audio = np.linspace(-1, 1, 16000 + 17).astype(np.float32)
    src = FileSource("x.wav", realtime=False, audio=audio, chunk_ms=20)
    chunks = [c async for c in src]
    assert [c.size for c in chunks[:3]] == [320, 320, 320]
    np.testing.assert_array_equal(np.concatenate(chunks), audio)
    assert sources.FileSource.sample_rate == 16000
