"""Microphone augmentation, applied on the fly in training: room reverberation, band-limiting
(telephone, laptop mic), resampling, noise at several SNRs, an Opus round-trip through PyAV,
and gain. ``augment(audio, rng)`` keeps the length (and the timing: no delay is added), so
phones and targets stay aligned."""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np
import soxr
from scipy import signal

from emostream.config import SAMPLE_RATE


@dataclass(frozen=True)
class AugmentConfig:
    """Probability of each stage and its parameter ranges."""

    p_reverb: float = 0.35
    p_band: float = 0.35
    p_resample: float = 0.2
    p_noise: float = 0.6
    p_opus: float = 0.2
    p_gain: float = 0.8
    snr_db: tuple[float, ...] = (0.0, 5.0, 10.0, 20.0, 30.0)
    rt60_s: tuple[float, float] = (0.15, 0.8)
    gain_db: tuple[float, float] = (-18.0, 6.0)
    opus_kbps: tuple[int, ...] = (12, 16, 24, 32)


DEFAULT = AugmentConfig()


def augment(audio: np.ndarray, rng: np.random.Generator, config: AugmentConfig = DEFAULT) -> np.ndarray:
    """float32[N] 16 kHz → float32[N]: a random chain of microphone/room/channel effects."""
    x = np.asarray(audio, dtype=np.float64).copy()
    n = len(x)
    if n == 0:
        return np.asarray(audio, dtype=np.float32).copy()
    if rng.random() < config.p_reverb:
        x = reverb(x, rng, float(rng.uniform(*config.rt60_s)))
    if rng.random() < config.p_band:
        x = band_limit(x, str(rng.choice(["telephone", "laptop", "lowpass"])), rng)
    if rng.random() < config.p_resample:
        x = resample_round_trip(x, int(rng.choice([8000, 11025, 22050, 44100])))
    if rng.random() < config.p_noise:
        x = add_noise(
            x,
            rng,
            float(rng.choice(config.snr_db)),
            str(rng.choice(["white", "pink", "brown", "hum", "babble"])),
        )
    if rng.random() < config.p_opus:
        x = opus_round_trip(x, int(rng.choice(config.opus_kbps)))
    if rng.random() < config.p_gain:
        x = x * 10 ** (rng.uniform(*config.gain_db) / 20)
    return np.clip(x[:n], -1.0, 1.0).astype(np.float32)


def reverb(x: np.ndarray, rng: np.random.Generator, rt60: float) -> np.ndarray:
    """Convolve with a synthetic room impulse response: direct path, a few early reflections
    and an exponentially decaying noise tail with the given RT60; wet/dry mixed."""
    length = int(min(rt60 * 1.2, 1.0) * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)
    tail = signal.lfilter([1.0], [1.0, -0.6], tail)  # rooms absorb highs
    ir = 0.3 * tail / (np.sqrt(np.sum(tail**2)) + 1e-9)
    ir[0] = 1.0
    for _ in range(int(rng.integers(3, 8))):
        ir[int(rng.uniform(0.002, 0.03) * SAMPLE_RATE)] += rng.uniform(-0.5, 0.5)
    wet = signal.fftconvolve(x, ir)[: len(x)]
    return wet * (np.sqrt(np.mean(x**2)) / (np.sqrt(np.mean(wet**2)) + 1e-12))


def band_limit(x: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """``telephone`` 300–3400 Hz, ``laptop`` (highpass ~150 Hz, lowpass ~6–7 kHz, a resonance),
    or a random ``lowpass``. Zero-phase filters: no delay."""
    if kind == "telephone":
        sos = signal.butter(4, [300, 3400], btype="bandpass", fs=SAMPLE_RATE, output="sos")
        return signal.sosfiltfilt(sos, x)
    if kind == "laptop":
        hp = signal.butter(2, rng.uniform(120, 250), btype="highpass", fs=SAMPLE_RATE, output="sos")
        lp = signal.butter(4, rng.uniform(5500, 7200), btype="lowpass", fs=SAMPLE_RATE, output="sos")
        y = signal.sosfiltfilt(lp, signal.sosfiltfilt(hp, x))
        f0 = rng.uniform(1500, 4000)
        b, a = signal.iirpeak(f0, Q=2.0, fs=SAMPLE_RATE)
        return y + rng.uniform(0.2, 0.6) * signal.filtfilt(b, a, y)
    sos = signal.butter(6, rng.uniform(2500, 6000), btype="lowpass", fs=SAMPLE_RATE, output="sos")
    return signal.sosfiltfilt(sos, x)


def resample_round_trip(x: np.ndarray, rate: int) -> np.ndarray:
    """Down/up to ``rate`` and back with soxr (a cheap capture chain), same length."""
    y = soxr.resample(soxr.resample(x.astype(np.float32), SAMPLE_RATE, rate), rate, SAMPLE_RATE)
    return _fit(np.asarray(y, np.float64), len(x))


def add_noise(x: np.ndarray, rng: np.random.Generator, snr_db: float, kind: str) -> np.ndarray:
    """Add noise of a colour/kind at ``snr_db`` relative to the signal's power."""
    n = len(x)
    white = rng.standard_normal(n)
    if kind == "white":
        noise = white
    elif kind == "pink":
        noise = signal.lfilter([0.049922, -0.095993, 0.050612, -0.004408],
                               [1, -2.494956, 2.017265, -0.522190], white)  # fmt: skip
    elif kind == "brown":
        noise = signal.lfilter([1.0], [1.0, -0.995], white)
    elif kind == "hum":
        t = np.arange(n) / SAMPLE_RATE
        f = float(rng.choice([50.0, 60.0]))
        noise = 0.1 * white
        for h in (1, 2, 3, 5):
            noise = noise + np.sin(2 * np.pi * f * h * t + rng.uniform(0, 6.3)) / h
    else:  # babble: speech-shaped noise with a syllable-rate envelope
        sos = signal.butter(2, [200, 3000], btype="bandpass", fs=SAMPLE_RATE, output="sos")
        env = np.abs(signal.lfilter([1.0], [1.0, -0.999], rng.standard_normal(n)))
        noise = signal.sosfilt(sos, white) * (0.3 + env / (env.max() + 1e-9))
    p_sig = np.mean(x**2) + 1e-12
    p_noise = np.mean(np.asarray(noise) ** 2) + 1e-12
    return x + np.asarray(noise) * np.sqrt(p_sig / (p_noise * 10 ** (snr_db / 10)))


def opus_round_trip(x: np.ndarray, kbps: int) -> np.ndarray:
    """Encode to Opus (libopus through PyAV, 16 kHz mono) and decode; the codec's delay is
    measured by cross-correlation and removed so the output stays aligned."""
    pcm = (np.clip(x, -1, 1) * 32767).astype(np.int16)
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = SAMPLE_RATE
    enc.layout = "mono"
    enc.format = av.AudioFormat("s16")
    enc.bit_rate = kbps * 1000
    dec = av.CodecContext.create("libopus", "r")
    dec.sample_rate = SAMPLE_RATE
    dec.layout = "mono"
    frame_len = 320  # 20 ms
    padded = np.concatenate([pcm, np.zeros(frame_len * 4 - len(pcm) % frame_len, np.int16)])
    out: list[np.ndarray] = []
    packets = []
    for k in range(0, len(padded), frame_len):
        frame = av.AudioFrame.from_ndarray(padded[None, k : k + frame_len], format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = k
        packets += enc.encode(frame)
    packets += enc.encode(None)
    rate = SAMPLE_RATE
    for packet in packets:
        for f in dec.decode(packet):
            rate = f.sample_rate  # libopus decodes at 48 kHz whatever was asked
            a = f.to_ndarray().astype(np.float64)
            if f.format.name.startswith("s16"):
                a = a / 32768.0
            out.append(a.reshape(-1) if a.shape[0] == 1 else a.mean(axis=0))
    y = np.concatenate(out) if out else np.zeros(len(x))
    if rate != SAMPLE_RATE:
        y = np.asarray(soxr.resample(y.astype(np.float32), rate, SAMPLE_RATE), np.float64)
    lag = _lag(x, y)
    return _fit(y[lag:], len(x))


def _lag(x: np.ndarray, y: np.ndarray, max_lag: int = 1600) -> int:
    """Delay of ``y`` relative to ``x`` in samples (0..max_lag)."""
    m = min(len(x), len(y) - max_lag, SAMPLE_RATE * 4)
    if m <= 0:
        return 0
    corr = signal.correlate(y[: m + max_lag], x[:m], mode="valid")
    return int(np.argmax(corr))


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    return y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))
