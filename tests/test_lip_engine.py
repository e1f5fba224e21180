"""Refiner on/off plumbing through the MotionEngine (tiny random networks, no training needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_motion import FDIM, META, tiny_emodiff

from emostream.arkit import MOUTH_SLICE, NON_MOUTH_INDICES, EmotionStyle
from emostream.engine.lip import LipRefiner
from emostream.engine.motion import MotionEngine
from emostream.models.lip_refiner import LipRefiner as Net
from emostream.models.lip_refiner import LipRefinerConfig


def _engine(refiner: LipRefiner | None) -> MotionEngine:
    return MotionEngine(tiny_emodiff(), dict(META), refiner=refiner)


@pytest.fixture(scope="module", params=[False, True], ids=["audio", "audio+prior"])
def refiner(request) -> LipRefiner:
    """Without and with EmoDiff's mouth as a prior input (read when EmoDiff emits the frame)."""
    torch.manual_seed(1)
    return LipRefiner(Net(LipRefinerConfig(feature_dim=FDIM, hidden=16, lstm_layers=1, style_dim=8,
                                           cnn_channels=8, head_hidden=16,
                                           prior_input=request.param)))  # fmt: skip


def _run(eng: MotionEngine, f: np.ndarray, sizes: list[int]) -> np.ndarray:
    s = eng.new_stream(0, EmotionStyle("happy", 0.7))
    out, i = [], 0
    for n in sizes:
        out.append(s.push(f[i : i + n]))
        i += n
    out.append(s.push(f[i:]))
    out.append(s.flush())
    return np.concatenate(out)


def test_refiner_on_off_same_frames_only_mouth_differs(refiner):
    f = np.random.default_rng(2).standard_normal((47, FDIM)).astype(np.float32)
    off_eng, on_eng = _engine(None), _engine(refiner)
    # the refiner needs features up to i + 2 for frame i, which EmoDiff (look-ahead 2) already waited for
    assert on_eng.latency_frames == off_eng.latency_frames == 5
    off = _run(off_eng, f, [47])
    on = _run(on_eng, f, [47])
    assert on.shape == off.shape == (47, 55)
    idx = list(NON_MOUTH_INDICES)
    assert np.array_equal(on[:, idx], off[:, idx])  # emotion/upper face/head untouched, bit-exact
    assert not np.allclose(on[:, MOUTH_SLICE], off[:, MOUTH_SLICE])
    # with the refiner the output is still chunk-size invariant end to end
    assert np.array_equal(_run(on_eng, f, [1, 5, 2, 9, 3, 1, 11]), on)
    # and it is exactly the refiner run after EmoDiff on the same features (the offline definition)
    assert np.array_equal(on, refiner.refine(f, off, EmotionStyle("happy", 0.7)))


@pytest.mark.parametrize("lip_lookahead", [0, 2, 4, 6])
def test_refiner_adds_no_latency_up_to_emodiff_lookahead(lip_lookahead):
    """Frames come out as soon as both EmoDiff's motion and the refined mouth exist; every frame
    is out once ``latency_frames - 1`` later features are in, and never later than that."""
    torch.manual_seed(1)
    ref = LipRefiner(Net(LipRefinerConfig(feature_dim=FDIM, hidden=16, lstm_layers=1, style_dim=8,
                                          cnn_channels=8, head_hidden=16,
                                          lookahead_frames=lip_lookahead)))  # fmt: skip
    eng, off = _engine(ref), _engine(None)
    assert eng.latency_frames == max(5, lip_lookahead + 1)
    f = np.random.default_rng(5).standard_normal((40, FDIM)).astype(np.float32)
    s, s_off = eng.new_stream(0, EmotionStyle()), off.new_stream(0, EmotionStyle())
    out = n_off = 0
    for i in range(len(f)):
        out += len(s.push(f[i : i + 1]))
        n_off += len(s_off.push(f[i : i + 1]))
        assert out >= i + 1 - (eng.latency_frames - 1)  # frame i - latency + 1 is out
        if lip_lookahead <= 2:
            assert out == n_off  # exactly when EmoDiff alone would give it
    assert out + len(s.flush()) == len(f)


def test_controls_reach_the_refiner(refiner):
    f = np.random.default_rng(3).standard_normal((30, FDIM)).astype(np.float32)
    s = _engine(refiner).new_stream(0, EmotionStyle("neutral", 1.0))
    a = s.push(f[:15])
    s.set_emotion(EmotionStyle("sad", 0.5))
    s.set_style(np.random.default_rng(4).random((20, 55)).astype(np.float32))
    b = s.push(f[15:])
    dropped = s.clear()
    assert s._refiner is not None and s._refiner.mouths_ready == 0  # type: ignore[attr-defined]
    assert a.shape[1] == b.shape[1] == 55
    # every frame pushed is either returned or reported dropped by clear()
    assert len(a) + len(b) + dropped == len(f)
    assert len(s.push(f[:10])) + len(s.flush()) == 10
