"""flite (Debian): ``-psdur`` prints each phone's end time; cluster-gen voices take prosody."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from emostream.training.engines.base import (
    Job,
    Speech,
    need_binary,
    prosody_for,
    read_wav,
    speech_from_ends,
)
from emostream.training.phones import SIL, arpabet_to_phone


class FliteEngine:
    name = "flite"
    licence = "flite and its CMU voices: BSD-style (CMU/Edinburgh licence, free use)"
    voices: tuple[str, ...] = ("kal16", "awb", "rms", "slt")

    def missing(self) -> str | None:
        return need_binary("flite", "flite")

    def render(self, job: Job) -> Speech:
        rng = np.random.default_rng(job.seed)
        p = prosody_for(job.emotion)
        with tempfile.TemporaryDirectory(prefix="emostream-flite-") as tmp:
            wav = str(Path(tmp) / "out.wav")
            cmd = ["flite", "-voice", job.voice, "-t", job.text, "-o", wav, "-psdur"]
            if job.voice != "kal16":  # clustergen voices honour these features
                stretch = rng.uniform(0.92, 1.08) / p.rate
                f0 = (180 if job.voice == "slt" else 110) * 2 ** (p.pitch_semitones / 12)
                cmd += ["--setf", f"duration_stretch={stretch:.4f}"]
                cmd += ["--setf", f"int_f0_target_mean={f0 * rng.uniform(0.93, 1.07):.2f}"]
                cmd += ["--setf", f"int_f0_target_stddev={20 * p.range:.2f}"]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            audio, rate = read_wav(wav)
        ends: list[tuple[str, int]] = []
        for item in out.split():
            name, _, t = item.rpartition(":")
            phone = arpabet_to_phone(name)
            if not name or phone is None:
                continue
            ends.append((phone or SIL, round(float(t) * rate)))
        return speech_from_ends(audio * p.volume, rate, ends, job.text)
