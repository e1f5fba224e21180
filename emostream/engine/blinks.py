"""Blink shaping: EmoDiff's blink onsets → whole, natural blinks.

The diffusion sampler places blinks (rate and timing follow emotion and speech, as in the corpus)
but draws them as 1-2 frame partial spikes: each sliding window samples its hop of frames on its
own, and a blink is a rare, sharp event that a few-step sampler averages away (synthetic ``val``:
generated peak median 0.46 over 1 frame; the targets' 0.89 over 4 frames).

The shaper keeps EmoDiff's timing and replaces each spike by a blink curve. When the mean of
eyeBlinkLeft/Right crosses ``onset`` from below (and the last blink started at least
``refractory_ms`` earlier), both lids close over ``close_ms``, stay shut ``hold_ms`` and open over
``open_ms``: closing faster than opening, 100-400 ms in all, as DESIGN.md's facts say. Outside a
blink the lids follow EmoDiff's values capped at ``onset`` through a causal low-pass
(``settle_ms``): emotional lid lowering (sad: ~0.1-0.15 in the corpus) passes, the sampler's
sub-onset 1-frame twitches and spikes that did not start a blink are flattened. ``onset`` 0.3 gives 19.7
blinks a minute on synthetic ``val`` (corpus targets: 27.5; DESIGN.md: 15-20 at rest).

Frame by frame and causal (no look-ahead, no latency); the state carries across chunks, so the
output does not depend on the chunking. Only eyeBlinkLeft/Right change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from emostream.arkit import BLENDSHAPE_INDEX, MOTION_DIM
from emostream.config import check_fps
from emostream.errors import ConfigError, InputError

BLINK_DIMS = (BLENDSHAPE_INDEX["eyeBlinkLeft"], BLENDSHAPE_INDEX["eyeBlinkRight"])


@dataclass(frozen=True)
class BlinkShape:
    onset: float = 0.3  # mean eyeBlink that starts a blink
    refractory_ms: float = 400.0  # no new blink within this time of the last onset
    close_ms: float = 80.0
    hold_ms: float = 40.0
    open_ms: float = 160.0
    peak: float = 1.0
    settle_ms: float = 80.0  # time constant of the lid level outside blinks

    def __post_init__(self) -> None:
        if not 0.0 < self.onset < 1.0 or not 0.0 < self.peak <= 1.0:
            raise ConfigError(f"blink onset must be in (0, 1) and peak in (0, 1]: {self}")
        if (
            min(self.close_ms, self.open_ms, self.settle_ms) <= 0
            or self.hold_ms < 0
            or self.refractory_ms < 0
        ):
            raise ConfigError(f"blink durations must be positive: {self}")

    def curve(self, fps: int) -> np.ndarray:
        """float32[K]: the lid closure of a blink, frame by frame from its onset frame (closing
        linearly, holding, opening along a cosine)."""
        check_fps(fps)
        n_close = max(1, round(self.close_ms * fps / 1000))
        n_hold = round(self.hold_ms * fps / 1000)
        n_open = max(1, round(self.open_ms * fps / 1000))
        close = [(k + 1) / n_close for k in range(n_close)]
        opening = [0.5 * (1 + math.cos(math.pi * (k + 1) / (n_open + 1))) for k in range(n_open)]
        return (self.peak * np.array(close + [1.0] * n_hold + opening, np.float32)).astype(np.float32)

    def refractory_frames(self, fps: int) -> int:
        return max(len(self.curve(fps)), round(self.refractory_ms * fps / 1000))


class BlinkShaper:
    """One stream's blink state. ``shape(motion float32[n, 55]) -> float32[n, 55]``."""

    def __init__(self, shape: BlinkShape, fps: int) -> None:
        self.shape = shape
        self._curve = shape.curve(fps)
        self._refractory = shape.refractory_frames(fps)
        self._since = self._refractory  # frames since the last onset
        self._prev = 0.0  # the previous frame's mean raw eyeBlink
        self._alpha = np.float32(1.0 - math.exp(-1000.0 / (fps * shape.settle_ms)))
        self._level: np.ndarray | None = None  # float32[2]: the low-passed lid level outside blinks
        self.blinks = 0  # blinks started so far

    def shape_frames(self, motion: np.ndarray) -> np.ndarray:
        motion = np.asarray(motion, dtype=np.float32)
        if motion.ndim != 2 or motion.shape[1] != MOTION_DIM:
            raise InputError(f"blink shaper motion must be float32[n, {MOTION_DIM}], got {motion.shape}")
        out = motion.copy()
        dims = list(BLINK_DIMS)
        onset = np.float32(self.shape.onset)
        for k in range(len(out)):
            raw = out[k, dims]
            level = float(raw.mean())
            if self._since >= self._refractory and level > onset >= self._prev:
                self._since = 0
                self.blinks += 1
            self._prev = level
            capped = np.minimum(raw, onset)
            if self._level is None:
                self._level = capped.copy()
            in_blink = self._since < len(self._curve)
            if not in_blink:  # the level holds through a blink (its spike is not a lid level)
                self._level = (self._level + self._alpha * (capped - self._level)).astype(np.float32)
            lid = self._curve[self._since] if in_blink else np.float32(0.0)
            out[k, dims] = np.maximum(self._level, lid)
            self._since += 1
        return out


def blink_stats(seqs: list[np.ndarray], fps: int, threshold: float = 0.3) -> dict[str, float]:
    """Blink events in motion sequences (each float32[T, 55]): where the mean of both eyeBlinks
    is above ``threshold``. Returns the rate per minute, the median event length in frames and
    the median peak (0 where there are none)."""
    lengths, peaks, frames = [], [], 0
    for m in seqs:
        x = np.asarray(m, np.float32)[:, list(BLINK_DIMS)].mean(axis=1)
        frames += len(x)
        above = np.concatenate([[False], x > threshold, [False]])
        starts = np.flatnonzero(~above[:-1] & above[1:])
        ends = np.flatnonzero(above[:-1] & ~above[1:])
        for s, e in zip(starts, ends, strict=True):
            lengths.append(e - s)
            peaks.append(float(x[s:e].max()))
    minutes = frames / fps / 60
    return {
        "rate_per_min": len(lengths) / minutes if minutes else 0.0,
        "median_frames": float(np.median(lengths)) if lengths else 0.0,
        "median_peak": float(np.median(peaks)) if peaks else 0.0,
    }
