"""Blink shaping: spikes → whole blinks, causal and chunk-invariant, only the lids change."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emostream.arkit import MOTION_DIM
from emostream.engine.blinks import BLINK_DIMS, BlinkShape, BlinkShaper
from emostream.errors import ConfigError, InputError

L, R = BLINK_DIMS


def _motion(n: int = 80, seed: int = 0) -> np.ndarray:
    m = np.random.default_rng(seed).uniform(0.0, 0.2, (n, MOTION_DIM)).astype(np.float32)
    m[:, [L, R]] = 0.05
    return m


@pytest.mark.parametrize("fps", [25, 30])
def test_curve_is_a_natural_blink(fps):
    c = BlinkShape().curve(fps)
    ms = 1000 * len(c) / fps
    assert 100 <= ms <= 400
    peak = int(np.argmax(c))
    closing, opening = peak + 1, len(c) - peak
    assert closing < opening and c.max() == 1.0 and c[-1] < 0.15
    assert np.all(np.diff(c[peak:]) <= 0)


def test_a_spike_becomes_a_whole_blink_and_nothing_else_changes():
    m = _motion()
    m[10, [L, R]] = [0.5, 0.4]  # a 1-frame partial spike, as EmoDiff draws them
    s = BlinkShaper(BlinkShape(), 25)
    out = s.shape_frames(m)
    c = BlinkShape().curve(25)
    np.testing.assert_allclose(out[10 : 10 + len(c), L], np.maximum(c, 0.05))
    np.testing.assert_array_equal(out[:10], m[:10])
    np.testing.assert_array_equal(out[10 + len(c) :], m[10 + len(c) :])
    others = [i for i in range(MOTION_DIM) if i not in BLINK_DIMS]
    np.testing.assert_array_equal(out[:, others], m[:, others])
    assert s.blinks == 1


def test_refractory_sustained_levels_and_sub_onset_values():
    m = _motion()
    m[10, [L, R]] = 0.6
    m[13, [L, R]] = 0.6  # within the refractory time: no second blink
    m[40:60, [L, R]] = 0.5  # a sustained level: one blink at the crossing, then capped at onset
    m[66, [L, R]] = 0.25  # a 1-frame twitch below onset: damped
    m[70:, [L, R]] = 0.15  # a steady lowered lid below onset: reached
    s = BlinkShaper(BlinkShape(), 25)
    out = s.shape_frames(m)
    assert s.blinks == 2
    np.testing.assert_allclose(out[58:60, [L, R]], 0.3, atol=2e-3)
    assert np.all(out[66, [L, R]] < 0.15)
    np.testing.assert_allclose(out[79, [L, R]], 0.15, atol=2e-3)


@settings(max_examples=15, deadline=None)
@given(sizes=st.lists(st.integers(0, 30), max_size=8))
def test_chunking_does_not_change_the_output(sizes):
    m = _motion(120, seed=3)
    m[:, [L, R]] = np.random.default_rng(4).uniform(0, 0.6, (120, 2)).astype(np.float32)
    whole = BlinkShaper(BlinkShape(), 25).shape_frames(m)
    s, out, i = BlinkShaper(BlinkShape(), 25), [], 0
    for n in sizes:
        out.append(s.shape_frames(m[i : i + n]))
        i += n
    out.append(s.shape_frames(m[i:]))
    np.testing.assert_array_equal(np.concatenate(out), whole)


def test_bad_config_and_input():
    with pytest.raises(ConfigError):
        BlinkShape(onset=1.5)
    with pytest.raises(ConfigError):
        BlinkShape(close_ms=0)
    with pytest.raises(InputError, match="float32"):
        BlinkShaper(BlinkShape(), 25).shape_frames(np.zeros((4, 52), np.float32))


def test_motion_engine_shapes_only_the_blinks():
    from tiny_motion import FDIM, META, tiny_emodiff

    from emostream.arkit import EmotionStyle
    from emostream.engine.motion import MotionEngine

    m = tiny_emodiff()
    meta = dict(META)
    f = np.random.default_rng(2).standard_normal((60, FDIM)).astype(np.float32)
    raw = MotionEngine(m, meta, blinks=None).generate(f, EmotionStyle(), seed=1)
    shaped = MotionEngine(m, meta).generate(f, EmotionStyle(), seed=1)
    others = [i for i in range(MOTION_DIM) if i not in BLINK_DIMS]
    np.testing.assert_array_equal(shaped[:, others], raw[:, others])
    np.testing.assert_array_equal(shaped, BlinkShaper(BlinkShape(), 25).shape_frames(raw))


def test_blink_stats_count_events_lengths_and_peaks():
    from emostream.engine.blinks import blink_stats

    m = _motion(25 * 60)  # one minute at 25 fps
    m[100:104, [L, R]] = 0.9
    m[500, [L, R]] = [0.5, 0.4]
    st_ = blink_stats([m], 25)
    assert st_["rate_per_min"] == 2.0
    assert st_["median_frames"] == 2.5 and st_["median_peak"] == pytest.approx(0.675)
    assert blink_stats([_motion()], 25)["rate_per_min"] == 0.0
