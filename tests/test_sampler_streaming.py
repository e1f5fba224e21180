"""Streaming sliding-window sampler and MotionEngine: determinism, chunk-size invariance, clear,
emotion blending (a small random network; no training needed for these properties)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from tiny_motion import FDIM, META, tiny_emodiff

from emostream.arkit import MOTION_DIM, EmotionStyle
from emostream.engine.motion import MotionEngine
from emostream.engine.sampler import FrameNoise, WindowSchedule, frame_noise, window_noise
from emostream.errors import ConfigError, InputError


def engine(backend: str = "torch", steps: int = 2) -> MotionEngine:
    return MotionEngine(tiny_emodiff(steps), dict(META), backend=backend, refiner=None, smooth=0.5)


def feats(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, FDIM)).astype(np.float32)


def run_chunks(eng: MotionEngine, f: np.ndarray, sizes: list[int], seed: int = 0) -> np.ndarray:
    s = eng.new_stream(seed, EmotionStyle("happy", 0.7))
    out, i, k = [], 0, 0
    while i < len(f):
        n = sizes[k % len(sizes)]
        out.append(s.push(f[i : i + n]))
        i, k = i + n, k + 1
    out.append(s.flush())
    return np.concatenate(out)


def test_chunk_size_invariance_and_length():
    eng = engine()
    f = feats(29)
    whole = run_chunks(eng, f, [29])
    assert whole.shape == (29, MOTION_DIM)
    for sizes in ([1], [7, 0, 2]):
        np.testing.assert_array_equal(run_chunks(eng, f, sizes), whole)
    assert np.array_equal(eng.generate(f, EmotionStyle("happy", 0.7)), whole)


def test_seeds_differ_fixed_seed_identical():
    eng = engine()
    f = feats(30)
    a, b = run_chunks(eng, f, [30], seed=0), run_chunks(eng, f, [30], seed=0)
    c = run_chunks(eng, f, [30], seed=1)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 1e-3
    assert not np.array_equal(window_noise(0, 1, 12), window_noise(0, 2, 12))


def test_onnx_backend_matches_torch():
    f = feats(25)
    a = run_chunks(engine("torch"), f, [25])
    b = run_chunks(engine("onnx"), f, [4])
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_latency_emission_schedule():
    eng = engine()
    assert eng.latency_frames == 5
    s = eng.new_stream()
    assert s.push(feats(4)).shape[0] == 0  # need hop 3 + lookahead 2 frames
    assert s.push(feats(1)).shape[0] == 3
    assert s.push(feats(3)).shape[0] == 3
    assert s.flush().shape[0] == 2  # 8 frames in, 8 out


def test_clear_drops_queue_and_continues_smoothly():
    eng = engine()
    s = eng.new_stream()
    a = s.push(feats(20))
    assert s.clear() == 2  # the 2 frames whose features were in but not yet emitted
    b = s.push(np.zeros((10, FDIM), np.float32))
    assert len(a) == 18 and len(b) == 6  # queued lookahead frames dropped, timeline continues
    assert s.frames_emitted == 24
    jump = np.abs(b[0] - a[-1]).mean()
    step = np.abs(np.diff(a, axis=0)).mean()
    assert jump < 5 * step + 1e-3


def test_emotion_change_blends():
    eng = engine()
    f = feats(40)
    a, b = eng.new_stream(0, EmotionStyle("neutral")), eng.new_stream(0, EmotionStyle("neutral"))
    a1, b1 = a.push(f[:20]), b.push(f[:20])
    np.testing.assert_array_equal(a1, b1)
    b.set_emotion(EmotionStyle("angry", 1.0))
    a2, b2 = a.push(f[20:]), b.push(f[20:])
    assert not np.allclose(a2, b2)
    st = b._sampler.style
    w = st.at(np.arange(st.f0 - 1, st.f0 + 8))
    assert np.allclose(w[0], st.src) and not np.allclose(w[1], st.dst)  # ramps in, no jump
    assert np.allclose(st.at(np.array([st.f0 + 100]))[0], st.dst)


def test_bad_inputs():
    eng = engine()
    s = eng.new_stream()
    with pytest.raises(InputError, match=r"features must be float32\[n, 10\]"):
        s.push(np.zeros((3, 4), np.float32))
    with pytest.raises(InputError, match="NaN"):
        s.push(np.full((3, FDIM), np.nan, np.float32))
    with pytest.raises(InputError, match="vad has 2 frames"):
        s.push(feats(3), vad=np.ones(2, np.float32))
    with pytest.raises(ConfigError):
        WindowSchedule(8, 5, 3)
    with pytest.raises(InputError, match="style reference"):
        s.set_style(np.zeros((4, 3), np.float32))


def test_vad_gates_to_silence():
    eng = engine()
    f = feats(20)
    a = eng.new_stream().push(f, vad=np.zeros(20, np.float32))
    b = eng.new_stream().push(np.repeat(eng._silence[None], 20, 0))
    np.testing.assert_array_equal(a, b)


def test_frame_noise_follows_the_frame_across_windows():
    fn = FrameNoise(3)
    a, b = fn.window(-9, 12), fn.window(-6, 12)  # next window: hop 3
    np.testing.assert_array_equal(a[3:], b[:9])  # shared frames keep their noise
    np.testing.assert_array_equal(b[-1], frame_noise(3, 5))
    assert not np.array_equal(frame_noise(3, 5), frame_noise(4, 5))
    assert not np.array_equal(frame_noise(3, 5), frame_noise(3, 6))


def test_noise_modes_are_chunk_invariant_and_differ():
    base = engine()
    f = feats(26)
    outs = {}
    for mode in ("frame", "window"):
        base.schedule = dataclasses.replace(base.schedule, noise=mode)
        outs[mode] = run_chunks(base, f, [26])
        np.testing.assert_array_equal(run_chunks(base, f, [2, 5]), outs[mode])
    assert not np.allclose(outs["frame"], outs["window"])
    with pytest.raises(ConfigError, match="noise"):
        WindowSchedule(noise="fresh")
    with pytest.raises(ConfigError, match="sharp"):
        WindowSchedule(sharp=(55,))


def test_sharp_dimensions_bypass_the_output_filter():
    eng, raw = engine(), engine()
    raw.schedule = dataclasses.replace(raw.schedule, smooth=0.0)
    eng.schedule = dataclasses.replace(eng.schedule, sharp=tuple(range(MOTION_DIM)))
    f = feats(20)
    np.testing.assert_array_equal(run_chunks(eng, f, [20]), run_chunks(raw, f, [20]))
    smoothed = run_chunks(engine(), f, [20])
    assert not np.allclose(smoothed, run_chunks(raw, f, [20]))


def test_hop_override_replaces_the_checkpoint_hop():
    """MotionEngine(hop=...) (EngineConfig.hop, `eval motion --hop`) overrides meta 'hop': one
    frame less of hop is one frame less of latency, and the stream stays chunk invariant."""
    base = engine()
    eng = MotionEngine(base.model, {"hop": 3, "lookahead": 2, "fps": 25}, refiner=None, smooth=0.5, hop=2)
    assert (eng.schedule.hop, eng.schedule.lookahead, eng.latency_frames) == (2, 2, 4)
    s = eng.new_stream()
    assert s.push(feats(3)).shape[0] == 0 and s.push(feats(1)).shape[0] == 2
    f = feats(23)
    np.testing.assert_array_equal(run_chunks(eng, f, [23]), run_chunks(eng, f, [1, 4]))
    with pytest.raises(ConfigError, match="bad window schedule"):
        MotionEngine(base.model, {"fps": 25}, refiner=None, hop=0)
