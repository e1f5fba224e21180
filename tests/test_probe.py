"""``probe``: good audio / image / Live Link files, every bad input with its exact message, and
a 3-hour file whose statistics are computed by streaming (bounded memory)."""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from emostream.errors import InputError
from emostream.probe import format_probe, probe


def test_bundled_sample(sample_wav: Path) -> None:
    r = probe(sample_wav)
    assert r["kind"] == "audio" and r["codec"] == "pcm_s16le" and r["container"] == "wav"
    assert (r["sample_rate"], r["channels"]) == (16000, 1)
    assert 3.0 <= r["duration_s"] <= 8.0
    assert r["peak"] == pytest.approx(10 ** (-3 / 20), abs=1e-3)  # normalised to −3 dBFS
    assert 0.05 < r["rms"] < r["peak"]
    assert r["speech_fraction"] > 0.7 and r["speech_fraction_span_s"] == r["duration_s"]
    text = format_probe(r)
    assert text.splitlines()[0] == f"{sample_wav}: audio" and "speech_fraction" in text


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pcm8.wav", {"codec": "pcm_u8", "sample_rate": 8000, "duration_s": 0.25}),
        ("pcm24.wav", {"codec": "pcm_s24le", "sample_rate": 8000, "duration_s": 0.25}),
        ("rgba.png", {"kind": "image", "mode": "RGBA", "has_alpha": True, "width": 8}),
        ("cmyk.jpg", {"kind": "image", "mode": "CMYK", "has_alpha": False, "conversion": "CMYK → RGB"}),
        ("grey.png", {"kind": "image", "mode": "L", "loads_as": "RGB 8x8"}),
        ("livelink_ok.csv", {"kind": "livelink_csv", "frames": 70, "fps": 60.0, "columns": 63}),
    ],
)
def test_good_inputs(data_dir: Path, name: str, expected: dict[str, object]) -> None:
    r = probe(data_dir / name)
    assert {k: r[k] for k in expected} == expected


def test_96k_stereo(write_wav) -> None:
    t = np.arange(96000) / 96000
    x = 0.5 * np.sin(2 * np.pi * 220 * t)
    r = probe(write_wav("s.wav", np.stack([x, x], axis=1), 96000))
    assert (r["sample_rate"], r["channels"], r["duration_s"]) == (96000, 2, 1.0)
    assert r["peak"] == pytest.approx(0.5, abs=0.01)


BAD = [
    ("truncated.wav", "truncated WAV: the header declares 1.000 s of audio but the file holds 0.250 s"),
    ("text.wav", "not an audio file (FFmpeg cannot read it)"),
    ("empty.wav", "file is empty (0 bytes)"),
    ("nan_float.wav", "audio contains NaN or infinite samples (first at 0.050 s)"),
    ("livelink_missing_columns.csv", "missing column(s): MouthLeft, TongueOut"),
    ("livelink_extra_column.csv", "unexpected column(s): Confidence"),
    ("livelink_empty.csv", "file is empty (0 bytes)"),
]


@pytest.mark.parametrize(("name", "message"), BAD)
def test_bad_inputs(data_dir: Path, name: str, message: str) -> None:
    with pytest.raises(InputError) as e:
        probe(data_dir / name)
    assert str(e.value) == f"{data_dir / name}: {message}"


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        probe(tmp_path / "nope.wav")
    assert str(e.value) == f"{tmp_path / 'nope.wav'}: file not found"
    with pytest.raises(InputError) as e:
        probe(tmp_path)
    assert str(e.value) == f"{tmp_path}: is a directory, not a file"


def _sparse_wav(path: Path, seconds: int, rate: int, head: np.ndarray) -> Path:
    """A 16-bit mono WAV of ``seconds`` whose first samples are ``head`` and the rest digital
    silence, written as a sparse file: hours of audio cost no disk and no time to create."""
    n_bytes = seconds * rate * 2
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    with path.open("wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 36 + n_bytes) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt)
        f.write(b"data" + struct.pack("<I", n_bytes) + np.round(head * 32767).astype("<i2").tobytes())
        f.truncate(44 + n_bytes)
    return path


def test_three_hour_file_is_streamed(tmp_path: Path) -> None:
    rate, hours = 8000, 3
    head = 0.5 * np.sin(2 * np.pi * 200 * np.arange(rate) / rate)  # 1 s tone, then silence
    path = _sparse_wav(tmp_path / "long.wav", hours * 3600, rate, head)
    whole_bytes = hours * 3600 * 16000 * 4  # float32 at 16 kHz if it were loaded whole: 691 MB
    tracemalloc.start()
    try:
        r = probe(path, vad_seconds=20.0)
        peak_mem = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak_mem < 50e6 < whole_bytes
    assert r["duration_s"] == hours * 3600
    assert r["peak"] == pytest.approx(0.5, abs=0.01)
    assert r["rms"] == pytest.approx(np.sqrt(0.125 / (hours * 3600)), rel=0.02)
    assert r["speech_fraction_span_s"] == 20.0 and r["speech_fraction"] == 0.0
