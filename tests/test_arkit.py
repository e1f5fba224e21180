"""The ARKit data model: names and order, index slices, emotions, MotionFrame."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from emostream import arkit
from emostream.errors import ConfigError

DESIGN_ORDER = """eyeBlinkLeft, eyeLookDownLeft, eyeLookInLeft, eyeLookOutLeft, eyeLookUpLeft,
  eyeSquintLeft, eyeWideLeft, eyeBlinkRight, eyeLookDownRight, eyeLookInRight,
  eyeLookOutRight, eyeLookUpRight, eyeSquintRight, eyeWideRight, jawForward, jawLeft,
  jawRight, jawOpen, mouthClose, mouthFunnel, mouthPucker, mouthLeft, mouthRight,
  mouthSmileLeft, mouthSmileRight, mouthFrownLeft, mouthFrownRight, mouthDimpleLeft,
  mouthDimpleRight, mouthStretchLeft, mouthStretchRight, mouthRollLower, mouthRollUpper,
  mouthShrugLower, mouthShrugUpper, mouthPressLeft, mouthPressRight, mouthLowerDownLeft,
  mouthLowerDownRight, mouthUpperUpLeft, mouthUpperUpRight, browDownLeft, browDownRight,
  browInnerUp, browOuterUpLeft, browOuterUpRight, cheekPuff, cheekSquintLeft,
  cheekSquintRight, noseSneerLeft, noseSneerRight, tongueOut"""


def test_names_follow_design_order() -> None:
    names = tuple(n.strip() for n in DESIGN_ORDER.replace("\n", " ").split(","))
    assert names == arkit.BLENDSHAPE_NAMES and len(set(names)) == 52
    assert arkit.MOTION_DIM == 55 and slice(52, 55) == arkit.HEAD_SLICE


def test_mouth_subset() -> None:
    assert tuple(range(14, 41)) == arkit.MOUTH_INDICES
    assert all(n.startswith(("jaw", "mouth")) for n in arkit.MOUTH_NAMES)
    others = [n for i, n in enumerate(arkit.BLENDSHAPE_NAMES) if i not in arkit.MOUTH_INDICES]
    assert not any(n.startswith(("jaw", "mouth")) for n in others)
    assert set(arkit.MOUTH_INDICES).isdisjoint(arkit.NON_MOUTH_INDICES)
    assert len(arkit.MOUTH_INDICES) + len(arkit.NON_MOUTH_INDICES) == arkit.MOTION_DIM


def test_emotions() -> None:
    assert arkit.EMOTIONS == (
        "neutral",
        "angry",
        "contempt",
        "disgusted",
        "fear",
        "happy",
        "sad",
        "surprised",
    )
    s = arkit.EmotionStyle.parse("Happy:0.25")
    assert (s.name, s.intensity, s.index) == ("happy", 0.25, 5)
    for bad in ("bored", "happy:2", "happy:x", "happy:nan"):
        with pytest.raises(ConfigError):
            arkit.EmotionStyle.parse(bad)


def test_motion_frame_round_trip() -> None:
    vec = np.linspace(0, 1, 55, dtype=np.float32)
    f = arkit.MotionFrame.from_vector(vec, index=50, fps=25)
    assert np.array_equal(f.vector(), vec) and f.time == Fraction(2)
    with pytest.raises(ValueError):
        arkit.MotionFrame.from_vector(vec[:54], index=0)
    clamped = arkit.clamp_motion(np.full((2, 55), 5.0, np.float32))
    assert clamped[:, :52].max() == 1.0 and np.allclose(clamped[:, 52:], np.pi / 3)


def test_motion_vector_by_name() -> None:
    from emostream.arkit import BLENDSHAPE_INDEX, HEAD_SLICE, motion_vector
    from emostream.errors import ConfigError

    v = motion_vector(jawOpen=0.6, yaw=0.2, roll=-0.1)
    assert v.dtype == np.float32 and v.shape == (55,)
    assert v[BLENDSHAPE_INDEX["jawOpen"]] == np.float32(0.6)
    np.testing.assert_array_equal(v[HEAD_SLICE], np.float32([0.2, 0.0, -0.1]))
    assert np.count_nonzero(v) == 3
    with pytest.raises(ConfigError, match="unknown motion parameter 'jawOpn'"):
        motion_vector(jawOpn=1.0)
