"""EmoDiff model, training, checkpoints and ONNX parity (small, synthetic data, CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emostream.arkit import BLENDSHAPE_INDEX, EMOTIONS, MOTION_DIM, EmotionStyle
from emostream.config import frames_covering
from emostream.errors import CheckpointError
from emostream.models.emodiff import EmoDiff, EmoDiffConfig, load_emodiff, save_emodiff
from emostream.training.schema import Utterance

FDIM = 12
TINY = {
    "window": 16,
    "d_model": 32,
    "n_layers": 2,
    "n_heads": 2,
    "d_ff": 64,
    "dropout": 0.0,
    "sampler_steps": 4,
    "style": {"d_style": 16, "hidden": 16},
}


def synth_utterances(n: int, seed: int = 0) -> list[Utterance]:
    """Bursts of noise with pauses; jawOpen follows the burst energy, brows follow the emotion."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        n_frames = int(rng.integers(40, 70))
        env = (rng.random(n_frames // 5 + 1) > 0.4).repeat(5)[:n_frames].astype(np.float32)
        audio = (rng.standard_normal(n_frames * 640) * np.repeat(env, 640) * 0.3).astype(np.float32)
        T = frames_covering(len(audio), 25)
        tg = np.zeros((T, MOTION_DIM), np.float32)
        tg[:, BLENDSHAPE_INDEX["jawOpen"]] = np.convolve(env, np.ones(3) / 3, "same")[:T] * 0.6
        emo = EMOTIONS[i % len(EMOTIONS)]
        tg[:, (0, 5, 6, 41, 42, 43, 44, 47)[i % len(EMOTIONS)]] = 0.5  # one upper-face channel per emotion
        tg[:, 52] = np.cumsum(rng.standard_normal(T)) * 0.005
        out.append(
            Utterance(f"u{i}", audio, [], tg, 25, EmotionStyle(emo, 1.0), "synth", "v", "", "train", i)
        )
    return out


def energy_features(audio: np.ndarray, fps: int) -> np.ndarray:
    """A tiny stand-in featurizer: log energy in FDIM sub-bands of each 640-sample frame."""
    T = frames_covering(len(audio), fps)
    x = np.zeros(T * 640, np.float32)
    x[: len(audio)] = audio
    fr = (
        x.reshape(T, FDIM, 640 // FDIM * 1 if 640 % FDIM == 0 else 1)[:, :, :] if False else x.reshape(T, 640)
    )
    bands = np.array_split(np.abs(np.fft.rfft(fr, axis=1)) ** 2, FDIM, axis=1)
    return np.log(np.stack([b.mean(1) for b in bands], 1) + 1e-6).astype(np.float32)


def tiny_model(seed: int = 0) -> EmoDiff:
    torch.manual_seed(seed)
    m = EmoDiff(EmoDiffConfig.from_dict({"feature_dim": FDIM, **TINY}))
    for p in m.parameters():  # non-zero output head so an untrained net still reacts to inputs
        if p.ndim > 1:
            torch.nn.init.normal_(p, std=0.1)
    return m.eval()


def test_training_lowers_loss(tmp_path):
    from emostream.training.train_emodiff import TrainConfig, prepare_clips, train

    torch.set_num_threads(1)
    clips = prepare_clips(synth_utterances(16), energy_features, None, 0, 0)
    cfg = TrainConfig(steps=120, batch=16, lr=3e-3, warmup=10, eval_every=120, hop=2, lookahead=1, model=TINY)
    silence = energy_features(np.zeros(640, np.float32), 25)[0]
    _model, hist = train(clips[:14], clips[14:], tmp_path / "m", cfg, silence=silence, progress=False)
    first, last = hist[0]["loss"], hist[-1]["loss"]
    assert last < 0.7 * first, hist
    assert (tmp_path / "m.safetensors").is_file() and (tmp_path / "m_train" / "loss.png").is_file()
    # resume continues from the saved step
    cfg2 = TrainConfig(**{**cfg.to_dict(), "steps": 130})
    _, hist2 = train(
        clips[:14], clips[14:], tmp_path / "m", cfg2, silence=silence, progress=False, resume=True
    )
    assert hist2[:3] == hist[:3] and hist2[-1]["step"] == 130


def test_mouth_loss_weighting():
    from emostream.arkit import MOUTH_INDICES
    from emostream.training.train_emodiff import WindowBatcher, diffusion_loss, dim_weights, prepare_clips

    w = dim_weights(4.0)
    assert torch.isclose(w.mean(), torch.tensor(1.0))
    assert torch.isclose(w[MOUTH_INDICES[0]] / w[0], torch.tensor(4.0))
    clips = prepare_clips(synth_utterances(4), energy_features, None, 0, 0)
    mean, std = np.zeros(MOTION_DIM, np.float32), np.ones(MOTION_DIM, np.float32)
    b = WindowBatcher(
        clips, TINY["window"], TINY["window"] - 3, np.zeros(FDIM, np.float32), mean, std, 0
    ).sample(4)
    m = tiny_model()
    losses = [
        diffusion_loss(m, b, torch.Generator().manual_seed(0), 0.0, dw)[1]["loss"]
        for dw in (None, dim_weights(1.0), dim_weights(4.0))
    ]
    assert losses[0] == pytest.approx(losses[1], rel=1e-6) and losses[2] != pytest.approx(losses[0], rel=1e-3)


def test_checkpoint_roundtrip_and_errors(tmp_path):
    m = tiny_model()
    save_emodiff(m, tmp_path / "a", {"note": "x"})
    m2, meta = load_emodiff(tmp_path / "a.safetensors")
    assert meta == {"note": "x"}
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k])
    # half-precision storage loads back as float32
    save_emodiff(m, tmp_path / "h", half=True)
    m3, _ = load_emodiff(tmp_path / "h")
    assert m3.pos.dtype == torch.float32 and torch.allclose(m3.pos, m.pos, atol=1e-3)
    # wrong shape: config says d_model 48 but weights are for 32
    doc = json.loads((tmp_path / "a.json").read_text())
    doc["config"]["d_model"] = 48
    (tmp_path / "a.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=r"a\.safetensors: tensor '.*' has shape .* the config expects"):
        load_emodiff(tmp_path / "a")
    # truncated weights
    data = (tmp_path / "h.safetensors").read_bytes()
    (tmp_path / "h.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_emodiff(tmp_path / "h")
    # another model kind
    doc["kind"] = "lip_refiner"
    (tmp_path / "a.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="expected 'emodiff'"):
        load_emodiff(tmp_path / "a")
    with pytest.raises(CheckpointError, match="not found"):
        load_emodiff(tmp_path / "missing")


def test_onnx_parity():
    from emostream.engine.backends import OnnxBackend, TorchBackend

    m = tiny_model()
    tb, ob = TorchBackend(m), OnnxBackend(m)
    rng = np.random.default_rng(0)
    W, B = m.cfg.window, 3
    args = [
        rng.standard_normal((B, W, MOTION_DIM)),
        rng.random(B),
        rng.standard_normal((B, W, FDIM)),
        rng.standard_normal((B, W, 16)),
        rng.standard_normal((B, W, MOTION_DIM)),
        (rng.random((B, W, 1)) > 0.5),
        np.array([[1, 1], [0, 1], [1, 0]]),
    ]
    args = [np.asarray(a, np.float32) for a in args]
    a, b = tb.denoise(*args), ob.denoise(*args)
    assert np.abs(a).max() > 0.1
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)


def test_style_paths_same_space():
    m = tiny_model()
    se = m.style_encoder
    v1 = se.style_vector(EmotionStyle("happy", 0.5))
    v2 = se.style_vector(np.zeros((30, MOTION_DIM), np.float32))
    assert v1.shape == v2.shape == (16,)
    assert not np.allclose(se.style_vector(EmotionStyle("sad")), v1)


def test_distill_round_halves_steps(tmp_path):
    from emostream.models.emodiff import load_emodiff
    from emostream.training.distill import DistillConfig, distill
    from emostream.training.train_emodiff import prepare_clips

    torch.set_num_threads(1)
    clips = prepare_clips(synth_utterances(6), energy_features, None, 0, 0)
    teacher = tiny_model()
    with torch.no_grad():
        teacher.silence_feat.copy_(torch.from_numpy(energy_features(np.zeros(640, np.float32), 25)[0]))
    cfg = DistillConfig(sampler_steps=1, iters_per_round=15, batch=8)
    _student, meta = distill(teacher, {"hop": 2, "lookahead": 1}, clips, tmp_path / "s", cfg, progress=False)
    assert [r["steps"] for r in meta["rounds"]] == [2, 1]
    assert all(np.isfinite(r["final_loss"]) for r in meta["rounds"])
    loaded, meta2 = load_emodiff(tmp_path / "s")
    assert loaded.cfg.sampler_steps == 1 and meta2["teacher_steps"] == 4
    with pytest.raises(Exception, match="power of 2"):
        distill(teacher, {}, clips, tmp_path / "x", DistillConfig(sampler_steps=3), progress=False)


def test_distill_bakes_the_teachers_mouth_only_guidance(tmp_path):
    from emostream.arkit import MOUTH_INDICES
    from emostream.engine.sampler import Guidance
    from emostream.errors import ConfigError
    from emostream.training.distill import DistillConfig, _teacher_v, distill, teacher_guidance
    from emostream.training.train_emodiff import Batch, prepare_clips

    meta = {"guidance": {"audio": 1.5, "style": 1.0, "audio_mouth_only": True}}
    g = teacher_guidance(DistillConfig(), meta)
    assert g == Guidance(1.5, 1.0, True)
    override = DistillConfig(guidance_audio=2.0, guidance_audio_mouth_only=False)
    assert teacher_guidance(override, meta) == Guidance(2.0, 1.0, False)
    assert not teacher_guidance(DistillConfig(), {}).active

    # the guided teacher's v differs from the plain one on the mouth only
    torch.manual_seed(0)
    teacher = tiny_model().eval()
    B, W = 2, teacher.cfg.window
    b = Batch(
        x0=torch.randn(B, W, MOTION_DIM),
        audio=torch.randn(B, W, teacher.cfg.feature_dim),
        mask=torch.zeros(B, W, 1),
        valid=torch.ones(B, W, 1),
        emotion=torch.zeros(B, dtype=torch.long),
        intensity=torch.ones(B),
        raw=torch.zeros(B, W, MOTION_DIM),
    )
    z, t = torch.randn(B, W, MOTION_DIM), torch.full((B,), 0.5)
    with torch.no_grad():
        style = teacher.style_encoder.from_label(b.emotion, b.intensity)[:, None].expand(B, W, -1)
        plain, guided = (_teacher_v(teacher, z, t, b, style, x) for x in (Guidance(), g))
    mouth = list(MOUTH_INDICES)
    rest = [i for i in range(MOTION_DIM) if i not in set(mouth)]
    torch.testing.assert_close(guided[..., rest], plain[..., rest], atol=1e-5, rtol=1e-5)
    assert (guided[..., mouth] - plain[..., mouth]).abs().max() > 1e-3

    torch.set_num_threads(1)
    clips = prepare_clips(synth_utterances(6), energy_features, None, 0, 0)
    with torch.no_grad():
        teacher.silence_feat.copy_(torch.from_numpy(energy_features(np.zeros(640, np.float32), 25)[0]))
    cfg = DistillConfig(sampler_steps=2, iters_per_round=5, batch=4)
    tmeta = {"hop": 2, "lookahead": 1, **meta}
    _, out_meta = distill(teacher, tmeta, clips, tmp_path / "s", cfg, progress=False)
    assert out_meta["baked_guidance"] == g.to_dict() and "guidance" not in out_meta
    with pytest.raises(ConfigError, match="guidance cannot be baked"):
        distill(teacher, meta, clips, tmp_path / "x", DistillConfig(sampler_steps=4), progress=False)


def test_classifier_learns_emotions(tmp_path):
    from emostream.models.emotion_classifier import load_classifier
    from emostream.training.train_classifier import ClassifierTrainConfig, accuracy, train_classifier

    torch.set_num_threads(1)
    utts = synth_utterances(24)
    seqs, labels = [u.targets for u in utts], [u.emotion.index for u in utts]
    cfg = ClassifierTrainConfig(steps=80, batch=16, min_crop=20, max_crop=30, lr=3e-3)
    _model, meta = train_classifier(
        seqs[:16], labels[:16], seqs[16:], labels[16:], tmp_path / "c", cfg, progress=False
    )
    assert meta["val_accuracy"] >= 0.75
    loaded, _ = load_classifier(tmp_path / "c")
    assert accuracy(loaded, seqs[16:], labels[16:]) == meta["val_accuracy"]


def test_default_weights_idle_motion_is_alive():
    from emostream.engine.features import features_for
    from emostream.engine.motion import MotionEngine, weights_path

    if not weights_path().with_suffix(".safetensors").exists():
        pytest.skip("default EmoDiff weights not shipped")
    torch.set_num_threads(1)
    eng = MotionEngine.load(refiner=False)
    assert eng.latency_frames * 1000 / eng.fps <= 200 and eng.steps <= 4
    f = features_for(np.zeros(16000 * 4, np.float32))  # 4 s of silence
    out = eng.generate(f, EmotionStyle("neutral"), seed=3)
    assert out.shape == (100, MOTION_DIM) and np.isfinite(out).all()
    head = out[:, 52:]
    assert np.abs(np.diff(head, axis=0)).sum(0).max() > 0.002 and np.ptp(head, axis=0).max() < 0.5
    assert out[:, BLENDSHAPE_INDEX["jawOpen"]].mean() < 0.15  # mouth at rest without speech


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_backend_matches_cpu():
    from emostream.engine.backends import TorchBackend

    m = tiny_model()
    rng = np.random.default_rng(0)
    W = m.cfg.window
    args = [rng.standard_normal((2, W, MOTION_DIM)), rng.random(2), rng.standard_normal((2, W, FDIM)),
            rng.standard_normal((2, W, 16)), rng.standard_normal((2, W, MOTION_DIM)), np.ones((2, W, 1)),
            np.ones((2, 2))]  # fmt: skip
    args = [np.asarray(a, np.float32) for a in args]
    cpu = TorchBackend(m, "cpu").denoise(*args)
    gpu = TorchBackend(tiny_model(), "cuda").denoise(*args)
    np.testing.assert_allclose(cpu, gpu, atol=1e-4)
