"""Pauses against the audio's energy, for phones from pocketsphinx.

pocketsphinx's forced alignment tends to let a pause ("sil") start inside the fading end of a
word (a drawn-out "was...") and to open a prompt with a pause that covers a soft first word: on
Asterisk's real prompts 11.7 % of the 10 ms frames it labels "sil" in ``train_real`` are within
``SPEECH_FLOOR_DB`` of the utterance's loudest frame. Labelled as a pause, that speech trains the
mouth to rest while the voice is still audible, and the lip metrics count it as a silence.

``tighten_pauses`` hands such frames back to the neighbouring speech phone. It only moves pause
edges: loud frames inside a pause with quiet frames on both sides (a click, a breath) stay pause.
"""

from __future__ import annotations

import numpy as np

from emostream.config import SAMPLE_RATE
from emostream.training.phones import SIL, make_phone
from emostream.training.schema import Phone

FRAME = SAMPLE_RATE // 100  # 10 ms, pocketsphinx's frame
#: A 10 ms frame within this many dB of the utterance's loudest frame counts as speech.
SPEECH_FLOOR_DB = -35.0
#: Levels are relative to the loudest frame, or to this RMS level (dBFS) when all are quieter:
#: near-digital silence is never speech.
QUIET_REFERENCE_DBFS = -80.0


def frame_db(audio: np.ndarray) -> np.ndarray:
    """float[n_frames]: each whole 10 ms frame's RMS level in dB relative to the loudest frame
    (0 for the loudest) or to ``QUIET_REFERENCE_DBFS`` if that is louder; a partial last frame
    is left out."""
    n = len(audio) // FRAME
    if n == 0:
        return np.zeros(0)
    rms = np.sqrt(np.mean(np.asarray(audio[: n * FRAME], np.float64).reshape(n, FRAME) ** 2, axis=1) + 1e-12)
    return 20 * np.log10(rms / max(float(rms.max()), 10 ** (QUIET_REFERENCE_DBFS / 20)))


def speech_bounds(audio: np.ndarray, margin: int = 5) -> tuple[int, int]:
    """[lo, hi) sample range from the first to the last speech frame (``SPEECH_FLOOR_DB``),
    widened by ``margin`` frames; the whole audio when it has no whole frame."""
    loud = np.flatnonzero(frame_db(audio) > SPEECH_FLOOR_DB)
    if len(loud) == 0:
        return 0, len(audio)
    lo = max(0, int(loud[0]) - margin) * FRAME
    hi = min(len(audio), (int(loud[-1]) + 1 + margin) * FRAME)
    return lo, hi


def tighten_pauses(phones: list[Phone], audio: np.ndarray) -> list[Phone]:
    """``phones`` (tiling the audio, no two pauses adjacent, as ``finalize`` returns them) with
    every pause's edges moved inwards past the speech frames that touch a speech neighbour; the
    neighbour grows by as much. A pause that is speech throughout is shared between its two
    neighbours at its middle (or given whole to its only one). Boundaries stay on samples a
    phone already had or on 10 ms frame edges."""
    loud = frame_db(audio) > SPEECH_FLOOR_DB

    def speech_at(sample: int) -> bool:
        k = sample // FRAME
        return k < len(loud) and bool(loud[k])

    # bounds[i] = [start, end] of phone i, edited in place; pauses only move shared edges.
    bounds = [[p.start, p.end] for p in phones]
    for i, p in enumerate(phones):
        if p.phone != SIL:
            continue
        has_prev = i > 0 and phones[i - 1].phone != SIL
        has_next = i + 1 < len(phones) and phones[i + 1].phone != SIL
        s, e = p.start, p.end
        while has_prev and s < e and speech_at(s):
            s = min(e, (s // FRAME + 1) * FRAME)
        while has_next and e > s and speech_at(e - 1):
            e = max(s, (e - 1) // FRAME * FRAME)
        if s >= e:  # speech throughout: the neighbours meet in the middle
            s = e = (p.start + p.end) // 2 if has_prev and has_next else (p.end if has_prev else p.start)
        bounds[i] = [s, e]
        if has_prev:
            bounds[i - 1][1] = s
        if has_next:
            bounds[i + 1][0] = e
    return [make_phone(a, b, p.phone) for (a, b), p in zip(bounds, phones, strict=True) if b > a]
