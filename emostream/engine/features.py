"""Streaming audio features: log-mel sub-frames stacked per video frame.

Why this representation
-----------------------
* **Log-mel energies** (40 bands, 25 ms Hann windows, 50–7600 Hz) carry what drives the lips:
  the spectral envelope (formants → vowel shape, fricative noise → teeth/lip closure) and
  the energy (open vs. closed). It is cheap, needs no learned weights (none can be downloaded
  here), is well conditioned for small networks and degrades gracefully on telephone-band or
  noisy microphones. Self-supervised encoders (HuBERT/wav2vec) would be better but need
  pretrained weights and lookahead of hundreds of milliseconds.
* **Four sub-frames per video frame.** Lip events (a plosive release, a closure) last 10–30
  ms, shorter than one 40 ms video frame, so each frame stacks 4 spectra whose centres are
  evenly spaced inside the frame: ``FEATURE_DIM = 4 × 40 = 160`` (index ``j*40 + band``).
  At 25 fps the centres sit at 10 ms steps; at 30 fps at 8.33 ms steps.
* **Exact rational timing.** Sub-frame ``g`` (global index ``i*4 + j`` of video frame ``i``)
  is centred on sample ``((2g+1)·16000) // (2·fps·4)``: pure integer arithmetic from sample
  counts, so frame 1 000 000 is exactly where it should be after hours of audio.
* **Chunk-size invariance, bit for bit.** Every video frame is computed by the same
  fixed-shape operations (gather float64[4, 400] → rFFT 512 → |·|² → [4, 257] @ [257, 40] →
  log), one frame at a time, whatever the chunking, so BLAS/FFT blocking can never round
  differently. ``features_for`` is literally ``push(all) + flush()``.
* **Normalisation without clip statistics.** Streaming cannot see the whole clip, so the
  features are standardised by fixed per-band constants (``FEATURE_MEAN``/``FEATURE_STD``,
  measured once on TTS speech at normal level, see ``_stats``); digital silence maps to a
  finite floor (power floor 1e-8, about 120 dB below a full-scale tone).
* **Latency.** A frame is complete once the last sub-frame's window (centre + 200 samples)
  is available: ``lookahead_samples`` = 120 samples (7.5 ms) at 25 fps, 134 at 30 fps.
  Before the first sample and after the last (at ``flush``) the signal is zero.
"""

from __future__ import annotations

import numpy as np

from emostream.config import DEFAULT_FPS, SAMPLE_RATE, check_fps, frame_start_sample, frames_covering
from emostream.media.audio import load_audio

N_MELS = 40
SUBFRAMES = 4
FEATURE_DIM = N_MELS * SUBFRAMES  # 160
WIN_LENGTH = 400  # 25 ms at 16 kHz
N_FFT = 512
F_MIN, F_MAX = 50.0, 7600.0
POWER_FLOOR = 1e-8
_HALF = WIN_LENGTH // 2


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank() -> np.ndarray:
    """float64[N_FFT//2+1, N_MELS]: HTK-mel triangles, area-normalised (Slaney style)."""
    freqs = np.arange(N_FFT // 2 + 1) * (SAMPLE_RATE / N_FFT)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(F_MIN)), _hz_to_mel(np.array(F_MAX)), N_MELS + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - lo) / (mid - lo)
    down = (hi - freqs[None, :]) / (hi - mid)
    tri = np.maximum(0.0, np.minimum(up, down)) * (2.0 / (hi - lo))
    return np.ascontiguousarray(tri.T)


_WINDOW = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(WIN_LENGTH) / WIN_LENGTH)  # periodic Hann
_WINDOW_POWER = float(np.sum(_WINDOW**2))
_MEL = mel_filterbank() * (SAMPLE_RATE / 2.0)  # a full-scale 1 kHz sine peaks at ln 9.0 (39 dB)

# Per-band statistics of raw log-mel on speech (frames within 50 dB of each clip's loudest),
# measured once with ``python -m emostream.engine.features FILES`` on 10 clips: two English
# sentences by flite voices slt/awb/rms/kal16 and espeak-ng en-us (peaks 0.4-0.8 full scale).
_BAND_MEAN = np.array([
    0.574, 1.255, 1.459, 0.765, 0.017, -0.168, -0.344, -0.698, -1.824, -2.704,
    -3.424, -4.041, -4.468, -4.446, -4.646, -4.937, -5.146, -5.375, -5.770, -5.911,
    -6.002, -5.883, -5.328, -4.878, -4.778, -4.960, -5.108, -4.827, -4.872, -5.426,
    -5.785, -6.137, -6.929, -7.612, -7.704, -7.779, -8.006, -7.846, -7.296, -7.869,
], dtype=np.float64)  # fmt: skip
_BAND_STD = np.array([
    3.56, 3.82, 3.90, 3.73, 3.74, 3.81, 3.89, 4.17, 4.23, 4.36,
    4.33, 4.33, 4.11, 3.95, 3.90, 3.84, 3.73, 3.67, 3.55, 3.44,
    3.24, 3.05, 3.05, 3.21, 3.24, 3.13, 3.07, 3.25, 3.39, 3.31,
    3.29, 3.40, 3.40, 3.38, 3.43, 3.44, 3.21, 3.06, 3.21, 3.18,
], dtype=np.float64)  # fmt: skip
#: Fixed normalisation constants, float32[FEATURE_DIM] (band stats tiled over sub-frames).
FEATURE_MEAN = np.tile(_BAND_MEAN, SUBFRAMES).astype(np.float32)
FEATURE_STD = np.tile(_BAND_STD, SUBFRAMES).astype(np.float32)
_TILED_MEAN = np.tile(_BAND_MEAN, SUBFRAMES)  # float64 copies used inside the featurizer
_TILED_STD = np.tile(_BAND_STD, SUBFRAMES)


def normalize_features(raw: np.ndarray) -> np.ndarray:
    """Raw log-mel [..., FEATURE_DIM] → standardised with the fixed constants."""
    return ((raw - FEATURE_MEAN) / FEATURE_STD).astype(np.float32)


def denormalize_features(feats: np.ndarray) -> np.ndarray:
    return (feats * FEATURE_STD + FEATURE_MEAN).astype(np.float32)


def subframe_centre(g: int, fps: int) -> int:
    """Centre sample of global sub-frame ``g`` (exact integer arithmetic)."""
    return ((2 * g + 1) * SAMPLE_RATE) // (2 * fps * SUBFRAMES)


class Featurizer:
    """Streaming featurizer. ``push`` audio of any size (16 kHz mono float32) and get the
    frames completed so far; ``flush`` zero-pads the end so that the total number of frames is
    ``frames_covering(total_samples, fps)``. Output float32[k, FEATURE_DIM]."""

    def __init__(self, fps: int = DEFAULT_FPS, *, normalized: bool = True) -> None:
        self.fps = check_fps(fps)
        self.normalized = normalized
        # The sub-frame pattern repeats every second (fps frames = SAMPLE_RATE samples).
        self.lookahead_samples = max(
            subframe_centre(i * SUBFRAMES + SUBFRAMES - 1, fps) + _HALF - frame_start_sample(i + 1, fps)
            for i in range(fps)
        )
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0  # absolute index of _buf[0]
        self._n_in = 0  # samples received
        self._next = 0  # next frame index to emit

    @property
    def frames_emitted(self) -> int:
        return self._next

    @property
    def samples_received(self) -> int:
        return self._n_in

    def _frame_end_need(self, i: int) -> int:
        """One past the last sample the frame ``i`` reads."""
        return subframe_centre(i * SUBFRAMES + SUBFRAMES - 1, self.fps) + _HALF

    def _frame(self, i: int) -> np.ndarray:
        """float32[FEATURE_DIM] for frame i from the buffer (zeros outside [0, n_in))."""
        win = np.zeros((SUBFRAMES, WIN_LENGTH), dtype=np.float64)
        for j in range(SUBFRAMES):
            start = subframe_centre(i * SUBFRAMES + j, self.fps) - _HALF
            a, b = max(start, 0), min(start + WIN_LENGTH, self._n_in)
            if b > a:
                win[j, a - start : b - start] = self._buf[a - self._buf_start : b - self._buf_start]
        spec = np.fft.rfft(win * _WINDOW, n=N_FFT, axis=-1)  # complex128[4, 257]
        power = (spec.real**2 + spec.imag**2) / _WINDOW_POWER
        mel = power @ _MEL  # float64[4, 40]
        logmel = np.log(mel + POWER_FLOOR).reshape(FEATURE_DIM)
        if self.normalized:
            logmel = (logmel - _TILED_MEAN) / _TILED_STD
        return logmel.astype(np.float32)

    def _emit(self, n_frames_total: int | None) -> np.ndarray:
        out: list[np.ndarray] = []
        while True:
            i = self._next
            if n_frames_total is None:
                if self._frame_end_need(i) > self._n_in:
                    break
            elif i >= n_frames_total:
                break
            out.append(self._frame(i))
            self._next += 1
        # Drop samples no later frame can read.
        keep_from = max(subframe_centre(self._next * SUBFRAMES, self.fps) - _HALF, 0)
        if keep_from > self._buf_start:
            self._buf = self._buf[keep_from - self._buf_start :].copy()
            self._buf_start = keep_from
        if not out:
            return np.zeros((0, FEATURE_DIM), dtype=np.float32)
        return np.stack(out)

    def push(self, pcm: np.ndarray) -> np.ndarray:
        x = np.asarray(pcm, dtype=np.float32).reshape(-1)
        if x.size:
            self._buf = np.concatenate([self._buf, x])
            self._n_in += x.size
        return self._emit(None)

    def flush(self) -> np.ndarray:
        """Emit the remaining frames (zero-padded) and reset for a new stream."""
        out = self._emit(frames_covering(self._n_in, self.fps))
        self.reset()
        return out


def features_for(audio: np.ndarray, fps: int = DEFAULT_FPS, *, normalized: bool = True) -> np.ndarray:
    """Whole-clip features, float32[frames_covering(len(audio), fps), FEATURE_DIM]; identical
    bit for bit to streaming the same audio through a :class:`Featurizer`."""
    f = Featurizer(fps, normalized=normalized)
    head = f.push(audio)
    return np.concatenate([head, f.flush()])


def _stats(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean/std of raw log-mel over the given files (frames above −50 dB only)."""
    rows = []
    for p in paths:
        raw = features_for(load_audio(p), normalized=False).reshape(-1, N_MELS)
        energy = np.log(np.exp(raw).sum(axis=1))
        rows.append(raw[energy > energy.max() - np.log(1e5)])
    allr = np.concatenate(rows)
    return allr.mean(axis=0), allr.std(axis=0)


if __name__ == "__main__":  # pragma: no cover - maintenance helper
    import sys

    mean, std = _stats(sys.argv[1:])
    print("mean", np.array2string(mean, precision=3, separator=", ", max_line_width=100))
    print("std", np.array2string(std, precision=2, separator=", ", max_line_width=100))
