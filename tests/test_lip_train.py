"""Lip refiner training smoke test (loss falls, resumes) and the closure metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tiny_lip import noise_utt, tiny_lip_corpus, with_bilabial

from emostream.arkit import BLENDSHAPE_INDEX, MOTION_DIM, EmotionStyle
from emostream.config import frames_covering
from emostream.engine.features import features_for
from emostream.errors import ConfigError
from emostream.training.eval_lip import (
    bilabial_closure,
    jaw_corr,
    lip_metrics,
    mouth_mae,
    pad_utterance,
    quiet_silence_rest,
    silence_rest,
    silent_stretches,
)
from emostream.training.schema import Phone, Utterance
from emostream.training.train_lip import (
    GATE_BIASES,
    GATE_SCALES,
    TrainLipConfig,
    add_priors,
    load_items_cache,
    prepare_items,
    save_items_cache,
    train,
)

JAW, CLOSE = BLENDSHAPE_INDEX["jawOpen"], BLENDSHAPE_INDEX["mouthClose"]


@pytest.fixture(scope="module")
def items():
    utts = [noise_utt(s) for s in range(12)]
    return prepare_items(utts, features_for, None, 1, np.random.default_rng(0), pad_silence_s=0.5)


def test_training_loss_falls_and_resumes(tmp_path, items):
    small = {"hidden": 24, "lstm_layers": 1, "style_dim": 8, "head_hidden": 24}
    cfg = TrainLipConfig(steps=50, batch=6, crop_frames=60, eval_every=25, ckpt_every=25, model=small)
    out = tmp_path / "lip"
    res = train(cfg, items, items[:3], out)
    losses = [h["loss"] for h in res["history"]]
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:5])
    assert (tmp_path / "lip.safetensors").is_file() and (tmp_path / "lip.curves.png").is_file()
    doc = json.loads((tmp_path / "lip.json").read_text())
    assert doc["kind"] == "lip_refiner" and doc["meta"]["step"] == 50
    # a longer run with the same OUT resumes at step 50 and keeps the history
    res2 = train(TrainLipConfig(**{**cfg.__dict__, "steps": 55}), items, items[:3], out)
    assert len(res2["history"]) == 55
    assert res2["history"][:50] == res["history"]


def _noisy_target_prior(utts):
    """A prior generator standing in for EmoDiff: the target's mouth plus seeded noise, so the
    prior is informative and a refiner with a prior input should learn to use it."""
    by_len = {}
    for it in utts:
        for m in it.mouths:
            by_len[m.shape[0]] = m

    def generate(f, emotion, intensity, seed):
        out = np.zeros((f.shape[0], MOTION_DIM), np.float32)
        noise = np.random.default_rng(seed).normal(0, 0.05, (f.shape[0], 27))
        out[:, 14:41] = by_len[f.shape[0]] + noise
        return out

    return generate


def test_priors_training_and_items_cache(tmp_path, items):
    fresh = prepare_items([noise_utt(s) for s in range(12)], features_for, None, 1, np.random.default_rng(0),
                          pad_silence_s=0.5)  # fmt: skip
    small = {"hidden": 24, "lstm_layers": 1, "style_dim": 8, "head_hidden": 24, "prior_input": True}
    cfg = TrainLipConfig(steps=40, batch=6, crop_frames=60, eval_every=20, ckpt_every=20, model=small)
    with pytest.raises(ConfigError, match="needs EmoDiff priors"):
        train(cfg, fresh, fresh[:3], tmp_path / "nopriors")
    gen = _noisy_target_prior(fresh)
    add_priors(fresh, gen, seed=3)
    for it in fresh:  # one prior per feature version, frame-aligned, each with its own seed
        assert len(it.priors) == len(it.feats)
        assert [p.shape for p in it.priors] == [(m.shape[0], 27) for m in it.mouths]
        k = min(m.shape[0] for m in it.mouths)
        assert not np.allclose((it.priors[0] - it.mouths[0])[:k], (it.priors[1] - it.mouths[1])[:k])
    again = prepare_items([noise_utt(0)], features_for, None, 1, np.random.default_rng(0), pad_silence_s=0.5)
    add_priors(again, gen, seed=3)
    assert np.array_equal(again[0].priors[0], fresh[0].priors[0])  # seeded
    res = train(cfg, fresh, fresh[:3], tmp_path / "prior")
    losses = [h["loss"] for h in res["history"]]
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:5])
    # an informative prior: the refiner that reads it beats the same run without it
    no_prior = train(TrainLipConfig(**{**cfg.__dict__, "model": {**small, "prior_input": False}}),
                     fresh, fresh[:3], tmp_path / "audio")  # fmt: skip
    assert res["final"]["val_mouth_mae"] < no_prior["final"]["val_mouth_mae"]
    # the items cache gives the same items back for the same options, nothing for others
    key = {"data": "x", "copies": 1}
    save_items_cache(tmp_path / "items.pkl", key, (fresh, fresh[:3]))
    train_items, val_items = load_items_cache(tmp_path / "items.pkl", key)
    assert np.array_equal(train_items[5].priors[1], fresh[5].priors[1]) and len(val_items) == 3
    assert load_items_cache(tmp_path / "items.pkl", {**key, "copies": 2}) is None
    assert load_items_cache(tmp_path / "missing.pkl", key) is None


def test_metrics_on_crafted_sequences():
    fps = 25
    phones = [
        Phone(0, 8000, "sil", "sil"),  # 0.5 s silence
        Phone(8000, 9600, "m", "PP"),  # frames 12..15, middle frame 13
        Phone(9600, 12800, "aa", "aa"),
        Phone(12800, 14400, "b", "PP"),  # middle frame 21
    ]
    n = frames_covering(14400 + 6400, fps)  # 0.4 s of trailing silence not covered by a phone
    m = np.zeros((n, MOTION_DIM), np.float32)
    m[:, JAW] = 0.4
    m[:, CLOSE] = 0.4  # closed everywhere (mouthClose cancels the jaw)...
    m[21, CLOSE] = 0.0  # ...except at /b/'s middle
    assert bilabial_closure(m, phones, fps) == (1, 2)
    assert silent_stretches(phones, 14400 + 6400) == [(0, 8000), (14400, 20800)]
    assert silence_rest(m, phones, 14400 + 6400, fps) == (0, 2)  # jaw at 0.4: not at rest
    m[:, JAW] = 0.05
    m[:, CLOSE] = 0.0
    assert silence_rest(m, phones, 14400 + 6400, fps) == (2, 2)
    # Quiet pauses only: the VAD hears speech in the trailing pause (interior frames 26..28), whose mouth
    # moves; it is left out of quiet_silence_rest but still fails silence_rest.
    speech = np.zeros(n, np.float32)
    speech[27] = 0.9
    m[27, JAW] = 0.3
    assert silence_rest(m, phones, 14400 + 6400, fps) == (1, 2)
    assert quiet_silence_rest(m, phones, 14400 + 6400, fps, speech) == (1, 1)
    speech[27] = 0.4  # under the VAD threshold: quiet, so it counts (and fails)
    assert quiet_silence_rest(m, phones, 14400 + 6400, fps, speech) == (1, 2)
    m[27, JAW] = 0.05
    t = m.copy()
    t[:, JAW] = np.linspace(0, 1, n)
    assert mouth_mae(t, t) == 0.0 and jaw_corr([t], [t]) == pytest.approx(1.0)
    u = Utterance("x", np.zeros(20800, np.float32), phones, t, fps, EmotionStyle(), "test", "v", "", "val", 0)
    res = lip_metrics([t], [u])
    assert res["n_bilabials"] == 2 and res["n_silences"] == 2 and res["mouth_mae"] == 0.0
    assert "silence_rest_quiet" not in res
    speech[27] = 0.9
    moving = m.copy()
    moving[27, JAW] = 0.3  # the mouth follows the sound in the trailing pause
    res = lip_metrics([moving], [u], [speech])
    assert res["silence_rest"] == 0.5 and res["n_quiet_silences"] == 1 and res["silence_rest_quiet"] == 1.0
    # pad_utterance: 1 s of silence each side (25 frames, 16000 samples), targets redrawn by
    # the corpus generator for the padded phones: the mouth is at rest in the pads.
    real = Utterance("y", np.zeros(20800, np.float32), phones, t, fps, EmotionStyle("happy", 0.6), "test",
                     "v", "", "val", 3)  # fmt: skip
    p = pad_utterance(real, 1.0)
    assert len(p.audio) == 20800 + 32000 and p.targets.shape == (frames_covering(52800, fps), MOTION_DIM)
    assert silent_stretches(p.phones, len(p.audio)) == [(0, 24000), (30400, 52800)]
    res = lip_metrics([p.targets], [p])
    assert res["n_silences"] == 2 and res["bilabial_closure"] == 1.0
    assert np.all(p.targets[:20, JAW] <= 0.1) and np.all(p.targets[-15:, JAW] <= 0.01)  # rest in the pads


def test_feature_perturbation_is_seeded_and_keeps_shape():
    from emostream.engine.features import N_MELS
    from emostream.training.train_lip import perturb_features

    f = np.random.default_rng(0).standard_normal((30, 4 * N_MELS)).astype(np.float32)
    a = perturb_features(f, np.random.default_rng(5), N_MELS)
    b = perturb_features(f, np.random.default_rng(5), N_MELS)
    c = perturb_features(f, np.random.default_rng(6), N_MELS)
    assert a.shape == f.shape and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c) and not np.allclose(a, f)
    # the same perturbation on every frame: a constant input stays constant over time
    flat = np.tile(np.linspace(-1, 1, 4 * N_MELS, dtype=np.float32), (10, 1))
    g = perturb_features(flat, np.random.default_rng(1), N_MELS)
    assert np.allclose(g, g[:1])


def test_hold_out_real_takes_only_train_real():
    from emostream.training.train_lip import hold_out_real

    utts = [noise_utt(s, "train") for s in range(3)] + [noise_utt(10 + s, "train_real") for s in range(10)]
    train_utts, held = hold_out_real(utts, 5)
    assert [u.uid for u in held] == ["u14", "u19"]
    assert len(train_utts) == 11 and not {u.uid for u in held} & {u.uid for u in train_utts}
    assert hold_out_real(utts, 0) == (utts, [])
    with pytest.raises(ConfigError):
        hold_out_real(utts, 1)


def test_real_copies_rest_loss_and_gate_calibration(tmp_path):
    from emostream.training.train_lip import calibrate_gate, validate

    real = [with_bilabial(noise_utt(20 + s, "train_real")) for s in range(2)]  # a bilabial in the first "aa"
    its = prepare_items(real, features_for, None, 1, np.random.default_rng(0), 0.5, real_copies=3)
    assert all(len(it.feats) == 4 and it.real and len(it.bilabials) == 1 for it in its)
    small = {"hidden": 16, "lstm_layers": 1, "style_dim": 8, "head_hidden": 16}
    cfg = TrainLipConfig(steps=4, batch=2, crop_frames=40, rest_weight=5.0, feat_aug_prob=1.0, model=small)
    res = train(cfg, its, its[:1], tmp_path / "lip", real_val_items=its)
    last = res["history"][-1]
    assert "rest" in last and np.isfinite(last["rest"]) and 0.0 <= last["val_real_closure"] <= 1.0
    from emostream.models.lip_refiner import load_lip_checkpoint

    model, _ = load_lip_checkpoint(tmp_path / "lip")
    cal = calibrate_gate(model, {"val": its[:1], "val_real": its})
    assert len(cal["grid"]) == len(GATE_SCALES) * len(GATE_BIASES) and (cal["scale"], cal["bias"]) in {
        (r["scale"], r["bias"]) for r in cal["grid"]
    }
    base = cal["base"]
    assert cal["chosen"]["val_real_mouth_mae"] <= base["val_real_mouth_mae"] * 1.02
    assert cal["chosen"]["val_real_closure"] >= base["val_real_closure"]  # never worse than (1, 0)
    # validate's closure uses the model's own gate: a saturated gate closes every bilabial
    from dataclasses import replace

    model.cfg = replace(model.cfg, gate_scale=1.0, gate_bias=50.0)
    assert validate(model, its, its)["val_real_closure"] == 1.0


def test_cli_real_hold_out_and_gate_calibration(tmp_path):
    """`emostream train lip` with the real-speech options on a tiny corpus: the held-out real
    utterances are recorded, and --calibrate-out writes a checkpoint with the chosen gate."""
    from typer.testing import CliRunner

    from emostream.cli import app
    from emostream.models.lip_refiner import load_lip_checkpoint

    root = tiny_lip_corpus(tmp_path / "corpus")
    out, cal = tmp_path / "lip", tmp_path / "lip_cal"
    args = ["train", "lip", "--data", str(root), "--out", str(out), "--steps", "3", "--batch", "2"]
    args += ["--hidden", "16", "--layers", "1", "--augment-copies", "0", "--real-augment-copies", "1"]
    args += ["--real-val-every", "2", "--feat-aug-prob", "1", "--rest-weight", "2", "--no-progress"]
    args += ["--ckpt-every", "3", "--calibrate-out", str(cal)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output.strip().splitlines()[-1])
    assert "val_real_closure" in doc and "rest" in doc and doc["calibrated"].endswith("lip_cal.safetensors")
    model, meta = load_lip_checkpoint(cal)
    assert meta["real_val_utterances"] == ["u4", "u6"] and meta["train_utterances"] == 4
    chosen = meta["gate_calibration"]["chosen"]
    assert (model.cfg.gate_scale, model.cfg.gate_bias) == (chosen["scale"], chosen["bias"])
    assert meta["gate_calibration"]["sets"] == {"val": 1, "val_real": 2}
    raw, _ = load_lip_checkpoint(out)
    assert (raw.cfg.gate_scale, raw.cfg.gate_bias) == (1.0, 0.0)  # the trained checkpoint is untouched
