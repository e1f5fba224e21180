"""Shared fixtures: the bundled sample, the saved malformed inputs, and writers for test audio."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from emostream.assets import sample_path

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def sample_wav() -> Path:
    return sample_path()


def _wav_bytes(samples: np.ndarray, rate: int, bits: int, is_float: bool) -> bytes:
    """RIFF/WAVE bytes for float samples in [-1, 1] shaped [n] or [n, channels]."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    ch = x.shape[1]
    if is_float:
        frames = x.astype("<f4" if bits == 32 else "<f8").tobytes()
        tag = 3
    elif bits == 8:
        frames = np.clip(np.round(x * 127 + 128), 0, 255).astype(np.uint8).tobytes()
        tag = 1
    elif bits == 24:
        i = np.clip(np.round(x * (2**23 - 1)), -(2**23), 2**23 - 1).astype("<i4")
        frames = np.frombuffer(i.tobytes(), np.uint8).reshape(-1, 4)[:, :3].tobytes()
        tag = 1
    else:
        dt = {16: "<i2", 32: "<i4"}[bits]
        frames = np.round(x * (2 ** (bits - 1) - 1)).astype(dt).tobytes()
        tag = 1
    block = ch * bits // 8
    fmt = struct.pack("<HHIIHH", tag, ch, rate, rate * block, block, bits)
    return (
        b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(frames)) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(frames)) + frames
    )  # fmt: skip


WavWriter = Callable[..., Path]


@pytest.fixture
def write_wav(tmp_path: Path) -> WavWriter:
    """``write_wav(name, samples, rate, bits=16, is_float=False) -> Path`` in a tmp dir."""

    def write(name: str, samples: np.ndarray, rate: int, bits: int = 16, is_float: bool = False) -> Path:
        p = tmp_path / name
        p.write_bytes(_wav_bytes(samples, rate, bits, is_float))
        return p

    return write
