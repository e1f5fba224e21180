"""Audio decoding: formats, sample widths, rates, streaming, and every bad input's exact message."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from emostream.config import SAMPLE_RATE
from emostream.errors import AudioError
from emostream.streaming.audio_io import StreamResampler, audio_info, iter_audio, load_audio, resample


def _encode(path: Path, pcm: np.ndarray, rate: int, codec: str, fmt: str) -> Path:
    """Encode mono float32 ``pcm`` with PyAV (codec in container by extension)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=rate, layout="mono")
        s.codec_context.format = av.AudioFormat(fmt)
        step = 960
        for i, start in enumerate(range(0, len(pcm), step)):
            piece = pcm[start : start + step]
            if fmt.startswith("s16"):
                arr = (piece * 32767).astype(np.int16)[None, :]
            else:
                arr = piece[None, :].astype(np.float32)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=fmt, layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            _ = i
            for pkt in s.encode(frame):
                c.mux(pkt)
        for pkt in s.encode(None):
            c.mux(pkt)
    return path


def tone(seconds: float, rate: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    """Best normalised cross-correlation over small lags (codecs add delay)."""
    n = min(len(a), len(b)) - 2000
    best = 0.0
    for lag in range(0, 1200, 4):
        x, y = a[lag : lag + n], b[:n]
        best = max(best, float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-12)))
    return best


@pytest.mark.parametrize(
    ("name", "codec", "fmt", "rate"),
    [
        ("x.flac", "flac", "s16", 44100),
        ("x.mp3", "libmp3lame", "fltp", 44100),
        ("x.ogg", "libopus", "s16", 24000),
        ("x.m4a", "aac", "fltp", 48000),
        ("x.webm", "libopus", "flt", 48000),
    ],
)
def test_compressed_formats_decode_to_16k_mono(
    tmp_path: Path, name: str, codec: str, fmt: str, rate: int
) -> None:
    src = tone(1.0, rate, freq=300.0)
    path = _encode(tmp_path / name, src, rate, codec, fmt)
    x = load_audio(path)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - SAMPLE_RATE) < 0.06 * SAMPLE_RATE  # encoder padding / priming only
    assert _corr(x, tone(1.0, SAMPLE_RATE, freq=300.0)) > 0.95


@pytest.mark.parametrize(
    ("bits", "is_float"), [(8, False), (16, False), (24, False), (32, False), (32, True), (64, True)]
)
def test_wav_sample_widths(write_wav, bits: int, is_float: bool) -> None:
    src = tone(0.5, SAMPLE_RATE, amp=0.5)
    x = load_audio(write_wav(f"w{bits}.wav", src, SAMPLE_RATE, bits=bits, is_float=is_float))
    tol = {8: 1 / 100, 16: 1e-4, 24: 1e-6, 32: 1e-6, 64: 1e-7}[bits]
    assert x.shape == src.shape
    np.testing.assert_allclose(x, src, atol=tol)


def test_saved_8_and_24_bit_files_work(data_dir: Path) -> None:
    for name in ("pcm8.wav", "pcm24.wav"):
        info = audio_info(data_dir / name)
        assert info.sample_rate == 8000 and info.channels == 1
        x = load_audio(data_dir / name)
        assert len(x) == 4000  # 0.25 s at 8 kHz → 16 kHz
        assert 0.45 < np.abs(x).max() < 0.55
    assert audio_info(data_dir / "pcm8.wav").codec == "pcm_u8"
    assert audio_info(data_dir / "pcm24.wav").codec == "pcm_s24le"


def test_96k_stereo_is_downmixed_and_resampled(write_wav) -> None:
    left = tone(0.5, 96000, freq=1000.0, amp=0.6)
    stereo = np.stack([left, -left * 0.0 + left * 0.5], axis=1)  # right = half of left
    path = write_wav("hi.wav", stereo, 96000, bits=16)
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.duration_s) == (96000, 2, 0.5)
    x = load_audio(path)
    assert len(x) == 8000
    ref = tone(0.5, SAMPLE_RATE, freq=1000.0, amp=0.45)  # mean of 0.6 and 0.3
    np.testing.assert_allclose(x[200:-200], ref[200:-200], atol=2e-3)


def test_iter_audio_chunks_equal_load_audio(sample_wav: Path) -> None:
    whole = load_audio(sample_wav)
    chunks = list(iter_audio(sample_wav, chunk_samples=3001))
    assert all(len(c) == 3001 for c in chunks[:-1]) and 0 < len(chunks[-1]) <= 3001
    np.testing.assert_array_equal(np.concatenate(chunks), whole)


def test_resample_and_stream_resampler_agree_on_length_and_content() -> None:
    x = tone(1.0, 44100, freq=500.0)
    whole = resample(x, 44100)
    rs = StreamResampler(44100)
    parts = [rs.push(x[i : i + 777]) for i in range(0, len(x), 777)] + [rs.flush()]
    streamed = np.concatenate(parts)
    assert len(whole) == len(streamed) == 16000
    np.testing.assert_allclose(streamed, whole, atol=1e-4)
    # flush() resets: a second stream through the same object gives the same output.
    again = np.concatenate([rs.push(x[:30000]), rs.push(x[30000:]), rs.flush()])
    assert len(again) == 16000
    np.testing.assert_allclose(again, whole, atol=1e-4)
    assert resample(x[:100], 16000, 16000).dtype == np.float32


def _msg(path: Path, text: str) -> str:
    return f"{path}: {text}"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("truncated.wav", "truncated WAV: the header declares 1.000 s of audio but the file holds 0.250 s"),
        ("text.wav", "not an audio file (FFmpeg cannot read it)"),
        ("empty.wav", "file is empty (0 bytes)"),
        ("nan_float.wav", "audio contains NaN or infinite samples (first at 0.050 s)"),
        ("rgba.png", "contains no audio stream"),
    ],
)
def test_bad_audio_files(data_dir: Path, name: str, message: str) -> None:
    path = data_dir / name
    for fn in (load_audio, lambda p: list(iter_audio(p))):
        with pytest.raises(AudioError) as e:
            fn(path)
        assert str(e.value) == _msg(path, message)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(AudioError) as e:
        load_audio(tmp_path / "nope.wav")
    assert str(e.value) == f"{tmp_path / 'nope.wav'}: file not found"
    with pytest.raises(AudioError) as e:
        load_audio(tmp_path)
    assert str(e.value) == f"{tmp_path}: is a directory, not an audio file"


def test_too_long(write_wav) -> None:
    path = write_wav("long.wav", np.zeros(8000 * 5, np.float32), 8000)
    with pytest.raises(AudioError) as e:
        load_audio(path, max_seconds=2.0)
    assert str(e.value) == f"{path}: audio is 5.0 s long; the limit is 2.0 s"


def test_infinite_float_samples(write_wav) -> None:
    x = np.zeros(16000, np.float32)
    x[8000] = np.inf
    path = write_wav("inf.wav", x, 16000, bits=32, is_float=True)
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert str(e.value) == f"{path}: audio contains NaN or infinite samples (first at 0.500 s)"


def test_float_overs_are_clipped(write_wav) -> None:
    x = np.full(1600, 1.5, np.float32)
    assert np.abs(load_audio(write_wav("loud.wav", x, 16000, bits=32, is_float=True))).max() <= 1.0


def test_truncated_compressed_files(tmp_path: Path) -> None:
    """A cut WebM is caught by its header's duration; a cut FLAC fails to decode."""
    src = tone(3.0, 48000, freq=300.0)
    full = _encode(tmp_path / "x.webm", src, 48000, "libopus", "flt").read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.raises(AudioError) as e:
        load_audio(cut)
    assert str(e.value).startswith(f"{cut}: truncated: the header declares 3.008 s of audio but only 1.")
    full = _encode(tmp_path / "x.flac", tone(3.0, 44100), 44100, "flac", "s16").read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.raises(AudioError) as e:
        load_audio(cut)
    prefix = f"{cut}: corrupt audio: decoding failed at "
    assert str(e.value).startswith(prefix) and str(e.value).endswith(" s")
    assert 1.0 < float(str(e.value)[len(prefix) : -2]) < 1.5  # about half of the 3 s


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000, 96000])
def test_stream_resampler_is_chunk_invariant(rate: int) -> None:
    rng = np.random.default_rng(rate)
    x = (0.3 * rng.standard_normal(rate)).astype(np.float32)

    def run(sizes: list[int]) -> np.ndarray:
        rs, out, pos, k = StreamResampler(rate), [], 0, 0
        while pos < len(x):
            out.append(rs.push(x[pos : pos + sizes[k % len(sizes)]]))
            pos, k = pos + sizes[k % len(sizes)], k + 1
        return np.concatenate([*out, rs.flush()])

    whole = run([len(x)])
    assert len(whole) == SAMPLE_RATE
    for sizes in ([1, 2, 3, 1000], [int(n) for n in rng.integers(1, rate, size=8)]):
        assert np.array_equal(run(sizes), whole)
