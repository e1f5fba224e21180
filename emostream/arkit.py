"""The ARKit data model: 52 blendshapes (Epic's EARFaceBlendShape order, Apple's names),
head pose, the 8 MEAD emotions with intensity, and the per-frame ``MotionFrame``.

A *motion vector* is float32[MOTION_DIM] = 52 blendshapes followed by head yaw, pitch, roll
(radians). Sequences are float32[T, MOTION_DIM]. This module is the single source of truth
for every index used elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from emostream.config import DEFAULT_FPS
from emostream.errors import ConfigError

BLENDSHAPE_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight",
    "eyeLookOutRight", "eyeLookUpRight", "eyeSquintRight", "eyeWideRight", "jawForward",
    "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft",
    "mouthRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft",
    "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft",
    "noseSneerRight", "tongueOut",
)  # fmt: skip
NUM_BLENDSHAPES = len(BLENDSHAPE_NAMES)
assert NUM_BLENDSHAPES == 52
BLENDSHAPE_INDEX: dict[str, int] = {name: i for i, name in enumerate(BLENDSHAPE_NAMES)}

HEAD_POSE_NAMES: tuple[str, ...] = ("headYaw", "headPitch", "headRoll")  # radians
NUM_HEAD_POSE = len(HEAD_POSE_NAMES)
MOTION_DIM = NUM_BLENDSHAPES + NUM_HEAD_POSE  # 55
HEAD_SLICE = slice(NUM_BLENDSHAPES, MOTION_DIM)

#: What the lip refiner owns: the jaw* and mouth* entries, indices 14..40 inclusive.
MOUTH_SLICE = slice(BLENDSHAPE_INDEX["jawForward"], BLENDSHAPE_INDEX["mouthUpperUpRight"] + 1)
MOUTH_INDICES: tuple[int, ...] = tuple(range(MOUTH_SLICE.start, MOUTH_SLICE.stop))
MOUTH_NAMES: tuple[str, ...] = BLENDSHAPE_NAMES[MOUTH_SLICE]
NUM_MOUTH = len(MOUTH_INDICES)  # 27
#: Everything the lip refiner must leave untouched (eyes, brows, cheeks, nose, tongue, head).
NON_MOUTH_INDICES: tuple[int, ...] = tuple(i for i in range(MOTION_DIM) if i not in MOUTH_INDICES)

EMOTIONS: tuple[str, ...] = (
    "neutral", "angry", "contempt", "disgusted", "fear", "happy", "sad", "surprised",
)  # fmt: skip
NUM_EMOTIONS = len(EMOTIONS)
EMOTION_INDEX: dict[str, int] = {name: i for i, name in enumerate(EMOTIONS)}
#: MEAD's intensity levels 1..3 map to these intensities.
MEAD_LEVELS: tuple[float, ...] = (1 / 3, 2 / 3, 1.0)


@dataclass(frozen=True)
class EmotionStyle:
    """An emotion label with an intensity in [0, 1]."""

    name: str = "neutral"
    intensity: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in EMOTION_INDEX:
            raise ConfigError(f"unknown emotion {self.name!r}; choose one of {', '.join(EMOTIONS)}")
        if not (0.0 <= float(self.intensity) <= 1.0) or self.intensity != self.intensity:
            raise ConfigError(f"emotion intensity must be in [0, 1], got {self.intensity}")

    @property
    def index(self) -> int:
        return EMOTION_INDEX[self.name]

    @classmethod
    def parse(cls, text: str) -> EmotionStyle:
        """Parse ``"happy"`` or ``"happy:0.8"``."""
        name, _, level = text.partition(":")
        try:
            intensity = float(level) if level else 1.0
        except ValueError as e:
            raise ConfigError(f"bad emotion intensity in {text!r}; expected NAME[:0..1]") from e
        return cls(name.strip().lower(), intensity)


@dataclass(frozen=True)
class MotionFrame:
    """One video frame's facial motion. ``pts`` counts frames at ``fps`` from the stream's t0."""

    index: int
    pts: int
    blendshapes: np.ndarray  # float32[52], in [0, 1]
    head_pose: np.ndarray  # float32[3], yaw/pitch/roll in radians
    emotion: EmotionStyle = field(default_factory=EmotionStyle)
    fps: int = DEFAULT_FPS

    def __post_init__(self) -> None:
        if self.blendshapes.shape != (NUM_BLENDSHAPES,):
            raise ValueError(f"blendshapes must have shape (52,), got {self.blendshapes.shape}")
        if self.head_pose.shape != (NUM_HEAD_POSE,):
            raise ValueError(f"head_pose must have shape (3,), got {self.head_pose.shape}")

    @property
    def time(self) -> Fraction:
        return Fraction(self.pts, self.fps)

    def vector(self) -> np.ndarray:
        """float32[MOTION_DIM]"""
        return np.concatenate([self.blendshapes, self.head_pose]).astype(np.float32)

    @classmethod
    def from_vector(
        cls, vec: np.ndarray, index: int, *, pts: int | None = None,
        emotion: EmotionStyle | None = None, fps: int = DEFAULT_FPS,
    ) -> MotionFrame:  # fmt: skip
        vec = np.asarray(vec, dtype=np.float32)
        if vec.shape != (MOTION_DIM,):
            raise ValueError(f"motion vector must have shape ({MOTION_DIM},), got {vec.shape}")
        return cls(
            index=index, pts=index if pts is None else pts,
            blendshapes=vec[:NUM_BLENDSHAPES].copy(), head_pose=vec[HEAD_SLICE].copy(),
            emotion=emotion or EmotionStyle(), fps=fps,
        )  # fmt: skip


def neutral_vector() -> np.ndarray:
    """float32[MOTION_DIM] of zeros: the rest pose."""
    return np.zeros(MOTION_DIM, dtype=np.float32)


def motion_vector(**weights: float) -> np.ndarray:
    """float32[MOTION_DIM] from names: blendshapes (``jawOpen=0.6``) and head ``yaw``/``pitch``/``roll``
    (radians); everything else is at rest."""
    v = neutral_vector()
    for name, w in weights.items():
        if name in _HEAD_KEYS:
            v[HEAD_SLICE.start + _HEAD_KEYS.index(name)] = w
        elif name in BLENDSHAPE_INDEX:
            v[BLENDSHAPE_INDEX[name]] = w
        else:
            raise ConfigError(f"unknown motion parameter {name!r}")
    return v


_HEAD_KEYS = ("yaw", "pitch", "roll")


def clamp_motion(seq: np.ndarray) -> np.ndarray:
    """Clip blendshapes to [0, 1] and head angles to ±60°; works on [..., MOTION_DIM]."""
    out = np.array(seq, dtype=np.float32, copy=True)
    out[..., :NUM_BLENDSHAPES] = np.clip(out[..., :NUM_BLENDSHAPES], 0.0, 1.0)
    out[..., HEAD_SLICE] = np.clip(out[..., HEAD_SLICE], -np.pi / 3, np.pi / 3)
    return out
