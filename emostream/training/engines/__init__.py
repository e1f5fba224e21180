"""Speech sources for the corpus: one module per engine, each with an ``Engine`` class
(see ``base.Engine``). Engines are created lazily so a missing one costs nothing."""

from __future__ import annotations

import importlib
from typing import Any

#: Engine name → "module:Class" (order is part of every job seed: append, never reorder).
_REGISTRY: dict[str, str] = {
    "espeak": "emostream.training.engines.espeak:EspeakEngine",
    "flite": "emostream.training.engines.flite:FliteEngine",
    "festival": "emostream.training.engines.festival:FestivalEngine",
    "piper": "emostream.training.engines.piper:PiperEngine",
    "real": "emostream.training.engines.real:RealEngine",
}
ENGINE_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def create_engine(name: str) -> Any:
    module, _, cls = _REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), cls)()
