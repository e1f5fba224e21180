"""Real human speech: Asterisk's English prompts (one female speaker, 8 kHz, CC-BY-SA 3.0)
with transcripts, phone-aligned by pocketsphinx (two decoding passes: align, then phones); pause
edges are then checked against the audio's energy (``pauses.tighten_pauses``)."""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from emostream.config import SAMPLE_RATE
from emostream.training.engines.base import Job, Speech, need_module, read_wav, to_16k
from emostream.training.pauses import FRAME, speech_bounds, tighten_pauses
from emostream.training.phones import SIL, arpabet_to_phone, finalize, make_phone
from emostream.training.schema import Phone

SOUNDS_DIR = Path("/usr/share/asterisk/sounds/en")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")

_ONES = tuple(
    [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ]
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SYMBOLS = {"*": " star ", "#": " pound ", "&": " and ", "%": " percent ", "+": " plus "}


def number_words(n: int) -> str:
    """English words for 0 <= n < 10**6."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = "" if n % 100 == 0 else " " + number_words(n % 100)
        return _ONES[n // 100] + " hundred" + rest
    rest = "" if n % 1000 == 0 else " " + number_words(n % 1000)
    return number_words(n // 1000) + " thousand" + rest


def normalize(text: str) -> str:
    """Transcript → lower-case words for the pocketsphinx dictionary."""
    for sym, word in _SYMBOLS.items():
        text = text.replace(sym, word)
    text = re.sub(r"\d+", lambda m: f" {number_words(int(m.group()))} ", text)
    text = re.sub(r"[^a-zA-Z' ]+", " ", text.replace("-", " "))
    return " ".join(text.lower().split())


def _dictionary_words() -> set[str]:
    # deferred: pocketsphinx (heavy), only when aligning real speech
    from pocketsphinx import get_model_path

    path = Path(get_model_path()) / "en-us" / "cmudict-en-us.dict"
    with open(path, encoding="utf-8", errors="replace") as f:
        return {line.split(" ", 1)[0] for line in f if line.strip()}


def read_prompts() -> list[tuple[str, str]]:
    """(prompt name, transcript) for every speech prompt that has a WAV file and whose words
    are all in the pocketsphinx dictionary (else alignment is impossible), sorted by name."""
    words = _dictionary_words()
    out: list[tuple[str, str]] = []
    with gzip.open(TRANSCRIPTS, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            name, sep, text = line.partition(":")
            name, text = name.strip(), text.strip()
            if not sep or name.startswith(";") or not text or text[0] in "[<(":
                continue
            norm = normalize(text)
            if not norm or any(w not in words for w in norm.split()):
                continue
            if (SOUNDS_DIR / f"{name}.wav").is_file():
                out.append((name, text))
    return sorted(set(out))


def is_test_prompt(name: str, fraction: float = 0.3) -> bool:
    """Held-out prompts for ``test_real``: a fixed hash of the name, independent of seeds."""
    return (zlib.crc32(name.encode()) % 1000) < fraction * 1000


def pcm16(audio: np.ndarray) -> bytes:
    """float32 [-1, 1] → little-endian s16 bytes, what pocketsphinx's ``process_raw`` reads."""
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def force_align(decoder: Any, audio: np.ndarray, words: str) -> Any:
    """pocketsphinx forced alignment of 16 kHz ``audio`` to ``words``: one pass aligns the words,
    a second decodes the phones (``get_alignment()`` after one pass is None). Returns the
    word → phone alignment, or None when the words cannot be aligned to the audio (a word missing
    from the dictionary, or speech that does not match: pocketsphinx raises RuntimeError then)."""
    pcm = pcm16(audio)
    try:
        decoder.set_align_text(words)
        for second_pass in (False, True):
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            if not second_pass:
                decoder.set_alignment()
        return decoder.get_alignment()
    except RuntimeError:
        return None


class RealEngine:
    name = "real"
    licence = "Asterisk core sounds (en, Allison Smith): CC-BY-SA 3.0; aligner pocketsphinx: BSD-2"
    voices: tuple[str, ...] = ("asterisk-allison",)

    def __init__(self) -> None:
        self._decoder: Any = None
        self._dict: set[str] | None = None

    def missing(self) -> str | None:
        why = need_module("pocketsphinx", "pocketsphinx")
        if why is None and not TRANSCRIPTS.is_file():
            why = f"{TRANSCRIPTS} not found; install Debian `asterisk-core-sounds-en`"
        if why is None and not SOUNDS_DIR.is_dir():
            why = f"{SOUNDS_DIR} not found; install Debian `asterisk-core-sounds-en-wav`"
        return why

    def _ensure(self, wide: bool = False) -> Any:
        if self._decoder is None or wide:
            # deferred: pocketsphinx (heavy), only when aligning real speech
            from pocketsphinx import Config, Decoder

            # bestpath off: its lattice rescoring makes forced alignment fail on some prompts
            beams = {"beam": 1e-100, "pbeam": 1e-100, "wbeam": 1e-80} if wide else {}
            config = Config(samprate=SAMPLE_RATE, loglevel="FATAL", bestpath=False, **beams)
            self._decoder = Decoder(config)
        return self._decoder

    def _align(self, audio: np.ndarray, words: str, wide: bool = False) -> Any:
        alignment = force_align(self._ensure(wide), audio, words)
        if alignment is None:
            raise RuntimeError("no alignment")
        return alignment

    def align(self, audio: np.ndarray, text: str) -> list[Phone]:
        """Phones of 16 kHz ``audio`` aligned to its transcript ``text``, tiling the audio, pause
        edges as pocketsphinx put them. RuntimeError when pocketsphinx cannot align them."""
        words = normalize(text)
        lo, hi = speech_bounds(audio)  # the aligner has no optional edge silence: trim it
        try:
            alignment = self._align(audio[lo:hi], words)
        except RuntimeError:  # trimming can cut a soft onset: retry on the whole file, wide beams
            lo, hi = 0, len(audio)
            try:
                alignment = self._align(audio, words, wide=True)
            finally:
                self._decoder = None  # back to the normal decoder for the next prompt
        phones: list[Phone] = []
        for word in alignment:
            for ph in word:
                name = arpabet_to_phone(ph.name) or SIL
                start = lo + ph.start * FRAME
                end = lo + (ph.start + ph.duration) * FRAME
                phones.append(make_phone(start, min(end, len(audio)), name))
        return finalize(phones, len(audio))

    def render(self, job: Job) -> Speech:
        raw, rate = read_wav(str(SOUNDS_DIR / f"{job.source}.wav"))
        audio = to_16k(raw, rate)
        try:
            phones = self.align(audio, job.text)
        except RuntimeError as e:
            raise RuntimeError(f"pocketsphinx could not align {job.source}: {e}") from e
        return Speech(audio=audio, phones=tighten_pauses(phones, audio), text=job.text)
