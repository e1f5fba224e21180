"""Lip metrics (mouth accuracy and closure), with the refiner on and off.

Functions other evaluators call (``emostream eval motion`` uses them for its refiner on/off JSON):

- ``mouth_mae(pred, target)``: mean |Δ| over the 27 mouth values (``MOUTH_SLICE``), all frames.
- ``jaw_corr(preds, targets)``: Pearson correlation of jawOpen over all frames pooled.
- ``bilabial_closure(motion, phones, fps)``: (closed, total) over p/b/m phones (viseme PP): the
  lips count as closed when the lip gap ``jawOpen − mouthClose`` at the frame holding the phone's
  middle sample is ≤ ``CLOSED_GAP`` (ARKit's mouthClose presses the lips together against an open
  jaw, so this is the jaw-driven opening between the lips).
- ``silence_rest(motion, phones, n_samples, fps)``: (at rest, total) over silent stretches longer than
  ``SILENCE_MIN_S`` (time not covered by a speech phone); a stretch is at rest when its interior
  (``REST_MARGIN_S`` trimmed at each end for coarticulation) has jawOpen ≤ ``REST_JAW`` and lip
  gap ≤ ``CLOSED_GAP`` on every frame.
- ``quiet_silence_rest(motion, phones, n_samples, fps, speech)``: the same over the stretches the
  VAD hears no speech in (a diagnostic: aligned pauses that still hold sound are left out).
- ``lip_metrics(preds, utts[, speech])``: all of the above over a list of utterances, as a dict.
- ``refine_sequence(refiner, features, motion, emotion)``: the refined motion through one stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from emostream.arkit import BLENDSHAPE_INDEX, MOUTH_SLICE, EmotionStyle
from emostream.config import SAMPLE_RATE, frames_covering
from emostream.engine.lip import LipRefiner
from emostream.engine.vad import SPEECH_THRESHOLD
from emostream.training.schema import Phone, Utterance
from emostream.training.targets import redraw_targets

JAW = BLENDSHAPE_INDEX["jawOpen"]
CLOSE = BLENDSHAPE_INDEX["mouthClose"]
CLOSED_GAP = 0.06  # lip gap (jawOpen − mouthClose) at or below which the lips count as closed
REST_JAW = 0.1  # jawOpen at or below which the jaw counts as at rest
SILENCE_MIN_S = 0.3
REST_MARGIN_S = 0.12


def lip_gap(motion: np.ndarray) -> np.ndarray:
    """float[..., 55] → float[...]: jaw-driven opening between the lips."""
    return np.maximum(0.0, motion[..., JAW] - motion[..., CLOSE])


def mouth_mae(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute error over the mouth subset; pred/target float[T, 55] (or concatenations)."""
    n = min(len(pred), len(target))
    return float(np.abs(pred[:n, MOUTH_SLICE] - target[:n, MOUTH_SLICE]).mean())


def jaw_corr(preds: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> float:
    """Pearson correlation of jawOpen, all frames of all utterances pooled."""
    p = np.concatenate([a[: min(len(a), len(b)), JAW] for a, b in zip(preds, targets, strict=True)])
    t = np.concatenate([b[: min(len(a), len(b)), JAW] for a, b in zip(preds, targets, strict=True)])
    if p.std() == 0 or t.std() == 0:
        return 0.0
    return float(np.corrcoef(p, t)[0, 1])


def _frame_of(sample: int, fps: int) -> int:
    return sample * fps // SAMPLE_RATE


def bilabial_closure(motion: np.ndarray, phones: Sequence[Phone], fps: int) -> tuple[int, int]:
    closed = total = 0
    for p in phones:
        if p.viseme != "PP":
            continue
        f = min(len(motion) - 1, _frame_of((p.start + p.end) // 2, fps))
        total += 1
        closed += int(lip_gap(motion[f]) <= CLOSED_GAP)
    return closed, total


def silent_stretches(phones: Sequence[Phone], n_samples: int) -> list[tuple[int, int]]:
    """[start, end) sample spans not covered by any speech phone, longer than SILENCE_MIN_S."""
    speech = np.zeros(n_samples + 1, dtype=np.int8)
    for p in phones:
        if p.viseme != "sil":
            speech[max(0, p.start) : min(n_samples, p.end)] = 1
    edges = np.flatnonzero(np.diff(np.concatenate([[1], speech[:n_samples], [1]])))
    spans = list(zip(edges[::2], edges[1::2], strict=True))
    min_len = int(SILENCE_MIN_S * SAMPLE_RATE)
    return [(int(a), int(b)) for a, b in spans if b - a > min_len]


def rest_interiors(phones: Sequence[Phone], n_samples: int, fps: int, n_frames: int) -> list[tuple[int, int]]:
    """[f0, f1) frame spans of the silent stretches' interiors: whole frames inside
    [start + REST_MARGIN_S, end − REST_MARGIN_S), empty ones left out."""
    margin = int(REST_MARGIN_S * SAMPLE_RATE)
    spans = []
    for a, b in silent_stretches(phones, n_samples):
        f0 = -((-(a + margin) * fps) // SAMPLE_RATE)
        f1 = min(n_frames, _frame_of(b - margin, fps))
        if f1 > f0:
            spans.append((f0, f1))
    return spans


def _at_rest(seg: np.ndarray) -> bool:
    return bool((seg[:, JAW] <= REST_JAW).all() and (lip_gap(seg) <= CLOSED_GAP).all())


def silence_rest(motion: np.ndarray, phones: Sequence[Phone], n_samples: int, fps: int) -> tuple[int, int]:
    spans = rest_interiors(phones, n_samples, fps, len(motion))
    return sum(_at_rest(motion[f0:f1]) for f0, f1 in spans), len(spans)


def quiet_silence_rest(
    motion: np.ndarray, phones: Sequence[Phone], n_samples: int, fps: int, speech: np.ndarray
) -> tuple[int, int]:
    """``silence_rest`` over the stretches whose interior the VAD hears no speech in (``speech``:
    float[T] speech probability per frame, all below ``SPEECH_THRESHOLD``). A diagnostic beside the
    metric: it separates a mouth that fails to rest from an aligned pause that still holds sound
    (a consonant the aligner ended early, a breath), where a mouth following the audio moves."""
    spans = [
        (f0, f1)
        for f0, f1 in rest_interiors(phones, n_samples, fps, len(motion))
        if float(np.max(speech[f0:f1], initial=0.0)) < SPEECH_THRESHOLD
    ]
    return sum(_at_rest(motion[f0:f1]) for f0, f1 in spans), len(spans)


def lip_metrics(
    preds: Sequence[np.ndarray], utts: Sequence[Utterance], speech: Sequence[np.ndarray] | None = None
) -> dict[str, float | int | None]:
    """Mouth and closure metrics of ``preds[i]`` (float[T_i, 55]) against ``utts[i]``; with
    ``speech`` (the VAD's float[T_i] per utterance) also rest over the pauses the VAD finds quiet."""
    closed = n_bil = rest = n_sil = 0
    for pred, u in zip(preds, utts, strict=True):
        c, n = bilabial_closure(pred, u.phones, u.fps)
        closed, n_bil = closed + c, n_bil + n
        r, m = silence_rest(pred, u.phones, len(u.audio), u.fps)
        rest, n_sil = rest + r, n_sil + m
    quiet: dict[str, float | int | None] = {}
    if speech is not None:
        qr = qn = 0
        for pred, u, sp in zip(preds, utts, speech, strict=True):
            r, m = quiet_silence_rest(pred, u.phones, len(u.audio), u.fps, sp)
            qr, qn = qr + r, qn + m
        quiet = {"silence_rest_quiet": qr / qn if qn else None, "n_quiet_silences": qn}
    return {
        "mouth_mae": float(np.mean([mouth_mae(p, u.targets) for p, u in zip(preds, utts, strict=True)])),
        "jaw_corr": jaw_corr(preds, [u.targets for u in utts]),
        "bilabial_closure": closed / n_bil if n_bil else None,  # None: nothing to measure
        "silence_rest": rest / n_sil if n_sil else None,
        "n_bilabials": n_bil,
        "n_silences": n_sil,
        "n_utterances": len(utts),
        **quiet,
    }


def pad_utterance(u: Utterance, before_s: float, after_s: float | None = None) -> Utterance:
    """``u`` with digital silence before and after (whole frames; ``after_s`` defaults to
    ``before_s``): phones shifted, a "sil" phone on each pad, and targets drawn again by the
    corpus generator (``training.targets.redraw_targets``, same seed: same articulation) for the
    padded phones, so the mouth comes to rest in the pause as the corpus defines rest. For
    measuring (and training) rest in long pauses, which corpus utterances rarely contain."""
    unit = u.fps // math.gcd(SAMPLE_RATE, u.fps)  # pads in multiples of whole samples
    k0 = round(before_s * u.fps) // unit * unit
    k1 = round((before_s if after_s is None else after_s) * u.fps) // unit * unit
    if k0 <= 0 and k1 <= 0:
        return u
    s0, s1 = k0 * SAMPLE_RATE // u.fps, k1 * SAMPLE_RATE // u.fps
    audio = np.concatenate([np.zeros(s0, np.float32), u.audio, np.zeros(s1, np.float32)])
    phones = [Phone(0, s0, "sil", "sil")] if s0 else []
    phones += [Phone(p.start + s0, p.end + s0, p.phone, p.viseme) for p in u.phones]
    if s1:
        phones.append(Phone(s0 + len(u.audio), len(audio), "sil", "sil"))
    n = frames_covering(len(audio), u.fps)
    shape_only = np.zeros((n, u.targets.shape[1]), np.float32)  # replaced by the redraw below
    padded = replace(u, uid=f"{u.uid}+pad", audio=audio, phones=phones, targets=shape_only)
    return replace(padded, targets=redraw_targets(padded, u.seed))


def refine_sequence(
    refiner: LipRefiner, features: np.ndarray, motion: np.ndarray, emotion: EmotionStyle
) -> np.ndarray:
    """The refined float32[T, 55] for a whole sequence (one stream: push + flush)."""
    stream = refiner.new_stream(emotion)
    out = np.concatenate([stream.push(features, motion), stream.flush()])
    assert out.shape == motion.shape, (out.shape, motion.shape)
    return out


def evaluate(
    utts: Sequence[Utterance],
    refiner: LipRefiner,
    featurize: Callable[[np.ndarray, int], np.ndarray],
    base_motion: Callable[[Utterance, np.ndarray], np.ndarray] | None = None,
    classify: Callable[[np.ndarray], int] | None = None,
    vad: Callable[[np.ndarray, int], np.ndarray] | None = None,
) -> dict[str, dict[str, float | int | None]]:
    """Metrics with the refiner on, and off (``base_motion``'s own mouth) when a base is given.

    ``base_motion(utt, features) -> float32[T, 55]`` is the motion model's output for the
    utterance (EmoDiff without refiner). Without it the refiner runs over neutral motion (its
    mouth output does not depend on the incoming mouth) and only ``"on"`` is returned.
    ``classify(motion float32[T, 55]) -> emotion index`` adds ``emotion_acc`` to on and off;
    ``vad(audio, fps) -> float[T]`` (speech probability per frame) adds ``silence_rest_quiet``."""
    on_preds, off_preds = [], []
    for u in utts:
        n = frames_covering(len(u.audio), u.fps)
        feats = featurize(u.audio, u.fps)[:n]
        base = (
            base_motion(u, feats)
            if base_motion is not None
            else np.zeros((n, u.targets.shape[1]), np.float32)
        )
        base = np.asarray(base, dtype=np.float32)[:n]
        on_preds.append(refine_sequence(refiner, feats, base, u.emotion))
        off_preds.append(base)
    speech = [vad(u.audio, u.fps) for u in utts] if vad is not None else None
    out = {"on": lip_metrics(on_preds, utts, speech)}
    if base_motion is not None:
        out["off"] = lip_metrics(off_preds, utts, speech)
    if classify is not None:
        for key, preds in (("on", on_preds), ("off", off_preds)):
            if key in out:
                hits = [classify(p) == u.emotion.index for p, u in zip(preds, utts, strict=True)]
                out[key]["emotion_acc"] = float(np.mean(hits))
    out["targets"] = lip_metrics([u.targets for u in utts], utts, speech)
    return out


def plot_jaw(utt: Utterance, curves: dict[str, np.ndarray], path: str | Path) -> None:
    """jawOpen (top) and lip gap ``jawOpen − mouthClose`` (bottom, with the ``CLOSED_GAP``
    threshold) over time for one utterance (one line per curve, float[T, 55] each), with its
    aligned phones on the time line (bilabials in red, silences grey)."""
    # deferred: matplotlib (heavy), only when plotting
    import matplotlib

    matplotlib.use("Agg")
    # deferred: matplotlib.pyplot, once the headless Agg backend is chosen
    import matplotlib.pyplot as plt

    fig, (ax, axg) = plt.subplots(2, 1, figsize=(12, 5.6), sharex=True, height_ratios=(3, 2))
    for name, seq in curves.items():
        t = np.arange(len(seq)) / utt.fps
        lw = 1.4 if name == "target" else 1.1
        ax.plot(t, seq[:, JAW], lw=lw, label=name)
        axg.plot(t, lip_gap(seq), lw=lw, label=name)
    top = max(float(np.max(seq[:, JAW])) for seq in curves.values()) * 1.05 + 0.05
    for p in utt.phones:
        a, b = p.start / SAMPLE_RATE, p.end / SAMPLE_RATE
        colour = "tab:red" if p.viseme == "PP" else ("0.85" if p.viseme == "sil" else None)
        for axis in (ax, axg):
            if colour:
                axis.axvspan(a, b, color=colour, alpha=0.25, lw=0)
            axis.axvline(a, color="0.8", lw=0.5)
        ax.text((a + b) / 2, top, p.phone, ha="center", va="bottom", fontsize=7, rotation=90)
    axg.axhline(CLOSED_GAP, color="k", lw=0.8, ls="--", label=f"closed ≤ {CLOSED_GAP}")
    ax.set_ylim(0, top + 0.12)
    axg.set_xlabel("time (s)")
    ax.set_ylabel("jawOpen")
    axg.set_ylabel("lip gap")
    ax.set_title(f"{utt.uid} ({utt.engine}, {utt.split}): {utt.text[:90]}", fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    axg.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
