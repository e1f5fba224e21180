"""Small files shipped inside the package (see LICENSES.md next to them)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

#: The sentence spoken in ``sample.wav``.
SAMPLE_TEXT = "Hello! I am emostream. Give me one photo and a voice, and I will talk back, live."


def asset_path(name: str) -> Path:
    """Filesystem path of a bundled asset (the package is installed unzipped)."""
    return Path(str(files("emostream.assets").joinpath(name)))


def sample_path() -> Path:
    """The bundled speech sample: 16 kHz mono 16-bit WAV, ~5.5 s, flite voice ``slt``."""
    return asset_path("sample.wav")
