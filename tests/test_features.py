"""Featurizer: shapes, exact timing, lookahead, normalisation, and bit-identical chunk invariance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emostream.config import SAMPLE_RATE, frame_start_sample, frames_covering
from emostream.engine.features import (
    FEATURE_DIM,
    N_MELS,
    SUBFRAMES,
    Featurizer,
    features_for,
    normalize_features,
    subframe_centre,
)
from emostream.streaming.audio_io import load_audio

_RNG = np.random.default_rng(1234)
#: 1.3 s of noise + tone + silence gap: exercises every sub-frame position at both fps.
AUDIO = np.concatenate([
    (0.3 * _RNG.standard_normal(8000)).astype(np.float32),
    np.zeros(3000, np.float32),
    (0.5 * np.sin(np.arange(9800) * 0.3)).astype(np.float32),
])  # fmt: skip


@pytest.mark.parametrize("fps", [25, 30])
@pytest.mark.parametrize("n", [0, 1, 533, 534, 639, 640, 641, 16000, 20801])
def test_frame_count_is_frames_covering(fps: int, n: int) -> None:
    f = features_for(AUDIO[:n] if n <= len(AUDIO) else np.zeros(n, np.float32), fps)
    assert f.shape == (frames_covering(n, fps), FEATURE_DIM)
    assert f.dtype == np.float32 and np.isfinite(f).all()


@pytest.mark.parametrize("fps", [25, 30])
def test_whole_equals_streamed_fixed_chunks(fps: int) -> None:
    whole = features_for(AUDIO, fps)
    for chunk in (1, 320, 641, 16000):
        fz = Featurizer(fps)
        parts = [fz.push(AUDIO[i : i + chunk]) for i in range(0, len(AUDIO), chunk)] + [fz.flush()]
        assert np.array_equal(np.concatenate(parts), whole)


_chunks = st.lists(st.one_of(st.integers(1, 64), st.integers(1, SAMPLE_RATE)), min_size=1, max_size=40)


@settings(max_examples=30, deadline=None)
@given(chunks=_chunks, fps=st.sampled_from([25, 30]))
def test_chunk_size_invariance_property(chunks: list[int], fps: int) -> None:
    """Random chunk sizes from 1 sample to 1 s (cycled) give bit-identical features."""
    whole = features_for(AUDIO, fps)
    fz = Featurizer(fps)
    out, pos, k = [], 0, 0
    while pos < len(AUDIO):
        n = chunks[k % len(chunks)]
        out.append(fz.push(AUDIO[pos : pos + n]))
        pos, k = pos + n, k + 1
    out.append(fz.flush())
    got = np.concatenate(out)
    assert got.shape == whole.shape
    assert np.array_equal(got, whole)


@pytest.mark.parametrize("fps", [25, 30])
def test_subframes_stay_inside_their_frame_for_hours(fps: int) -> None:
    """Exact integer timing: sub-frame centres of frame i lie in [start(i), start(i+1)) at any i."""
    for i in [0, 1, 2, 29, 12345, fps * 3600 * 10 - 1, fps * 3600 * 100 + 7]:
        a, b = frame_start_sample(i, fps), frame_start_sample(i + 1, fps)
        centres = [subframe_centre(i * SUBFRAMES + j, fps) for j in range(SUBFRAMES)]
        assert a <= centres[0] < centres[-1] < b
        assert centres == sorted(centres)
    # No drift: after 10 hours, frame starts are the exact rational positions.
    n = fps * 3600 * 10
    assert frame_start_sample(n, fps) == 10 * 3600 * SAMPLE_RATE


@pytest.mark.parametrize("fps", [25, 30])
def test_a_click_lands_in_its_frame(fps: int) -> None:
    k = 37
    x = np.zeros(SAMPLE_RATE * 2, np.float32)
    mid = (frame_start_sample(k, fps) + frame_start_sample(k + 1, fps)) // 2
    x[mid - 40 : mid + 40] = 0.9
    f = features_for(x, fps, normalized=False)
    energy = np.exp(f.reshape(len(f), SUBFRAMES, N_MELS)).sum(axis=(1, 2))
    assert int(np.argmax(energy)) == k


@pytest.mark.parametrize("fps", [25, 30])
def test_lookahead_samples(fps: int) -> None:
    """Frame k-1 is out once ``lookahead_samples`` past its end have arrived; the bound is tight."""
    look = Featurizer(fps).lookahead_samples
    assert look == {25: 120, 30: 134}[fps]
    tight = False
    for k in range(1, fps + 2):
        end = frame_start_sample(k, fps) + look
        assert len(Featurizer(fps).push(np.zeros(end, np.float32))) >= k
        tight |= len(Featurizer(fps).push(np.zeros(end - 1, np.float32))) == k - 1
    assert tight


def test_flush_resets_and_reset_clears() -> None:
    fz = Featurizer(25)
    a = np.concatenate([fz.push(AUDIO), fz.flush()])
    b = np.concatenate([fz.push(AUDIO), fz.flush()])
    assert np.array_equal(a, b)
    fz.push(AUDIO[:5000])
    fz.reset()
    assert fz.frames_emitted == 0 and fz.samples_received == 0


def test_normalisation_on_speech(sample_wav: Path) -> None:
    x = load_audio(sample_wav)
    raw = features_for(x, normalized=False)
    norm = features_for(x)
    np.testing.assert_allclose(normalize_features(raw), norm, rtol=1e-5, atol=1e-5)
    loud = norm[norm.mean(axis=1) > -1.5]  # speech frames
    assert len(loud) > 0.5 * len(norm)
    assert abs(float(loud.mean())) < 0.6 and 0.5 < float(loud.std()) < 1.6
    # Digital silence maps to a finite floor well below speech.
    silent = features_for(np.zeros(3200, np.float32))
    assert np.isfinite(silent).all() and silent.max() < -2.5
