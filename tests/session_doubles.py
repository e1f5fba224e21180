"""Small deterministic test doubles for the runtime's stages (tests only).

They implement the same interfaces as the real stages (emostream.engine.pipeline protocols)
so the session's scheduling, sync and control logic can be tested on its own, quickly and
exactly. The motion double is a causal per-frame map with a fixed look-ahead:
jawOpen follows the audio energy, a blink every 2 s, mouthSmileLeft/Right blend towards the
emotion's intensity over ``WINDOW`` frames, and ``clear()`` drops the frames in flight and
closes the mouth until speech resumes.
"""

from __future__ import annotations

import numpy as np

from emostream.arkit import BLENDSHAPE_INDEX, MOTION_DIM, EmotionStyle
from emostream.config import SAMPLE_RATE, frame_start_sample, frames_covering
from emostream.engine.pipeline import Engine

JAW = BLENDSHAPE_INDEX["jawOpen"]
BLINK = BLENDSHAPE_INDEX["eyeBlinkLeft"]
SMILE = BLENDSHAPE_INDEX["mouthSmileLeft"]
WINDOW = 8  # frames: "one window" of the double motion model
LATENCY = 3  # frame i needs the features of frames <= i + LATENCY - 1


class EnergyFeaturizer:
    """float32[k, 1] per frame: RMS of the frame's samples (no look-ahead), chunk invariant."""

    lookahead_samples = 0

    def __init__(self, fps: int) -> None:
        self.fps = fps
        self._buf = np.zeros(0, np.float32)
        self._start = 0
        self._n = 0
        self._next = 0

    def _emit(self, total: int | None) -> np.ndarray:
        out = []
        while True:
            a = frame_start_sample(self._next, self.fps)
            b = frame_start_sample(self._next + 1, self.fps)
            if (total is None and b > self._n) or (total is not None and self._next >= total):
                break
            seg = np.zeros(b - a, np.float32)
            hi = min(b, self._n)
            seg[: hi - a] = self._buf[a - self._start : hi - self._start]
            out.append([float(np.sqrt(np.mean(seg.astype(np.float64) ** 2)))])
            self._next += 1
        keep = frame_start_sample(self._next, self.fps)
        self._buf = self._buf[keep - self._start :]
        self._start = keep
        return np.asarray(out, np.float32).reshape(-1, 1)

    def push(self, audio: np.ndarray) -> np.ndarray:
        self._buf = np.concatenate([self._buf, audio])
        self._n += audio.size
        return self._emit(None)

    def flush(self) -> np.ndarray:
        return self._emit(frames_covering(self._n, self.fps))


class EnergyVAD:
    """Speech probability per frame: 1 where the RMS exceeds 0.01."""

    def __init__(self, fps: int) -> None:
        self._feat = EnergyFeaturizer(fps)

    def push(self, audio: np.ndarray) -> np.ndarray:
        return (self._feat.push(audio)[:, 0] > 0.01).astype(np.float32)


class DoubleMotionStream:
    def __init__(self, seed: int, emotion: EmotionStyle) -> None:
        self.seed = seed
        self.target = emotion.intensity if emotion.name == "happy" else 0.0
        self.smile = self.target
        self.closed = False
        self._feat: list[float] = []
        self._vad: list[float] = []
        self._next = 0

    def _frame(self, i: int) -> np.ndarray:
        v = np.zeros(MOTION_DIM, np.float32)
        energy = self._feat[i]
        v[JAW] = 0.0 if self.closed else float(np.clip(8.0 * energy, 0.0, 1.0)) * self._vad[i]
        v[BLINK] = 1.0 if (i + self.seed) % 50 in (0, 1, 2) else 0.0
        self.smile += float(np.clip(self.target - self.smile, -1 / WINDOW, 1 / WINDOW))
        v[SMILE] = self.smile
        return v

    def _emit(self, upto: int) -> np.ndarray:
        out = []
        while self._next < upto:
            out.append(self._frame(self._next))
            self._next += 1
        return np.asarray(out, np.float32).reshape(-1, MOTION_DIM)

    def push(self, features: np.ndarray, vad: np.ndarray) -> np.ndarray:
        assert len(features) == len(vad)
        self._feat.extend(float(x) for x in np.asarray(features).mean(axis=1))
        self._vad.extend(float(x) for x in vad)
        self.closed = self.closed and not np.any(np.asarray(vad) > 0.5)
        return self._emit(len(self._feat) - (LATENCY - 1))

    def flush(self) -> np.ndarray:
        return self._emit(len(self._feat))

    def set_emotion(self, emotion: EmotionStyle) -> None:
        self.target = emotion.intensity if emotion.name == "happy" else 0.0

    def set_style(self, reference: np.ndarray) -> None:
        self.target = float(np.asarray(reference)[:, SMILE].mean())

    def clear(self) -> int:
        """Like the real stream: drop the frames whose features are in but not yet emitted (the
        next features become frame ``_next``) and return how many were dropped."""
        dropped = len(self._feat) - self._next
        del self._feat[self._next :], self._vad[self._next :]
        self.closed = True
        return dropped


class DoubleMotionModel:
    latency_frames = LATENCY

    def new_stream(self, seed: int, emotion: EmotionStyle) -> DoubleMotionStream:
        return DoubleMotionStream(seed, emotion)


class DoubleRenderer:
    """uint8[B, 24, 32, 3]: red = jawOpen, green = blink, blue = smile (x255)."""

    height = 24
    width = 32

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s

    def render(self, motion: np.ndarray) -> np.ndarray:
        import time

        if self.delay_s:
            time.sleep(self.delay_s * len(motion))
        out = np.zeros((len(motion), self.height, self.width, 3), np.uint8)
        for k, v in enumerate(motion):
            out[k, :, :, 0] = round(255 * float(v[JAW]))
            out[k, :, :, 1] = round(255 * float(v[BLINK]))
            out[k, :, :, 2] = round(255 * float(v[SMILE]))
        return out


def double_engine(*, real_features: bool = False, render_delay_s: float = 0.0, fps: int = 25) -> Engine:
    """An Engine whose stages are the doubles above (optionally with the real features/VAD)."""
    if real_features:
        from emostream.engine.features import Featurizer
        from emostream.engine.vad import SileroVAD

        return Engine(
            motion_model=DoubleMotionModel(),
            renderer_factory=lambda portrait: DoubleRenderer(render_delay_s),
            featurizer_factory=Featurizer,
            vad_factory=SileroVAD,
            lookahead_samples=max(Featurizer(fps).lookahead_samples, SileroVAD(fps).lookahead_samples),
            fps=fps,
        )
    return Engine(
        motion_model=DoubleMotionModel(),
        renderer_factory=lambda portrait: DoubleRenderer(render_delay_s),
        featurizer_factory=EnergyFeaturizer,
        vad_factory=EnergyVAD,
        lookahead_samples=0,
        fps=fps,
    )


def tone(seconds: float, freq: float = 220.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
