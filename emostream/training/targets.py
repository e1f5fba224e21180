"""Procedural ARKit targets from phones, prosody and an emotion (seeded).

Articulation (jaw*, mouth*, tongueOut) is a deterministic function of the phones, the audio's
loudness and the emotion: visemes blended with a dominance model (Cohen-Massaro style
anticipation before and carry-over after each phone), lips that really meet for p/b/m, lip
rounding spreading across preceding consonants, and the emotion's mouth shaping. Everything
else (brows, eyes, cheeks, nose, blinks, gaze, head) is drawn from ``seed``: the same audio
drawn twice moves the mouth identically and the upper face and head differently.

Head angles are radians: yaw > 0 turns to the subject's left, pitch > 0 tilts down (a nod),
roll > 0 tilts towards the subject's left shoulder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from emostream.arkit import (
    BLENDSHAPE_INDEX,
    MOTION_DIM,
    NUM_BLENDSHAPES,
    EmotionStyle,
    clamp_motion,
)
from emostream.config import SAMPLE_RATE, check_fps, frame_start_sample
from emostream.training.schema import VISEMES, Phone, Utterance

B = BLENDSHAPE_INDEX
YAW, PITCH, ROLL = NUM_BLENDSHAPES, NUM_BLENDSHAPES + 1, NUM_BLENDSHAPES + 2
_SUBSTEPS = 4  # articulation is evaluated 4x per frame and averaged (no aliasing of short phones)


def _w(**weights: float) -> dict[str, float]:
    return weights


#: Viseme → ARKit mouth weights (tuned from the Ready Player Me mapping in DESIGN.md: less
#: extreme rounding, a jaw for every vowel; p/b/m closure is added separately).
VISEME_WEIGHTS: dict[str, dict[str, float]] = {
    "sil": _w(),
    "PP": _w(mouthRollLower=0.35, mouthRollUpper=0.3, mouthPressLeft=0.3, mouthPressRight=0.3),
    "FF": _w(mouthRollLower=0.6, mouthUpperUpLeft=0.2, mouthUpperUpRight=0.2,
             mouthShrugUpper=0.3, jawOpen=0.06),
    "TH": _w(mouthRollUpper=0.25, jawOpen=0.14, tongueOut=0.35),
    "DD": _w(mouthPressLeft=0.3, mouthPressRight=0.3, mouthFunnel=0.15, jawOpen=0.14),
    "kk": _w(mouthLowerDownLeft=0.25, mouthLowerDownRight=0.25, mouthFunnel=0.1, jawOpen=0.16),
    "CH": _w(mouthFunnel=0.45, mouthPucker=0.35, jawOpen=0.12, mouthUpperUpLeft=0.15,
             mouthUpperUpRight=0.15),
    "SS": _w(mouthStretchLeft=0.3, mouthStretchRight=0.3, mouthLowerDownLeft=0.2,
             mouthLowerDownRight=0.2, jawOpen=0.07),
    "nn": _w(mouthLowerDownLeft=0.2, mouthLowerDownRight=0.2, jawOpen=0.14, tongueOut=0.08),
    "RR": _w(mouthPucker=0.35, mouthFunnel=0.25, jawOpen=0.14),
    "aa": _w(jawOpen=0.55, mouthLowerDownLeft=0.3, mouthLowerDownRight=0.3,
             mouthUpperUpLeft=0.1, mouthUpperUpRight=0.1),
    "E": _w(jawOpen=0.32, mouthStretchLeft=0.25, mouthStretchRight=0.25,
            mouthLowerDownLeft=0.2, mouthLowerDownRight=0.2),
    "I": _w(jawOpen=0.2, mouthStretchLeft=0.35, mouthStretchRight=0.35,
            mouthDimpleLeft=0.2, mouthDimpleRight=0.2),
    "O": _w(jawOpen=0.38, mouthFunnel=0.5, mouthPucker=0.35, jawForward=0.1),
    "U": _w(jawOpen=0.15, mouthPucker=0.75, mouthFunnel=0.4),
}  # fmt: skip

#: Dominance (how strongly a viseme holds its shape against neighbours), and how far it reaches
#: before (anticipation) and after (carry-over) its segment, in seconds (e-folding time).
_DOMINANCE: dict[str, tuple[float, float, float]] = {
    "sil": (0.5, 0.05, 0.06), "PP": (1.0, 0.06, 0.04), "FF": (0.9, 0.06, 0.04),
    "TH": (0.6, 0.05, 0.04), "DD": (0.35, 0.04, 0.03), "kk": (0.3, 0.04, 0.03),
    "CH": (0.8, 0.07, 0.05), "SS": (0.6, 0.05, 0.04), "nn": (0.35, 0.04, 0.03),
    "RR": (0.6, 0.06, 0.05), "aa": (0.8, 0.05, 0.05), "E": (0.7, 0.05, 0.05),
    "I": (0.7, 0.05, 0.05), "O": (0.85, 0.08, 0.06), "U": (0.9, 0.08, 0.06),
}  # fmt: skip
_ROUNDED = {"O", "U", "RR", "CH"}
_VOWELS = {"aa", "E", "I", "O", "U"}

#: Emotion FACS patterns at full intensity (EMFACS prototypes; see DESIGN.md). ``upper`` is
#: seeded (varies between draws), ``mouth`` is deterministic mouth shaping while speaking.
_UPPER: dict[str, dict[str, float]] = {
    "neutral": _w(),
    "happy": _w(cheekSquintLeft=0.55, cheekSquintRight=0.55, eyeSquintLeft=0.35,
                eyeSquintRight=0.35, browOuterUpLeft=0.1, browOuterUpRight=0.1),
    "sad": _w(browInnerUp=0.7, browDownLeft=0.3, browDownRight=0.3, eyeBlinkLeft=0.15,
              eyeBlinkRight=0.15, eyeLookDownLeft=0.15, eyeLookDownRight=0.15),
    "angry": _w(browDownLeft=0.8, browDownRight=0.8, eyeWideLeft=0.25, eyeWideRight=0.25,
                eyeSquintLeft=0.45, eyeSquintRight=0.45, noseSneerLeft=0.2, noseSneerRight=0.2),
    "surprised": _w(browInnerUp=0.8, browOuterUpLeft=0.8, browOuterUpRight=0.8,
                    eyeWideLeft=0.7, eyeWideRight=0.7),
    "fear": _w(browInnerUp=0.85, browOuterUpLeft=0.5, browOuterUpRight=0.5, browDownLeft=0.3,
               browDownRight=0.3, eyeWideLeft=0.6, eyeWideRight=0.6, eyeSquintLeft=0.15,
               eyeSquintRight=0.15),
    "disgusted": _w(noseSneerLeft=0.7, noseSneerRight=0.6, cheekSquintLeft=0.35,
                    cheekSquintRight=0.3, browDownLeft=0.45, browDownRight=0.45,
                    eyeSquintLeft=0.35, eyeSquintRight=0.35),
    "contempt": _w(eyeSquintLeft=0.15, eyeSquintRight=0.1, browDownLeft=0.1, browDownRight=0.15,
                   cheekSquintLeft=0.2, browOuterUpLeft=0.15),
}  # fmt: skip
_MOUTH: dict[str, dict[str, float]] = {
    "neutral": _w(),
    "happy": _w(mouthSmileLeft=0.65, mouthSmileRight=0.65, mouthDimpleLeft=0.2,
                mouthDimpleRight=0.2, mouthUpperUpLeft=0.08, mouthUpperUpRight=0.08),
    "sad": _w(mouthFrownLeft=0.5, mouthFrownRight=0.5, mouthShrugLower=0.3,
              mouthPressLeft=0.15, mouthPressRight=0.15),
    "angry": _w(mouthPressLeft=0.4, mouthPressRight=0.4, mouthUpperUpLeft=0.15,
                mouthUpperUpRight=0.15, mouthStretchLeft=0.1, mouthStretchRight=0.1),
    "surprised": _w(jawOpen=0.12, mouthFunnel=0.1),
    "fear": _w(mouthStretchLeft=0.5, mouthStretchRight=0.5, jawOpen=0.08),
    "disgusted": _w(mouthUpperUpLeft=0.5, mouthUpperUpRight=0.45, mouthFrownLeft=0.3,
                    mouthFrownRight=0.3, mouthLowerDownLeft=0.15, mouthLowerDownRight=0.15),
    "contempt": _w(mouthSmileLeft=0.5, mouthDimpleLeft=0.4, mouthLeft=0.1),
}  # fmt: skip
#: Blinks per minute at rest, by emotion (fear/anxiety up, anger and surprise stare).
_BLINK_RATE = {"neutral": 17.0, "happy": 18.0, "sad": 14.0, "angry": 11.0, "surprised": 9.0,
               "fear": 27.0, "disgusted": 16.0, "contempt": 15.0}  # fmt: skip
#: Head posture bias (yaw, pitch, roll radians) and motion gain by emotion.
_HEAD_BIAS = {"neutral": (0.0, 0.0, 0.0, 1.0), "happy": (0.0, -0.03, 0.03, 1.3),
              "sad": (0.0, 0.12, 0.02, 0.6), "angry": (0.0, 0.06, 0.0, 1.2),
              "surprised": (0.0, -0.08, 0.0, 1.1), "fear": (0.03, -0.03, 0.0, 0.9),
              "disgusted": (-0.05, -0.04, -0.04, 1.0),
              "contempt": (0.08, -0.05, 0.07, 0.8)}  # fmt: skip
_GAZE_BIAS = {"neutral": (0.0, 0.0), "happy": (0.0, 0.05), "sad": (0.0, -0.4),
              "angry": (0.0, 0.0), "surprised": (0.0, 0.15), "fear": (0.0, 0.05),
              "disgusted": (0.15, -0.1), "contempt": (-0.35, 0.0)}  # fmt: skip


def _vector(weights: dict[str, float]) -> np.ndarray:
    v = np.zeros(MOTION_DIM, dtype=np.float64)
    for name, value in weights.items():
        v[B[name]] = value
    return v


_VISEME_TABLE = np.stack([_vector(VISEME_WEIGHTS[v]) for v in VISEMES])  # [15, 55]


@dataclass(frozen=True)
class Prosody:
    """Per-frame prosody measured from the audio."""

    energy: np.ndarray  # float32[T] loudness in [0, 1] (dB mapped from -60..0 relative to peak)
    pitch: np.ndarray  # float32[T] f0 in semitones relative to the utterance median, 0 unvoiced
    voiced: np.ndarray  # bool[T]


def prosody_from_audio(audio: np.ndarray, n_frames: int, fps: int) -> Prosody:
    """Frame loudness and autocorrelation pitch (70–400 Hz) of 16 kHz audio."""
    x = np.asarray(audio, dtype=np.float64)
    win = 1024
    starts = np.array([frame_start_sample(i, fps) for i in range(n_frames + 1)])
    centres = (starts[:-1] + starts[1:]) // 2
    pad = np.pad(x, (win, win))
    idx = centres[:, None] + win - win // 2 + np.arange(win)[None, :]
    frames = pad[idx] * np.hanning(win)[None, :]
    rms = np.sqrt(np.mean(frames**2, axis=1) + 1e-12)
    db = 20 * np.log10(rms / (rms.max() + 1e-9) + 1e-9)
    energy = np.clip((db + 60) / 60, 0, 1)
    spec = np.fft.rfft(frames, n=2 * win)
    ac = np.fft.irfft(np.abs(spec) ** 2)[:, :win]
    lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 70
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    strength = ac[np.arange(n_frames), lag] / (ac[:, 0] + 1e-12)
    voiced = (strength > 0.45) & (energy > 0.4)
    f0 = SAMPLE_RATE / lag
    semis = np.zeros(n_frames)
    if voiced.any():
        st = 12 * np.log2(f0 / np.median(f0[voiced]))
        semis[voiced] = st[voiced]
    return Prosody(energy.astype(np.float32), semis.astype(np.float32), voiced)


def _smooth_noise(rng: np.random.Generator, n: int, sigma_frames: float) -> np.ndarray:
    """Smooth random curve with unit variance in expectation (a Gaussian-filtered white noise
    divided by the filter's theoretical gain, so short clips are not inflated)."""
    sigma = max(float(sigma_frames), 0.5)
    pad = int(4 * sigma) + 1
    white = rng.standard_normal(n + 2 * pad)
    curve = gaussian_filter1d(white, sigma, mode="reflect")[pad : pad + n]
    return curve * np.sqrt(2 * np.sqrt(np.pi) * sigma)


def _articulation(phones: list[Phone], n_frames: int, fps: int, energy: np.ndarray) -> np.ndarray:
    """Deterministic mouth/jaw/tongue [T, 55] from the phones."""
    out = np.zeros((n_frames, MOTION_DIM))
    if not phones or n_frames == 0:
        return out
    n_sub = n_frames * _SUBSTEPS
    t = (np.arange(n_sub) + 0.5) / (fps * _SUBSTEPS)  # seconds
    num = np.zeros((n_sub, MOTION_DIM))
    den = np.full(n_sub, 1e-6)
    vis = [VISEME_INDEX_LOCAL[p.viseme] for p in phones]
    for p, v in zip(phones, vis, strict=True):
        s, e = p.start / SAMPLE_RATE, p.end / SAMPLE_RATE
        alpha, ant, carry = _DOMINANCE[p.viseme]
        before = np.exp(-np.clip(s - t, 0.0, None) / ant)  # clipped: no overflow off-branch
        after = np.exp(-np.clip(t - e, 0.0, None) / carry)
        d = np.where(t < s, before, np.where(t > e, after, 1.0))
        d = alpha * d
        num += d[:, None] * _VISEME_TABLE[v][None, :]
        den += d
    sub = num / den[:, None]
    # Lip rounding spreads backwards over the consonants before a rounded vowel/glide.
    rounding = np.zeros(n_sub)
    for k, p in enumerate(phones):
        if p.viseme not in _ROUNDED:
            continue
        j = k
        while j > 0 and phones[j - 1].viseme not in _VOWELS and phones[j - 1].viseme != "sil":
            j -= 1
        s0, s1 = phones[j].start / SAMPLE_RATE, p.start / SAMPLE_RATE
        ramp = np.clip((t - s0) / max(s1 - s0, 1e-3), 0, 1) if s1 > s0 else 0.0
        inside = (t >= s0) & (t < p.end / SAMPLE_RATE)
        rounding = np.maximum(rounding, np.where(inside, np.maximum(ramp, t >= s1), 0.0))
    strength = 0.6 * rounding
    for name in ("mouthPucker", "mouthFunnel"):
        sub[:, B[name]] = np.maximum(sub[:, B[name]], strength * 0.6)
    # Loudness scales how wide the jaw and lips open (deterministic: the audio's own energy).
    gain = 0.7 + 0.6 * np.repeat(energy.astype(np.float64), _SUBSTEPS)[:n_sub]
    for name in ("jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthFunnel"):
        sub[:, B[name]] *= gain
    return sub.reshape(n_frames, _SUBSTEPS, MOTION_DIM).mean(axis=1)


def _close_lips(out: np.ndarray, phones: list[Phone], fps: int) -> None:
    """In place."""
    n_frames = out.shape[0]
    # Closure for p/b/m: in the frames a bilabial covers, the lips meet (mouthClose = jawOpen
    # cancels the jaw's lip gap) — never blurred away by the frame averaging.
    for p in phones:
        if p.viseme != "PP":
            continue
        f0 = p.start * fps // SAMPLE_RATE
        f1 = max(f0 + 1, -((-p.end * fps) // SAMPLE_RATE))
        c = min(n_frames - 1, ((p.start + p.end) // 2) * fps // SAMPLE_RATE)  # midpoint frame
        lo, hi = max(0, c - max(0, (f1 - f0 - 2) // 2)), min(n_frames, c + 1 + max(0, (f1 - f0 - 2) // 2))
        for f in range(lo, hi):
            jaw = min(out[f, B["jawOpen"]], 0.08)
            out[f, B["jawOpen"]] = jaw
            out[f, B["mouthClose"]] = jaw
            for name in ("mouthRollLower", "mouthRollUpper", "mouthPressLeft", "mouthPressRight"):
                out[f, B[name]] = max(out[f, B[name]], 0.3)
            for name in ("mouthFunnel", "mouthLowerDownLeft", "mouthLowerDownRight"):
                out[f, B[name]] *= 0.3


VISEME_INDEX_LOCAL = {v: i for i, v in enumerate(VISEMES)}


def _speech_mask(phones: list[Phone], n_frames: int, fps: int) -> np.ndarray:
    """float[T] in [0, 1]: fraction of each frame covered by speech (non-silence) phones."""
    m = np.zeros(n_frames)
    for p in phones:
        if p.viseme == "sil":
            continue
        for f in range(p.start * fps // SAMPLE_RATE, min(n_frames, -((-p.end * fps) // SAMPLE_RATE))):
            a, b = frame_start_sample(f, fps), frame_start_sample(f + 1, fps)
            m[f] += max(0, min(b, p.end) - max(a, p.start)) / (b - a)
    return np.clip(m, 0, 1)


def _envelope(n: int, fps: int, onset_s: float, start_level: float, end_drop: float) -> np.ndarray:
    """Emotion intensity over time: from ``start_level`` up to 1 with a smooth onset, and a
    partial offset (``end_drop``) over the last ~0.6 s."""
    t = np.arange(n) / fps
    rise = start_level + (1 - start_level) * (1 - np.exp(-t / max(onset_s, 1e-3)))
    tail = np.clip((t - (n / fps - 0.6)) / 0.6, 0, 1)
    return rise * (1 - end_drop * tail**2)


def _blinks(
    rng: np.random.Generator, n: int, fps: int, emotion: EmotionStyle, speech: np.ndarray
) -> np.ndarray:
    """Eyelid closure [T] in [0, 1]: a renewal process (rate by emotion, lower while speaking,
    more likely in pauses); each blink 100–400 ms, closing faster than opening."""
    base = 17.0 + (_BLINK_RATE[emotion.name] - 17.0) * emotion.intensity
    out = np.zeros(n)
    dt = 1.0 / fps
    t = rng.uniform(0.0, 2.0)
    total = n * dt
    while t < total:
        f = min(n - 1, int(t * fps))
        rate = base * (0.75 if speech[f] > 0.5 else 1.25) / 60.0
        duration = float(np.clip(rng.lognormal(np.log(0.2), 0.3), 0.1, 0.4))
        close = duration * rng.uniform(0.25, 0.4)
        depth = rng.uniform(0.85, 1.0)
        tt = np.arange(n) * dt + dt / 2 - t
        shape = np.where(
            (tt >= 0) & (tt < close), np.sin(0.5 * np.pi * tt / close),
            np.where((tt >= close) & (tt < duration),
                     np.cos(0.5 * np.pi * (tt - close) / (duration - close)), 0.0),
        )  # fmt: skip
        out = np.maximum(out, depth * shape)
        t += duration + 0.15 + rng.exponential(1.0 / rate)
    return out


def _gaze(rng: np.random.Generator, n: int, fps: int, emotion: EmotionStyle) -> np.ndarray:
    """Gaze [T, 2] (horizontal, vertical) in [-1, 1]: fixations joined by fast saccades."""
    bias = np.array(_GAZE_BIAS[emotion.name]) * emotion.intensity
    scan = 1.0 + (0.8 if emotion.name == "fear" else 0.0) * emotion.intensity
    out = np.zeros((n, 2))
    target = bias + rng.normal(0, 0.1, 2)
    t = 0.0
    f = 0
    while f < n:
        hold = float(np.clip(rng.lognormal(np.log(1.1 / scan), 0.5), 0.2, 4.0))
        f_end = min(n, int((t + hold) * fps) + 1)
        prev = out[f - 1] if f > 0 else target
        out[f:f_end] = target
        if f > 0 and f_end > f:  # a saccade lasts ~30–60 ms: half-way in the first frame
            out[f] = 0.5 * (prev + target)
        t += hold
        f = f_end
        far = rng.random() < 0.2
        target = bias + rng.normal(0, 0.35 if far else 0.12, 2)
    return np.clip(out + 0.02 * np.stack([_smooth_noise(rng, n, 3.0) for _ in range(2)], 1), -1, 1)


def make_targets(
    phones: list[Phone],
    n_frames: int,
    fps: int,
    emotion: EmotionStyle,
    prosody: Prosody,
    seed: int,
) -> np.ndarray:
    """float32[n_frames, 55] targets. Mouth/jaw/tongue depend only on phones, prosody and the
    emotion; upper face and head also on ``seed``."""
    check_fps(fps)
    rng = np.random.default_rng([seed, 0x7A26])
    n = n_frames
    k = float(emotion.intensity)
    speech = _speech_mask(phones, n, fps)
    energy = prosody.energy.astype(np.float64)[:n]
    if len(energy) < n:
        energy = np.pad(energy, (0, n - len(energy)))

    # --- articulation + deterministic emotional mouth shaping ---
    out = _articulation(phones, n, fps, energy)
    mouth = _vector(_MOUTH[emotion.name]) * k
    mouth_env = _envelope(n, fps, onset_s=0.35, start_level=0.6, end_drop=0.0)
    jaw_extra = mouth[B["jawOpen"]]
    mouth[B["jawOpen"]] = 0.0
    out += mouth_env[:, None] * mouth[None, :]
    out[:, B["jawOpen"]] += jaw_extra * mouth_env * gaussian_filter1d(speech, 1.5)
    _close_lips(out, phones, fps)

    # --- upper face: FACS pattern with seeded onset, apex variation and slow drift ---
    upper = _vector(_UPPER[emotion.name]) * k
    env = _envelope(
        n, fps, onset_s=rng.uniform(0.2, 0.9), start_level=rng.uniform(0.3, 0.8),
        end_drop=rng.uniform(0.0, 0.35),
    )  # fmt: skip
    apex = rng.uniform(0.8, 1.15)
    wobble = 1 + 0.15 * _smooth_noise(rng, n, fps * 0.8)
    out += (apex * env * wobble)[:, None] * upper[None, :]
    # brows also rise with pitch accents/energy while speaking (seeded gain)
    accent = np.clip(gaussian_filter1d(prosody.pitch.astype(np.float64)[:n], 2.0) / 4, 0, 1) * speech
    out[:, B["browInnerUp"]] += rng.uniform(0.05, 0.2) * accent
    out[:, B["browOuterUpLeft"]] += rng.uniform(0.03, 0.15) * accent
    out[:, B["browOuterUpRight"]] += rng.uniform(0.03, 0.15) * accent
    for name in ("browInnerUp", "browDownLeft", "browDownRight", "cheekSquintLeft",
                 "cheekSquintRight", "eyeSquintLeft", "eyeSquintRight"):  # fmt: skip
        out[:, B[name]] += 0.03 * _smooth_noise(rng, n, fps * 0.5)

    # --- blinks and gaze ---
    blink = _blinks(rng, n, fps, emotion, speech)
    lid = out[:, B["eyeBlinkLeft"]].copy()
    asym = rng.uniform(-0.05, 0.05)
    out[:, B["eyeBlinkLeft"]] = np.maximum(lid, blink * (1 + asym))
    out[:, B["eyeBlinkRight"]] = np.maximum(out[:, B["eyeBlinkRight"]], blink * (1 - asym))
    for side in ("Left", "Right"):
        out[:, B[f"eyeWide{side}"]] *= 1 - blink
        out[:, B[f"eyeSquint{side}"]] *= 1 - 0.5 * blink
    gaze = _gaze(rng, n, fps, emotion)
    h, v = gaze[:, 0], gaze[:, 1]  # h > 0: looking to the subject's left
    out[:, B["eyeLookOutLeft"]] += 0.6 * np.clip(h, 0, None)
    out[:, B["eyeLookInRight"]] += 0.6 * np.clip(h, 0, None)
    out[:, B["eyeLookInLeft"]] += 0.6 * np.clip(-h, 0, None)
    out[:, B["eyeLookOutRight"]] += 0.6 * np.clip(-h, 0, None)
    for side in ("Left", "Right"):
        out[:, B[f"eyeLookUp{side}"]] += 0.5 * np.clip(v, 0, None)
        out[:, B[f"eyeLookDown{side}"]] += 0.5 * np.clip(-v, 0, None) + 0.3 * blink

    # --- head: posture + drift + prosody (energy onsets nod, pitch accents lift, phrase ends
    # settle down) ---
    by, bp, br, gain = _HEAD_BIAS[emotion.name]
    posture = np.array([by, bp, br]) * k + rng.normal(0, [0.04, 0.03, 0.02])
    g = 1 + (gain - 1) * k
    drift = np.stack(
        [_smooth_noise(rng, n, fps * s) * a for s, a in ((1.2, 0.05), (1.0, 0.03), (1.5, 0.025))],
        axis=1,
    )
    e_s = gaussian_filter1d(energy * speech, 1.0)
    onset = np.clip(np.diff(e_s, prepend=e_s[:1]), 0, None)
    nod = gaussian_filter1d(onset, 2.0) * rng.uniform(0.06, 0.15)
    lift = gaussian_filter1d(np.clip(prosody.pitch.astype(np.float64)[:n], 0, None) * speech, 3.0)
    ends = np.clip(-np.diff(gaussian_filter1d(speech, 2.0), prepend=speech[:1]), 0, None)
    settle = gaussian_filter1d(ends, 4.0) * rng.uniform(0.1, 0.3)
    sway = _smooth_noise(rng, n, fps * 0.4) * 0.02 * gaussian_filter1d(energy * speech, 5.0)
    out[:, YAW] = posture[0] + g * (drift[:, 0] + sway)
    out[:, PITCH] = posture[1] + g * (drift[:, 1] + nod - 0.01 * lift + settle)
    out[:, ROLL] = posture[2] + g * (drift[:, 2] + 0.5 * sway)
    return clamp_motion(out).astype(np.float32)


def redraw_targets(utt: Utterance, seed: int) -> np.ndarray:
    """The utterance's targets drawn again with another seed: same articulation, new upper
    face and head motion. float32[T, 55] with T = ``utt.targets.shape[0]``."""
    n = utt.targets.shape[0]
    prosody = prosody_from_audio(utt.audio, n, utt.fps)
    return make_targets(utt.phones, n, utt.fps, utt.emotion, prosody, seed)
