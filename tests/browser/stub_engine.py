"""A real ``Engine`` (real Session, real analytic renderer) whose learned stages are replaced
by transparent test stand-ins, so the transport can be tested end to end before (or without)
trained weights: features = per-frame RMS, VAD = RMS > 0.02, motion = jawOpen ∝ RMS.
The mouth therefore opens exactly with the audio's energy, which the browser test checks.
"""

from __future__ import annotations

import numpy as np

from emostream.arkit import BLENDSHAPE_INDEX, MOTION_DIM, EmotionStyle
from emostream.config import SAMPLE_RATE
from emostream.engine.pipeline import Engine

JAW = BLENDSHAPE_INDEX["jawOpen"]


class EnergyFeatures:
    """float32[m, 1]: RMS of each complete 1/fps block of audio."""

    def __init__(self, fps: int) -> None:
        self.block = SAMPLE_RATE // fps
        self.rest = np.zeros(0, np.float32)

    def push(self, audio: np.ndarray) -> np.ndarray:
        x = np.concatenate([self.rest, np.asarray(audio, np.float32)])
        m = len(x) // self.block
        self.rest = x[m * self.block :]
        blocks = x[: m * self.block].reshape(m, self.block)
        return np.sqrt((blocks**2).mean(axis=1, keepdims=True)).astype(np.float32)

    def flush(self) -> np.ndarray:
        if not len(self.rest):
            return np.zeros((0, 1), np.float32)
        out = self.push(np.zeros(self.block - len(self.rest), np.float32))
        return out


class EnergyVad:
    def __init__(self, fps: int) -> None:
        self.features = EnergyFeatures(fps)

    def push(self, audio: np.ndarray) -> np.ndarray:
        return (self.features.push(audio)[:, 0] > 0.02).astype(np.float32)


class EnergyMotionStream:
    def __init__(self) -> None:
        self.emotion = EmotionStyle()

    def push(self, features: np.ndarray, vad: np.ndarray) -> np.ndarray:
        out = np.zeros((len(features), MOTION_DIM), np.float32)
        out[:, JAW] = np.clip(features[:, 0] * 6.0, 0.0, 1.0)
        return out

    def flush(self) -> np.ndarray:
        return np.zeros((0, MOTION_DIM), np.float32)

    def set_emotion(self, style: EmotionStyle) -> None:
        self.emotion = style

    def set_style(self, reference: np.ndarray) -> None:
        pass

    def clear(self) -> None:
        pass


class EnergyMotionModel:
    latency_frames = 0

    def new_stream(self, seed: int, emotion: EmotionStyle) -> EnergyMotionStream:
        return EnergyMotionStream()


def energy_engine(size: int = 256, fps: int = 25) -> Engine:
    from emostream.render.factory import create_renderer

    return Engine(
        motion_model=EnergyMotionModel(),
        renderer_factory=lambda portrait: create_renderer("analytic", portrait, size=size),
        featurizer_factory=EnergyFeatures,
        vad_factory=EnergyVad,
        lookahead_samples=0,
        fps=fps,
    )
