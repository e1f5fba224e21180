"""Silero VAD (ONNX): separates the bundled speech from silence; streaming is chunk-invariant."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emostream.config import SAMPLE_RATE, frame_start_sample, frames_covering, frames_in_samples
from emostream.engine.vad import SileroVAD, silero_model_path, speech_probs
from emostream.streaming.audio_io import load_audio


@pytest.fixture(scope="module")
def speech_then_silence(sample_wav: Path) -> tuple[np.ndarray, int]:
    x = load_audio(sample_wav)
    return np.concatenate([x, np.zeros(2 * SAMPLE_RATE, np.float32)]), len(x)


def test_model_is_found_without_importing_torch() -> None:
    code = (
        "import sys; from emostream.engine.vad import speech_probs; import numpy as np;"
        "speech_probs(np.zeros(1600, np.float32));"
        "assert 'silero_vad' not in sys.modules and 'torch' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert silero_model_path().name == "silero_vad.onnx"


def test_speech_versus_silence(speech_then_silence: tuple[np.ndarray, int]) -> None:
    audio, n_speech = speech_then_silence
    p = speech_probs(audio, 25)
    k = frames_in_samples(n_speech, 25)
    assert p.shape == (frames_covering(len(audio), 25),)
    assert float(np.mean(p[:k] > 0.5)) > 0.7  # measured 0.88: the clip is mostly speech
    assert float(p[:k].mean()) > 0.7
    assert float(p[k + 3 :].mean()) < 0.05 and float(p[k + 3 :].max()) < 0.5


@settings(max_examples=8, deadline=None)
@given(chunks=st.lists(st.integers(1, SAMPLE_RATE), min_size=1, max_size=12), fps=st.sampled_from([25, 30]))
def test_chunk_size_invariance(
    speech_then_silence: tuple[np.ndarray, int], chunks: list[int], fps: int
) -> None:
    audio = speech_then_silence[0][: 2 * SAMPLE_RATE + 123]
    whole = speech_probs(audio, fps)
    vad = SileroVAD(fps)
    out, pos, k = [], 0, 0
    while pos < len(audio):
        out.append(vad.push(audio[pos : pos + chunks[k % len(chunks)]]))
        pos, k = pos + chunks[k % len(chunks)], k + 1
    out.append(vad.flush())
    assert np.array_equal(np.concatenate(out), whole)


@pytest.mark.parametrize("n", [0, 1, 511, 512, 640, 1000, 16001])
@pytest.mark.parametrize("fps", [25, 30])
def test_frame_counts(n: int, fps: int) -> None:
    p = speech_probs(np.zeros(n, np.float32), fps)
    assert p.shape == (frames_covering(n, fps),) and p.dtype == np.float32
    assert np.all((p >= 0) & (p <= 1))


@pytest.mark.parametrize("fps", [25, 30])
def test_causal_mode_uses_no_audio_past_the_frame(
    speech_then_silence: tuple[np.ndarray, int], fps: int
) -> None:
    """causal=True: a frame's probability is final at its last sample (lookahead 0) and never
    changes with the audio after it; it stays chunk-invariant and close to the centred one."""
    audio = speech_then_silence[0][: 3 * SAMPLE_RATE]
    vad = SileroVAD(fps, causal=True)
    assert vad.lookahead_samples == 0 and SileroVAD(fps).lookahead_samples == 511
    whole = speech_probs(audio, fps, causal=True)
    assert whole.shape == (frames_covering(len(audio), fps),)
    for k in (17, 40):
        cut = frame_start_sample(k, fps)
        got = vad.push(audio[:cut])
        assert len(got) == k  # every complete frame is out at once
        assert np.array_equal(got, whole[: len(got)])
        vad.reset()
        noise = np.random.default_rng(0).uniform(-0.5, 0.5, 8000).astype(np.float32)
        other = speech_probs(np.concatenate([audio[:cut], noise]), fps, causal=True)
        assert np.array_equal(other[: len(got)], whole[: len(got)])
    chunked = SileroVAD(fps, causal=True)
    parts = [chunked.push(audio[i : i + 777]) for i in range(0, len(audio), 777)] + [chunked.flush()]
    assert np.array_equal(np.concatenate(parts), whole)
    centred = speech_probs(audio, fps)
    assert float(np.mean((whole >= 0.5) == (centred >= 0.5))) > 0.95
