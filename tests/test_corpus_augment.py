"""Microphone augmentation keeps length and timing and really changes the signal."""

from __future__ import annotations

import numpy as np
import pytest

from emostream.config import SAMPLE_RATE
from emostream.training import augment as A


@pytest.fixture(scope="module")
def speechlike() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    env = (np.sin(2 * np.pi * 3 * t) > 0).astype(float)
    x = env * (0.3 * np.sin(2 * np.pi * 180 * t) + 0.1 * np.sin(2 * np.pi * 1200 * t))
    return (x + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def test_augment_keeps_length_and_changes_signal(speechlike: np.ndarray) -> None:
    outs = [A.augment(speechlike, np.random.default_rng(s)) for s in range(8)]
    for y in outs:
        assert y.shape == speechlike.shape and y.dtype == np.float32
        assert np.isfinite(y).all() and np.abs(y).max() <= 1.0
    assert sum(not np.allclose(y, speechlike, atol=1e-3) for y in outs) >= 7
    again = A.augment(speechlike, np.random.default_rng(3))
    np.testing.assert_array_equal(again, outs[3])


@pytest.mark.parametrize("kbps", [12, 32])
def test_opus_round_trip_is_aligned(speechlike: np.ndarray, kbps: int) -> None:
    x = speechlike.astype(np.float64)
    y = A.opus_round_trip(x, kbps)
    assert len(y) == len(x)
    assert np.corrcoef(x, y)[0, 1] > 0.9


@pytest.mark.parametrize("kind", ["white", "pink", "brown", "hum", "babble"])
def test_noise_at_requested_snr(speechlike: np.ndarray, kind: str) -> None:
    x = speechlike.astype(np.float64)
    y = A.add_noise(x, np.random.default_rng(1), 10.0, kind)
    snr = 10 * np.log10(np.mean(x**2) / np.mean((y - x) ** 2))
    assert abs(snr - 10.0) < 0.01


def test_band_limits_and_reverb_keep_length_and_shape_spectrum(speechlike: np.ndarray) -> None:
    x = speechlike.astype(np.float64)
    rng = np.random.default_rng(2)
    tel = A.band_limit(x, "telephone", rng)
    spec_x, spec_t = np.abs(np.fft.rfft(x)), np.abs(np.fft.rfft(tel))
    freqs = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    assert spec_t[freqs < 200].sum() < 0.1 * spec_x[freqs < 200].sum()  # 180 Hz removed
    for y in (tel, A.band_limit(x, "laptop", rng), A.reverb(x, rng, 0.6),
              A.resample_round_trip(x, 8000)):  # fmt: skip
        assert len(y) == len(x)
    wet = A.reverb(x, rng, 0.6)
    gaps = np.sin(2 * np.pi * 3 * np.arange(len(x)) / SAMPLE_RATE) <= 0
    assert np.mean(wet[gaps] ** 2) > 5 * np.mean(x[gaps] ** 2)  # the tail fills the pauses
