"""The streaming motion core's parts: the stage interfaces, ``StageTimes`` and ``MotionPipeline``
(audio → features + VAD → motion frames, one stream's state), and ``SessionEngine``: what a live
``Session`` needs from the ``Engine`` that made it.

They live apart from ``emostream.engine.pipeline`` (which builds them into an ``Engine``) so that
``emostream.engine.session`` and the pipeline both import them and neither imports the other's
module in a cycle.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from emostream.arkit import MOTION_DIM, EmotionStyle
from emostream.config import DEFAULT_SEED
from emostream.render.base import Renderer

#: A portrait as the engine caches it: an image path, or None for the default portrait.
PortraitKey = str | Path | None


class FeatureStage(Protocol):
    """Audio features per video frame (emostream.engine.features.Featurizer)."""

    def push(self, audio: np.ndarray) -> np.ndarray: ...  # float32[n] -> float32[m, F]
    def flush(self) -> np.ndarray: ...  # -> float32[m, F]


class VadStage(Protocol):
    """Speech probability per video frame (emostream.engine.vad.SileroVAD)."""

    def push(self, audio: np.ndarray) -> np.ndarray: ...  # float32[n] -> float32[m]


class MotionStream(Protocol):
    """Per-stream motion sampler state (emostream.engine.motion.MotionEngine.new_stream)."""

    def push(self, features: np.ndarray, vad: np.ndarray) -> np.ndarray: ...  # -> f32[m, 55]
    def flush(self) -> np.ndarray: ...
    def set_emotion(self, emotion: EmotionStyle) -> None: ...
    def set_style(self, reference: np.ndarray) -> None: ...
    def clear(self) -> int | None: ...  # frames dropped (None: none)


class MotionModel(Protocol):
    """Shared motion weights (emostream.engine.motion.MotionEngine)."""

    @property
    def latency_frames(self) -> int:
        """Frame ``i`` is computable once features of frames ``<= i + latency_frames - 1`` are in."""
        ...

    def new_stream(self, seed: int, emotion: EmotionStyle) -> MotionStream: ...


@dataclass
class StageTimes:
    """Cumulative seconds spent per stage (for stats and benchmarks)."""

    features: float = 0.0
    vad: float = 0.0
    motion: float = 0.0
    render: float = 0.0
    frames_motion: int = 0
    frames_rendered: int = 0

    def per_frame_ms(self) -> dict[str, float]:
        m = max(self.frames_motion, 1)
        r = max(self.frames_rendered, 1)
        return {
            "features": 1000 * self.features / m,
            "vad": 1000 * self.vad / m,
            "motion": 1000 * self.motion / m,
            "render": 1000 * self.render / r,
        }


class MotionPipeline:
    """audio (16 kHz mono float32) → features + VAD → motion frames, one stream's state.

    Not thread-safe: one owner (a session's worker thread, or the offline loop) calls it.
    """

    def __init__(
        self,
        featurizer: FeatureStage,
        vad: VadStage,
        stream: MotionStream,
        *,
        times: StageTimes | None = None,
    ) -> None:
        self.featurizer = featurizer
        self.vad = vad
        self.stream = stream
        self.times = times if times is not None else StageTimes()
        self._feat: list[np.ndarray] = []  # features not yet paired with VAD
        self._vad: list[np.ndarray] = []
        self._n_feat = 0
        self._n_vad = 0
        self._skip_feat = 0  # frames dropped by clear() whose features have not arrived yet
        self._skip_vad = 0
        self.frames_out = 0
        self.samples_in = 0

    def push(self, audio: np.ndarray) -> np.ndarray:
        """float32[n] at 16 kHz -> float32[m, MOTION_DIM] newly computable frames."""
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"pipeline audio must be 1-D, got shape {audio.shape}")
        if audio.size == 0:
            return np.zeros((0, MOTION_DIM), np.float32)
        self.samples_in += audio.size
        t = time.perf_counter()
        self._add_features(self.featurizer.push(audio))
        t1 = time.perf_counter()
        self._add_vad(self.vad.push(audio))
        t2 = time.perf_counter()
        self.times.features += t1 - t
        self.times.vad += t2 - t1
        return self._run_motion(final=False)

    def flush(self) -> np.ndarray:
        """End of stream: emit every remaining frame (the lookahead is padded with silence)."""
        t = time.perf_counter()
        self._add_features(self.featurizer.flush())
        self.times.features += time.perf_counter() - t
        # VAD lags or leads the features by at most a frame: pad with silence (prob 0).
        missing = self._n_feat + self._skip_vad - self._n_vad
        if missing > 0:
            self._add_vad(np.zeros(missing, np.float32))
        return self._run_motion(final=True)

    def clear(self) -> int:
        """Barge-in: drop every frame whose features or VAD were computed but whose motion was
        not returned yet (in the motion stream and queued here). Returns how many frames were
        dropped: the next frame returned is that many frames later on the audio timeline.
        (Audio still inside the featurizer/VAD look-ahead becomes the next frames.)"""
        dropped = int(self.stream.clear() or 0)
        ahead = max(self._n_feat, self._n_vad)  # one of the two is 0: they are paired eagerly
        self._skip_feat += ahead - self._n_feat
        self._skip_vad += ahead - self._n_vad
        self._feat, self._vad = [], []
        self._n_feat = self._n_vad = 0
        return dropped + ahead

    def set_emotion(self, style: EmotionStyle) -> None:
        self.stream.set_emotion(style)

    def set_style(self, reference: np.ndarray) -> None:
        self.stream.set_style(reference)

    def _add_features(self, feats: np.ndarray) -> None:
        feats = np.asarray(feats, dtype=np.float32)
        if self._skip_feat and len(feats):
            k = min(self._skip_feat, len(feats))
            feats, self._skip_feat = feats[k:], self._skip_feat - k
        if len(feats):
            self._feat.append(feats)
            self._n_feat += len(feats)

    def _add_vad(self, probs: np.ndarray) -> None:
        probs = np.asarray(probs, dtype=np.float32).reshape(-1)
        if self._skip_vad and len(probs):
            k = min(self._skip_vad, len(probs))
            probs, self._skip_vad = probs[k:], self._skip_vad - k
        if len(probs):
            self._vad.append(probs)
            self._n_vad += len(probs)

    def _run_motion(self, *, final: bool) -> np.ndarray:
        n = min(self._n_feat, self._n_vad)
        parts: list[np.ndarray] = []
        t = time.perf_counter()
        if n:
            feats = np.concatenate(self._feat)
            vad = np.concatenate(self._vad)
            self._feat = [feats[n:]] if len(feats) > n else []
            self._vad = [vad[n:]] if len(vad) > n else []
            self._n_feat -= n
            self._n_vad -= n
            parts.append(np.asarray(self.stream.push(feats[:n], vad[:n]), np.float32))
        if final:
            parts.append(np.asarray(self.stream.flush(), np.float32))
        self.times.motion += time.perf_counter() - t
        parts = [p.reshape(-1, MOTION_DIM) for p in parts]
        out = np.concatenate(parts) if parts else np.zeros((0, MOTION_DIM), np.float32)
        self.frames_out += len(out)
        self.times.frames_motion += len(out)
        return out


class SessionEngine(Protocol):
    """What a ``Session`` uses of its engine (``emostream.engine.pipeline.Engine`` is one)."""

    fps: int
    lookahead_samples: int

    @property
    def latency_frames(self) -> int: ...

    def renderer_for(self, portrait: PortraitKey = None) -> Renderer: ...

    def new_pipeline(
        self, *, seed: int = DEFAULT_SEED, emotion: EmotionStyle | None = None,
        times: StageTimes | None = None,
    ) -> MotionPipeline: ...  # fmt: skip
