"""Regenerate ``emostream/assets/sample.wav`` with flite (Debian package ``flite``, voice
``slt``, CMU licence, see LICENSES.md). Run: ``python -m emostream.assets.make_sample``.

flite already writes 16 kHz mono 16-bit PCM; the clip is peak-normalised to −3 dBFS and
written with the standard ``wave`` module, so the output is byte-identical across runs."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from emostream.assets import SAMPLE_TEXT, sample_path
from emostream.config import SAMPLE_RATE
from emostream.errors import DependencyError
from emostream.media.audio import load_audio

PEAK = 10 ** (-3 / 20)


def synthesize(text: str, out: Path, voice: str = "slt") -> Path:
    flite = shutil.which("flite")
    if flite is None:
        raise DependencyError("flite not found; install it with: sudo apt-get install flite")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "flite.wav"
        subprocess.run([flite, "-voice", voice, "-t", text, "-o", str(raw)], check=True)
        pcm = load_audio(raw)  # 16 kHz mono float32
    pcm = pcm * (PEAK / float(np.abs(pcm).max()))
    ints = np.round(pcm * 32767.0).astype("<i2")
    out.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(ints.tobytes())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=sample_path(), help="output WAV path")
    ap.add_argument("--text", default=SAMPLE_TEXT, help="sentence to speak")
    args = ap.parse_args()
    path = synthesize(args.text, args.out)
    print(f"wrote {path} ({len(load_audio(path)) / SAMPLE_RATE:.2f} s)")


if __name__ == "__main__":
    main()
