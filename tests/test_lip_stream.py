"""Lip refiner stage: streaming invariance, ONNX parity, pass-through of non-mouth values, loading."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_lip import chunked_refine

from emostream.arkit import MOTION_DIM, MOUTH_SLICE, NON_MOUTH_INDICES, EmotionStyle
from emostream.engine.lip import LipRefiner, StyleRef
from emostream.errors import CheckpointError, ConfigError, InputError
from emostream.models.lip_refiner import LipRefiner as Net
from emostream.models.lip_refiner import LipRefinerConfig, load_lip_checkpoint, save_lip_checkpoint

F = 24
T = 90


def _net(lookahead: int = 2, seed: int = 0, prior: bool = False) -> Net:
    torch.manual_seed(seed)
    net = Net(LipRefinerConfig(feature_dim=F, hidden=32, lstm_layers=2, style_dim=8, cnn_channels=16,
                               head_hidden=32, lookahead_frames=lookahead, prior_input=prior))  # fmt: skip
    with torch.no_grad():  # non-trivial normalisation buffers
        net.feat_mean.uniform_(-0.5, 0.5)
        net.feat_std.uniform_(0.5, 2.0)
    return net.eval()


@pytest.fixture(scope="module", params=[False, True], ids=["audio", "audio+prior"])
def refiner(request) -> LipRefiner:
    """The refiner without and with EmoDiff's mouth as a prior input: the stream logic is shared."""
    return LipRefiner(_net(prior=request.param))


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return (
        rng.standard_normal((T, F)).astype(np.float32),
        rng.uniform(-0.5, 1.5, (T, MOTION_DIM)).astype(np.float32),
    )


@pytest.fixture(scope="module")
def whole(refiner, data) -> np.ndarray:
    return refiner.refine(*data, EmotionStyle("happy", 0.7))


@settings(max_examples=10, deadline=None)
@given(sizes=st.lists(st.integers(0, 25), max_size=10))
def test_random_chunking_is_bit_identical(refiner, data, whole, sizes):
    feats, motion = data
    assert whole.shape == (T, MOTION_DIM)
    assert np.array_equal(chunked_refine(refiner, feats, motion, sizes), whole)


def test_output_lags_by_lookahead_and_matches_batch_forward(refiner, data):
    feats, motion = data
    s = refiner.new_stream("neutral")
    assert s.lookahead_frames == 2
    assert s.push(feats[:1], motion[:1]).shape == (0, MOTION_DIM)
    assert s.push(feats[1:10], motion[1:10]).shape == (8, MOTION_DIM)
    assert s.pending_frames == 2
    assert s.flush().shape == (2, MOTION_DIM)
    # The batch forward over the padded sequence gives the same mouth (within float rounding).
    net = refiner._backend.net
    style = torch.from_numpy(refiner.label_style(EmotionStyle()))[None]
    padded = np.concatenate([feats, np.repeat(feats[-1:], 2, axis=0)])
    # the prior as training aligns it: step s gets EmoDiff's mouth of frame s - 2, zeros before
    prior = np.concatenate([np.zeros((2, 27), np.float32), motion[:, MOUTH_SLICE]])
    with torch.no_grad():
        y, _ = net(torch.from_numpy(padded)[None], style, prior=torch.from_numpy(prior)[None])
    ref = y[0, 2:].clamp(0, 1).numpy()
    got = refiner.refine(feats, motion, "neutral")[:, MOUTH_SLICE]
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_non_mouth_values_pass_through_bit_exact(refiner, data):
    feats, motion = data
    out = refiner.refine(feats, motion, "angry:0.5")
    idx = list(NON_MOUTH_INDICES)
    assert np.array_equal(out[:, idx], motion[:, idx])  # includes values outside [0, 1]
    mouth = out[:, MOUTH_SLICE]
    assert mouth.min() >= 0.0 and mouth.max() <= 1.0
    assert not np.array_equal(mouth, motion[:, MOUTH_SLICE])


def test_state_carries_and_clear_resets(refiner, data):
    feats, motion = data
    s = refiner.new_stream()
    first = np.concatenate([s.push(feats[:40], motion[:40]), s.flush()])
    s.push(feats[:40], motion[:40])  # after flush: fresh state, same output
    s.clear()
    again = np.concatenate([s.push(feats[:40], motion[:40]), s.flush()])
    assert np.array_equal(first, again)
    # Frames 20..40 depend on what came before: the state is carried, not reset per chunk.
    late = refiner.refine(feats[20:40], motion[20:40])
    assert not np.array_equal(late[:, MOUTH_SLICE], first[20:40, MOUTH_SLICE])


def test_style_changes_mouth_and_blends(refiner, data):
    feats, motion = data
    happy = refiner.refine(feats, motion, "happy")
    sad = refiner.refine(feats, motion, "sad")
    assert not np.array_equal(happy, sad)
    s = refiner.new_stream("happy")
    a = s.push(feats[:30], motion[:30])
    s.set_emotion("sad", 1.0)
    b = np.concatenate([s.push(feats[30:], motion[30:]), s.flush()])
    mixed = np.concatenate([a, b])
    assert np.array_equal(mixed[:28], happy[:28])  # before the change: untouched
    with pytest.raises(ConfigError, match="unknown emotion"):
        s.set_emotion("bored")
    ref = np.random.default_rng(3).random((50, MOTION_DIM)).astype(np.float32)
    s.set_style(StyleRef(ref))
    s.set_style(ref)  # a bare float32[T, 55] array is a reference clip too


def test_bad_input_shapes(refiner, data):
    feats, motion = data
    s = refiner.new_stream()
    with pytest.raises(InputError, match=rf"features must be float32\[n, {F}\], got \(5, 7\)"):
        s.push(np.zeros((5, 7), np.float32), motion[:5])
    with pytest.raises(InputError, match="got 5 feature frames but 4 motion frames"):
        s.push(feats[:5], motion[:4])
    with pytest.raises(InputError, match="style reference must be"):
        refiner.new_stream(np.zeros((10, 52), np.float32))


@pytest.mark.parametrize("prior", [False, True])
def test_onnx_matches_torch(data, prior):
    net = _net(prior=prior)
    t, o = LipRefiner(net), LipRefiner(net, backend="onnx")
    feats, motion = data
    ref = np.random.default_rng(4).random((40, MOTION_DIM)).astype(np.float32)
    for style in ("surprised:0.4", StyleRef(ref)):
        a, b = t.refine(feats, motion, style), o.refine(feats, motion, style)
        assert np.abs(a - b).max() < 1e-4
    assert np.abs(t.clip_style(ref) - o.clip_style(ref)).max() < 1e-4


def test_checkpoint_round_trip_and_errors(tmp_path, data):
    net = _net(lookahead=3)
    save_lip_checkpoint(net, tmp_path / "lip", {"note": "test"})
    loaded, meta = load_lip_checkpoint(tmp_path / "lip.safetensors")
    assert meta["note"] == "test" and loaded.cfg == net.cfg
    feats, motion = data
    a = LipRefiner(net).refine(feats, motion)
    b = LipRefiner.load(tmp_path / "lip").refine(feats, motion)
    assert np.array_equal(a, b)
    assert LipRefiner.load(tmp_path / "lip").lookahead_frames == 3
    # wrong shapes: a config that does not match the tensors
    doc = json.loads((tmp_path / "lip.json").read_text())
    doc["config"]["hidden"] = 48
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    (tmp_path / "bad.safetensors").write_bytes((tmp_path / "lip.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=r"has shape .* the config expects"):
        LipRefiner.load(tmp_path / "bad")
    # another model's checkpoint
    doc["kind"] = "emodiff"
    (tmp_path / "other.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="is a 'emodiff' model, expected 'lip_refiner'"):
        load_lip_checkpoint(tmp_path / "other")
    # truncated weights
    (tmp_path / "trunc.json").write_text((tmp_path / "lip.json").read_text())
    (tmp_path / "trunc.safetensors").write_bytes((tmp_path / "lip.safetensors").read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        LipRefiner.load(tmp_path / "trunc")
    with pytest.raises(ConfigError, match="backend must be one of"):
        LipRefiner(net, backend="tflite")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_backend_matches_cpu(data):
    net = _net()
    feats, motion = data
    a = LipRefiner(net).refine(feats, motion)
    b = LipRefiner(_net(), device="cuda").refine(feats, motion)
    assert np.abs(a - b).max() < 1e-4


def test_gate_calibration_moves_only_mouth_close_towards_closed(data):
    """gate_scale/gate_bias (defaults: the trained gate as is) change only mouthClose, and a higher
    bias never opens the lips: lip gap jawOpen − mouthClose shrinks or stays."""
    from dataclasses import replace

    from emostream.arkit import BLENDSHAPE_INDEX, MOUTH_INDICES

    feats, motion = data
    net = _net()
    with torch.no_grad():  # an open jaw, so the lip gap is there to close
        net.head[-1].bias[MOUTH_INDICES.index(BLENDSHAPE_INDEX["jawOpen"])] += 0.8
    base = LipRefiner(net).refine(feats, motion, "neutral")
    net.cfg = replace(net.cfg, gate_bias=3.0)
    biased = LipRefiner(net).refine(feats, motion, "neutral")
    net.cfg = replace(net.cfg, gate_bias=0.0)
    assert np.array_equal(LipRefiner(net).refine(feats, motion, "neutral"), base)
    jaw, close = BLENDSHAPE_INDEX["jawOpen"], BLENDSHAPE_INDEX["mouthClose"]
    others = [i for i in range(MOTION_DIM) if i != close]
    np.testing.assert_array_equal(biased[:, others], base[:, others])
    gap_base = np.maximum(0, base[:, jaw] - base[:, close])
    gap_biased = np.maximum(0, biased[:, jaw] - biased[:, close])
    assert (gap_biased <= gap_base + 1e-6).all() and gap_biased.sum() < gap_base.sum()
    with pytest.raises(ConfigError):
        replace(net.cfg, gate_scale=0.0)


def test_split_api_steps_ahead_of_the_motion(refiner, data, whole):
    """step() takes features as they arrive and says how many frames are ready, apply() refines
    EmoDiff's frames later, finish() pads the look-ahead: the same frames as push/flush."""
    feats, motion = data
    s = refiner.new_stream(EmotionStyle("happy", 0.7))
    assert s.step(feats[:10]) == 8 == s.mouths_ready  # lookahead 2: frames 0..7 have their mouth
    out = [s.apply(motion[:5])]
    assert s.mouths_ready == 3
    s.step(feats[10:])
    out.append(s.apply(motion[5 : T - 2]))
    assert s.finish() == 2  # the last 2 frames, from the padded audio
    out.append(s.apply(motion[T - 2 :]))
    assert np.array_equal(np.concatenate(out), whole)
    with pytest.raises(InputError, match="0 mouths ready, asked for 1"):
        s.apply(motion[:1])


def test_prior_is_read_causally_for_its_own_frame(data):
    """With a prior input, EmoDiff's mouth of frame k changes the refined mouth from frame k on
    and never before; without one the refiner ignores it."""
    feats, motion = data
    bumped = motion.copy()
    bumped[40, MOUTH_SLICE] += 0.5
    with_prior = LipRefiner(_net(prior=True))
    a, b = with_prior.refine(feats, motion), with_prior.refine(feats, bumped)
    assert np.array_equal(a[:40], b[:40])
    assert not np.allclose(a[40, MOUTH_SLICE], b[40, MOUTH_SLICE])
    audio_only = LipRefiner(_net())
    assert np.array_equal(audio_only.refine(feats, motion), audio_only.refine(feats, bumped))


def test_short_segment_and_new_features_after_finish(refiner, data):
    """A segment shorter than the look-ahead still gives all its frames; features of a new segment
    may only come once the finished one is applied."""
    feats, motion = data
    s = refiner.new_stream()
    assert s.step(feats[:1]) == 0
    assert s.finish() == 1
    with pytest.raises(InputError, match="apply the finished segment"):
        s.step(feats[1:2])
    one = s.apply(motion[:1])
    assert one.shape == (1, MOTION_DIM)
    assert np.array_equal(one, refiner.refine(feats[:1], motion[:1]))
    assert s.finish() == 0 and s.step(feats[:3]) == 1  # a fresh segment
