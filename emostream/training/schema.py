"""The corpus record shared by the data builder and every trainer / evaluator.

Storage (written by ``emostream.training.corpus``): ``DIR/manifest.json`` plus shards
``DIR/shards/NNNNN.npz``; ``emostream.training.corpus.load_corpus(DIR, split=...)`` yields
``Utterance`` objects. Audio is the engine's format (16 kHz mono float32); targets are motion
vectors (see ``emostream.arkit``) at ``fps``; phone times are in 16 kHz samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emostream.arkit import MOTION_DIM, EmotionStyle

#: The 15 Oculus visemes every engine's phones map to.
VISEMES: tuple[str, ...] = (
    "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U",
)  # fmt: skip
VISEME_INDEX: dict[str, int] = {v: i for i, v in enumerate(VISEMES)}

#: Splits: train / val are synthetic; real speech is split into train_real and test_real
#: (test_real is never trained on).
SPLITS: tuple[str, ...] = ("train", "val", "train_real", "test_real")


@dataclass(frozen=True)
class Phone:
    start: int  # first sample (16 kHz)
    end: int  # one past the last sample
    phone: str  # unified ARPAbet-like inventory, lower case; "sil" for pauses
    viseme: str  # one of VISEMES


@dataclass
class Utterance:
    uid: str
    audio: np.ndarray  # float32[N], 16 kHz mono
    phones: list[Phone]
    targets: np.ndarray  # float32[T, MOTION_DIM], T = frames covering the audio at fps
    fps: int
    emotion: EmotionStyle
    engine: str  # "espeak", "flite", "festival", "piper", "real", "livelink", ...
    voice: str
    text: str
    split: str
    seed: int  # seed the targets were drawn with (redraw with another for diversity)

    def __post_init__(self) -> None:
        if self.targets.ndim != 2 or self.targets.shape[1] != MOTION_DIM:
            raise ValueError(f"targets must be [T, {MOTION_DIM}], got {self.targets.shape}")
        if self.split not in SPLITS:
            raise ValueError(f"unknown split {self.split!r}")
