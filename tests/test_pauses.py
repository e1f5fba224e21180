"""Pause edges checked against the audio (``training.pauses``) and the corpus fingerprint that
keeps item caches from going stale when a corpus is rebuilt in place."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest

from emostream.config import SAMPLE_RATE
from emostream.training.pauses import FRAME, frame_db, speech_bounds, tighten_pauses
from emostream.training.phones import SIL, make_phone
from emostream.training.schema import Phone

SR = SAMPLE_RATE


def audio_with(speech: list[tuple[float, float]], seconds: float) -> np.ndarray:
    """A 200 Hz tone over the ``speech`` spans (seconds), digital silence elsewhere."""
    t = np.arange(int(seconds * SR)) / SR
    out = np.zeros_like(t, dtype=np.float32)
    for a, b in speech:
        sel = (t >= a) & (t < b)
        out[sel] = 0.5 * np.sin(2 * np.pi * 200 * t[sel])
    return out


def phones_of(spec: list[tuple[str, float, float]]) -> list[Phone]:
    return [make_phone(round(a * SR), round(b * SR), ph) for ph, a, b in spec]


def spans(phones: list[Phone]) -> list[tuple[str, float, float]]:
    return [(p.phone, p.start / SR, p.end / SR) for p in phones]


def assert_tiles(phones: list[Phone], n: int) -> None:
    assert phones[0].start == 0 and phones[-1].end == n
    assert all(a.end == b.start and a.end > a.start for a, b in itertools.pairwise(phones))


def test_pause_that_eats_word_edges_is_moved_back_to_the_silence() -> None:
    audio = audio_with([(0.0, 0.5), (1.0, 1.5)], 1.5)
    phones = phones_of([("aa", 0.0, 0.3), (SIL, 0.3, 1.2), ("m", 1.2, 1.5)])
    out = tighten_pauses(phones, audio)
    assert spans(out) == [("aa", 0.0, 0.5), (SIL, 0.5, 1.0), ("m", 1.0, 1.5)]
    assert_tiles(out, len(audio))
    assert tighten_pauses(out, audio) == out  # a clean alignment is left as it is


def test_leading_pause_over_a_soft_first_word_hands_it_to_the_word() -> None:
    # real-000280's shape: the aligner's leading pause covers most of the only word.
    audio = audio_with([(0.04, 0.6)], 0.7)
    phones = phones_of([(SIL, 0.0, 0.38), ("jh", 0.38, 0.42), ("iy", 0.42, 0.66), (SIL, 0.66, 0.7)])
    out = tighten_pauses(phones, audio)
    assert spans(out)[:2] == [(SIL, 0.0, 0.04), ("jh", 0.04, 0.42)]
    assert spans(out)[-1] == (SIL, 0.66, 0.7)  # pauses only shrink: quiet speech phones stay
    assert_tiles(out, len(audio))


def test_sound_inside_a_pause_with_quiet_edges_stays_pause() -> None:
    audio = audio_with([(0.0, 0.3), (0.6, 0.65), (1.0, 1.3)], 1.3)  # a click mid-pause
    phones = phones_of([("aa", 0.0, 0.3), (SIL, 0.3, 1.0), ("aa", 1.0, 1.3)])
    assert tighten_pauses(phones, audio) == phones


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        # loud throughout between two words: they meet in the middle of the old pause
        ([("aa", 0.0, 0.2), (SIL, 0.2, 0.4), ("iy", 0.4, 0.6)], [("aa", 0.0, 0.3), ("iy", 0.3, 0.6)]),
        # trailing pause loud throughout: the last word takes it
        ([("aa", 0.0, 0.4), (SIL, 0.4, 0.6)], [("aa", 0.0, 0.6)]),
        # leading pause loud throughout: the first word takes it
        ([(SIL, 0.0, 0.2), ("aa", 0.2, 0.6)], [("aa", 0.0, 0.6)]),
    ],
)
def test_pause_that_is_speech_throughout_goes_to_its_neighbours(
    spec: list[tuple[str, float, float]], want: list[tuple[str, float, float]]
) -> None:
    audio = audio_with([(0.0, 0.6)], 0.6)
    out = tighten_pauses(phones_of(spec), audio)
    assert spans(out) == want
    assert_tiles(out, len(audio))


def test_a_pause_alone_is_kept_and_a_partial_last_frame_counts_as_quiet() -> None:
    audio = audio_with([(0.0, 0.2)], 0.2)
    only = phones_of([(SIL, 0.0, 0.2)])
    assert tighten_pauses(only, audio) == only
    odd = np.concatenate([audio_with([(0.0, 0.3)], 0.3), np.full(FRAME // 2, 0.5, np.float32)])
    phones = [make_phone(0, round(0.3 * SR), "aa"), make_phone(round(0.3 * SR), len(odd), SIL)]
    assert tighten_pauses(phones, odd) == phones


def test_frame_db_and_speech_bounds() -> None:
    audio = audio_with([(0.5, 1.0)], 1.5)
    db = frame_db(audio)
    assert len(db) == len(audio) // FRAME and db.max() == 0.0 and db[0] < -100
    lo, hi = speech_bounds(audio, margin=5)
    assert (lo, hi) == (round(0.45 * SR), round(1.05 * SR))
    assert speech_bounds(np.zeros(FRAME - 1, np.float32)) == (0, FRAME - 1)
    silent = np.zeros(SR, np.float32)  # digital silence is never speech: no bounds, no tightening
    assert (frame_db(silent) < -35).all() and speech_bounds(silent) == (0, SR)
    phones = phones_of([("aa", 0.0, 0.4), (SIL, 0.4, 1.0)])
    assert tighten_pauses(phones, silent) == phones


def test_corpus_fingerprint_follows_the_shard_bytes(tmp_path: Path) -> None:
    from emostream.training.corpus import build_corpus, corpus_fingerprint

    root = tmp_path / "c"
    build_corpus(root, preset="ci", seed=0, engines=["espeak"], progress=False)
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    assert corpus_fingerprint(copy) == corpus_fingerprint(root)
    shard = next((copy / "shards").glob("*.npz"))
    data = bytearray(shard.read_bytes())
    data[-1] ^= 1
    shard.write_bytes(bytes(data))
    assert corpus_fingerprint(copy) != corpus_fingerprint(root)
