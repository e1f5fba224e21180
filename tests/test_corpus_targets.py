"""Procedural targets: articulation from phones, seeded upper face / head, emotions, blinks."""

from __future__ import annotations

import numpy as np

from emostream.arkit import BLENDSHAPE_INDEX as B
from emostream.arkit import HEAD_SLICE, MOUTH_SLICE, EmotionStyle
from emostream.config import SAMPLE_RATE, frames_covering
from emostream.training.phones import arpabet_to_phone, finalize, ipa_to_phones, make_phone
from emostream.training.schema import Phone, Utterance
from emostream.training.targets import make_targets, prosody_from_audio, redraw_targets

UPPER = [B[n] for n in ("browInnerUp", "browDownLeft", "eyeBlinkLeft", "eyeLookInLeft",
                        "eyeLookUpLeft", "cheekSquintLeft", "eyeSquintLeft")]  # fmt: skip


def _utterance(emotion: EmotionStyle = EmotionStyle("neutral", 1.0), seed: int = 0) -> Utterance:
    """~6 s: 'bob ... mama papa' with a 1.5 s pause, audio = tone bursts where speech is."""
    sr = SAMPLE_RATE
    spec = [("sil", 0.3), ("b", 0.08), ("aa", 0.2), ("b", 0.09), ("sil", 1.5), ("m", 0.08),
            ("aa", 0.18), ("m", 0.08), ("aa", 0.2), ("p", 0.07), ("aa", 0.2), ("p", 0.07),
            ("aa", 0.25), ("s", 0.12), ("uw", 0.2), ("sil", 2.4)]  # fmt: skip
    phones: list[Phone] = []
    t = 0
    for name, dur in spec:
        phones.append(make_phone(t, t + int(dur * sr), name))
        t += int(dur * sr)
    phones = finalize(phones, t)
    rng = np.random.default_rng(0)
    audio = np.zeros(t, np.float32)
    for p in phones:
        if p.phone != "sil":
            audio[p.start : p.end] = 0.3 * np.sin(
                np.arange(p.end - p.start) * 0.1
            ) + 0.01 * rng.standard_normal(p.end - p.start)
    n = frames_covering(t, 25)
    targets = make_targets(phones, n, 25, emotion, prosody_from_audio(audio, n, 25), seed)
    return Utterance("u", audio, phones, targets, 25, emotion, "test", "v", "bob mama papa",
                     "train", seed)  # fmt: skip


def test_redraw_keeps_articulation_and_changes_upper_face_and_head() -> None:
    u = _utterance(EmotionStyle("happy", 1.0))
    same = redraw_targets(u, u.seed)
    other = redraw_targets(u, 99)
    np.testing.assert_array_equal(same, u.targets)
    np.testing.assert_allclose(other[:, MOUTH_SLICE], u.targets[:, MOUTH_SLICE], atol=1e-6)
    np.testing.assert_allclose(other[:, B["tongueOut"]], u.targets[:, B["tongueOut"]], atol=1e-6)
    assert np.abs(other[:, UPPER] - u.targets[:, UPPER]).mean() > 0.01
    assert np.abs(other[:, HEAD_SLICE] - u.targets[:, HEAD_SLICE]).mean() > np.radians(0.3)


def test_lips_meet_for_bilabials_and_rest_in_silence() -> None:
    u = _utterance()
    t = u.targets
    for p in u.phones:
        if p.viseme == "PP":
            f = ((p.start + p.end) // 2) * 25 // SAMPLE_RATE
            assert t[f, B["jawOpen"]] <= 0.08 + 1e-6
            assert abs(t[f, B["mouthClose"]] - t[f, B["jawOpen"]]) < 1e-6
            assert t[f, B["mouthPressLeft"]] >= 0.3 - 1e-6
    pause = next(p for p in u.phones if p.phone == "sil" and p.end - p.start > SAMPLE_RATE)
    mid = slice(pause.start * 25 // SAMPLE_RATE + 5, pause.end * 25 // SAMPLE_RATE - 5)
    assert t[mid, B["jawOpen"]].max() < 0.02
    vowel = next(p for p in u.phones if p.phone == "aa")
    assert t[((vowel.start + vowel.end) // 2) * 25 // SAMPLE_RATE, B["jawOpen"]] > 0.3


def test_rounding_spreads_back_over_the_consonant() -> None:
    u = _utterance()
    s = next(p for p in u.phones if p.phone == "s")
    f = ((s.start + s.end) // 2) * 25 // SAMPLE_RATE
    assert u.targets[f, B["mouthPucker"]] > 0.15  # 's' before 'uw' is already rounded


def test_emotions_show_their_facs_pattern() -> None:
    neutral = _utterance(EmotionStyle("neutral", 1.0)).targets
    happy = _utterance(EmotionStyle("happy", 1.0)).targets
    sad = _utterance(EmotionStyle("sad", 1.0)).targets
    angry = _utterance(EmotionStyle("angry", 1.0)).targets
    surprised = _utterance(EmotionStyle("surprised", 1.0)).targets
    assert happy[:, B["mouthSmileLeft"]].mean() > neutral[:, B["mouthSmileLeft"]].mean() + 0.3
    assert happy[:, B["cheekSquintLeft"]].mean() > 0.2
    assert sad[:, B["browInnerUp"]].mean() > neutral[:, B["browInnerUp"]].mean() + 0.3
    assert sad[:, B["mouthFrownLeft"]].mean() > 0.2
    assert angry[:, B["browDownLeft"]].mean() > 0.4
    assert surprised[:, B["eyeWideLeft"]].mean() > 0.2
    weak = _utterance(EmotionStyle("happy", 1 / 3)).targets
    assert weak[:, B["mouthSmileLeft"]].mean() < happy[:, B["mouthSmileLeft"]].mean()


def test_blinks_are_short_and_close_faster_than_they_open() -> None:
    durations, rise, fall = [], 0, 0
    for seed in range(12):
        blink = _utterance(seed=seed).targets[:, B["eyeBlinkLeft"]]
        moving = np.concatenate([[0], (blink > 0.05).astype(int), [0]])
        edges = np.flatnonzero(np.diff(moving))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            durations.append((b - a) / 25)
            peak = a + int(np.argmax(blink[a:b]))
            rise, fall = rise + peak - a, fall + b - 1 - peak
    assert len(durations) >= 6  # ~17/min over 12 x 6 s
    assert all(0.04 <= d <= 0.44 for d in durations)  # 100-400 ms (+ one frame of sampling)
    assert rise < fall


def test_every_engine_alphabet_maps_into_the_inventory() -> None:
    assert ipa_to_phones("tʃ") == ["ch"] and ipa_to_phones("ˈaɪ") == ["ay"] and ipa_to_phones("") == ["sil"]
    assert ipa_to_phones("ɜː") == ["er"] and ipa_to_phones("oʊ") == ["ow"]
    assert arpabet_to_phone("pau") == "sil" and arpabet_to_phone("AX") == "ah"
    assert arpabet_to_phone("+NSN+") == "sil" and arpabet_to_phone("AH0") == "ah"
    assert arpabet_to_phone("xyz") is None
