"""Lip refiner training smoke test (loss falls, resumes) and the closure metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emostream.arkit import BLENDSHAPE_INDEX, MOTION_DIM, EmotionStyle
from emostream.config import SAMPLE_RATE, frames_covering
from emostream.engine.features import features_for
from emostream.training.eval_lip import (
    bilabial_closure,
    jaw_corr,
    lip_metrics,
    mouth_mae,
    pad_utterance,
    silence_rest,
    silent_stretches,
)
from emostream.training.schema import Phone, Utterance
from emostream.training.train_lip import TrainLipConfig, prepare_items, train

JAW, CLOSE = BLENDSHAPE_INDEX["jawOpen"], BLENDSHAPE_INDEX["mouthClose"]


def _utt(seed: int, split: str = "train") -> Utterance:
    """Noise bursts ("speech", jaw open) separated by silences (jaw closed)."""
    rng = np.random.default_rng(seed)
    audio, phones, pos = [], [], 0
    for _ in range(int(rng.integers(3, 6))):
        for kind in ("sil", "aa"):
            n = int(rng.integers(2400, 8000))
            amp = 0.0 if kind == "sil" else 0.2
            audio.append((amp * rng.standard_normal(n)).astype(np.float32))
            phones.append(Phone(pos, pos + n, kind, kind))
            pos += n
    a = np.concatenate(audio)
    t = frames_covering(len(a), 25)
    targets = np.zeros((t, MOTION_DIM), np.float32)
    for p in phones:
        if p.viseme == "aa":
            targets[p.start * 25 // SAMPLE_RATE : p.end * 25 // SAMPLE_RATE, JAW] = 0.6
    targets[:, 50] = 0.3  # something non-mouth
    return Utterance(
        f"u{seed}", a, phones, targets, 25, EmotionStyle("happy", 0.5), "test", "v", "", split, seed
    )


@pytest.fixture(scope="module")
def items():
    utts = [_utt(s) for s in range(12)]
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
    t = m.copy()
    t[:, JAW] = np.linspace(0, 1, n)
    assert mouth_mae(t, t) == 0.0 and jaw_corr([t], [t]) == pytest.approx(1.0)
    u = Utterance("x", np.zeros(20800, np.float32), phones, t, fps, EmotionStyle(), "test", "v", "", "val", 0)
    res = lip_metrics([t], [u])
    assert res["n_bilabials"] == 2 and res["n_silences"] == 2 and res["mouth_mae"] == 0.0
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
