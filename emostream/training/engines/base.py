"""What every speech source implements, the job it renders, and emotion → prosody settings."""

from __future__ import annotations

import importlib
import shutil
import wave
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import soxr

from emostream.arkit import EmotionStyle
from emostream.config import SAMPLE_RATE
from emostream.training.phones import finalize, make_phone, rescale_sample
from emostream.training.schema import Phone


@dataclass(frozen=True)
class Job:
    """One utterance to produce. ``source`` names a recording for engines that read files."""

    index: int
    engine: str
    voice: str
    text: str
    emotion: EmotionStyle
    split: str
    seed: int
    source: str = ""


@dataclass
class Speech:
    audio: np.ndarray  # float32[N], 16 kHz mono
    phones: list[Phone]  # tile [0, N) exactly, 16 kHz sample indices
    text: str


class Engine(Protocol):
    name: str
    licence: str
    voices: tuple[str, ...]

    def missing(self) -> str | None:
        """None when usable, else why not and which apt/pip package provides it."""
        ...

    def render(self, job: Job) -> Speech: ...


@dataclass(frozen=True)
class ProsodyShift:
    """Relative prosody for an emotion: multipliers of rate / pitch range / volume and a pitch
    offset in semitones."""

    rate: float = 1.0
    pitch_semitones: float = 0.0
    range: float = 1.0
    volume: float = 1.0


#: Emotional prosody at full intensity (vocal emotion literature: anger and joy are fast,
#: loud and wide; sadness slow, low, narrow and soft; fear fast, high and narrow; ...).
_PROSODY: dict[str, ProsodyShift] = {
    "neutral": ProsodyShift(),
    "angry": ProsodyShift(rate=1.12, pitch_semitones=1.5, range=1.4, volume=1.35),
    "contempt": ProsodyShift(rate=0.9, pitch_semitones=-1.5, range=0.75, volume=0.95),
    "disgusted": ProsodyShift(rate=0.85, pitch_semitones=-2.0, range=0.9, volume=1.0),
    "fear": ProsodyShift(rate=1.2, pitch_semitones=3.5, range=0.7, volume=0.85),
    "happy": ProsodyShift(rate=1.1, pitch_semitones=2.5, range=1.5, volume=1.15),
    "sad": ProsodyShift(rate=0.78, pitch_semitones=-2.5, range=0.45, volume=0.75),
    "surprised": ProsodyShift(rate=1.05, pitch_semitones=4.0, range=1.6, volume=1.15),
}


def prosody_for(emotion: EmotionStyle) -> ProsodyShift:
    """The emotion's prosody scaled by its intensity (0 → neutral)."""
    full, k = _PROSODY[emotion.name], float(emotion.intensity)
    return ProsodyShift(
        rate=1 + (full.rate - 1) * k,
        pitch_semitones=full.pitch_semitones * k,
        range=1 + (full.range - 1) * k,
        volume=1 + (full.volume - 1) * k,
    )


def to_16k(audio: np.ndarray, rate: int) -> np.ndarray:
    """float32 mono at ``rate`` → 16 kHz float32, length exactly round(N * 16000 / rate)."""
    x = np.asarray(audio, dtype=np.float32)
    if rate == SAMPLE_RATE:
        return x.copy()

    n_out = rescale_sample(len(x), rate, SAMPLE_RATE)
    y = soxr.resample(x, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    if len(y) < n_out:
        y = np.pad(y, (0, n_out - len(y)))
    return y[:n_out]


def speech_from_ends(audio: np.ndarray, rate: int, phones: list[tuple[str, int]], text: str) -> Speech:
    """Build ``Speech`` from native-rate audio and (unified phone, end sample at ``rate``)."""
    y = to_16k(audio, rate)
    out: list[Phone] = []
    start = 0
    for name, end_native in phones:
        end = rescale_sample(end_native, rate, SAMPLE_RATE)
        out.append(make_phone(start, end, name))
        start = max(start, end)
    return Speech(audio=y, phones=finalize(out, len(y)), text=text)


def read_wav(path: str) -> tuple[np.ndarray, int]:
    """16-bit PCM WAV → (float32 mono, rate)."""
    with wave.open(path, "rb") as w:
        rate, width, ch, n = w.getframerate(), w.getsampwidth(), w.getnchannels(), w.getnframes()
        raw = w.readframes(n)
    if width != 2:
        raise ValueError(f"{path}: expected 16-bit PCM, got {8 * width}-bit")
    x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if ch > 1:
        x = x.reshape(-1, ch).mean(axis=1)
    return x, rate


def need_binary(binary: str, apt: str) -> str | None:
    if shutil.which(binary) is None:
        return f"`{binary}` not found; install the Debian package `{apt}`"
    return None


def need_module(module: str, pip: str) -> str | None:
    try:
        importlib.import_module(module)
    except ImportError:
        return f"Python module `{module}` not found; `pip install {pip}`"
    return None
