"""espeak-ng through its C API: phoneme events carry exact sample positions (22,050 Hz)."""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

import numpy as np

from emostream.training.engines.base import Job, Speech, prosody_for, to_16k
from emostream.training.phones import finalize, ipa_to_phones, rescale_sample, split_segment
from emostream.training.schema import Phone

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS, _INIT_PHONEME_IPA = 1, 2
_POS_CHARACTER = 1
_EV_LIST_TERMINATED, _EV_PHONEME = 0, 7
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms
        ("sample", ctypes.c_int),  # sample index at the output rate
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


def _load_library() -> tuple[Any, bytes | None]:
    """Debian's libespeak-ng, else the espeakng-loader wheel's bundled copy and data."""
    name = ctypes.util.find_library("espeak-ng")
    for candidate in ([name] if name else []) + ["libespeak-ng.so.1"]:
        try:
            return ctypes.CDLL(candidate), None
        except OSError:
            continue
    # deferred: espeakng-loader, only when the espeak engine is used
    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    return lib, str(espeakng_loader.get_data_path()).encode()


class _Synth:
    """The process's one espeak-ng instance: the C library keeps a single global callback, so
    every engine object shares this state (initialised once per process)."""

    def __init__(self) -> None:
        lib, data = _load_library()
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA
        )
        if rate <= 0:
            raise OSError("espeak_Initialize failed")
        self.lib, self.rate = lib, int(rate)
        self.samples: list[np.ndarray] = []
        self.events: list[tuple[int, str]] = []
        self._cb = _CALLBACK(self._on_audio)  # kept alive as long as the library uses it
        lib.espeak_SetSynthCallback(self._cb)

    def _on_audio(self, wav: Any, n: int, events: Any) -> int:
        if n > 0:
            self.samples.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EV_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EV_PHONEME:
                ipa = bytes(ev.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
                self.events.append((int(ev.sample), ipa))
            i += 1
        return 0


_SYNTH: list[_Synth] = []


def _library() -> _Synth:
    if not _SYNTH:
        _SYNTH.append(_Synth())
    return _SYNTH[0]


class EspeakEngine:
    name = "espeak"
    licence = "espeak-ng: GPL-3.0-or-later (generated audio carries no licence restriction)"
    voices: tuple[str, ...] = (
        "en-us", "en-us+f2", "en-us+f3", "en-us+f4", "en-us+m2", "en-us+m3", "en-us+m7",
        "en", "en+f3", "en-gb-x-rp+m1", "en-029+f5", "en-gb-scotland+m4",
        "en-us+klatt", "en-us+klatt4", "en-gb-x-gbclan+f1", "en-us+croak", "en-gb-x-gbcwmd+m3",
    )  # fmt: skip

    def missing(self) -> str | None:
        try:
            _library()
        except OSError as e:
            return (
                f"libespeak-ng not loadable ({e}); install Debian `libespeak-ng1` "
                "or `pip install espeakng-loader`"
            )
        return None

    def render(self, job: Job) -> Speech:
        synth = _library()
        lib = synth.lib
        rng = np.random.default_rng(job.seed)
        p = prosody_for(job.emotion)
        rate = int(np.clip(170 * p.rate * rng.uniform(0.9, 1.1), 80, 450))
        pitch = int(np.clip(50 + 5 * p.pitch_semitones + rng.uniform(-10, 10), 0, 100))
        prange = int(np.clip(50 * p.range * rng.uniform(0.85, 1.15), 0, 100))
        volume = int(np.clip(100 * p.volume, 10, 200))
        if lib.espeak_SetVoiceByName(job.voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {job.voice!r}")
        for param, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, prange), (_VOLUME, volume)):
            lib.espeak_SetParameter(param, value, 0)
        synth.samples, synth.events = [], []
        text = job.text.encode("utf-8")
        lib.espeak_Synth(text, len(text) + 1, 0, _POS_CHARACTER, 0, 0, None, None)
        raw = np.concatenate(synth.samples) if synth.samples else np.zeros(0, np.int16)
        audio = to_16k(raw.astype(np.float32) / 32768.0, synth.rate)
        n = len(audio)
        phones: list[Phone] = []
        events = sorted(synth.events)
        for k, (sample, ipa) in enumerate(events):
            end_native = events[k + 1][0] if k + 1 < len(events) else len(raw)
            start = rescale_sample(sample, synth.rate, 16000)
            end = rescale_sample(end_native, synth.rate, 16000)
            if end > start:
                phones.extend(split_segment(start, end, ipa_to_phones(ipa)))
        return Speech(audio=audio, phones=finalize(phones, n), text=job.text)
