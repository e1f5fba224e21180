"""festival with the HTS voice ``cmu_us_slt_arctic_hts``: segment end times via utt.save.segs."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from emostream.training.engines.base import Job, Speech, need_binary, prosody_for, read_wav, speech_from_ends
from emostream.training.phones import arpabet_to_phone

_VOICE_DIR = Path("/usr/share/festival/voices/us/cmu_us_slt_arctic_hts")


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", " ").replace('"', " ") + '"'


class FestivalEngine:
    name = "festival"
    licence = "festival: X11-style; cmu_us_slt_arctic_hts voice: BSD-style (CMU ARCTIC)"
    voices: tuple[str, ...] = ("cmu_us_slt_arctic_hts",)

    def missing(self) -> str | None:
        why = need_binary("festival", "festival")
        if why is None and not _VOICE_DIR.is_dir():
            why = f"festival voice not found at {_VOICE_DIR}; install Debian `festvox-us-slt-hts`"
        return why

    def render(self, job: Job) -> Speech:
        rng = np.random.default_rng(job.seed)
        p = prosody_for(job.emotion)
        stretch = rng.uniform(0.93, 1.07) / p.rate
        with tempfile.TemporaryDirectory(prefix="emostream-festival-") as tmp:
            wav, segs, scm = (str(Path(tmp) / n) for n in ("out.wav", "out.segs", "run.scm"))
            Path(scm).write_text(
                f"(voice_{job.voice})\n"
                f"(Parameter.set 'Duration_Stretch {stretch:.4f})\n"
                f"(set! utt (Utterance Text {_scheme_string(job.text)}))\n"
                "(utt.synth utt)\n"
                f"(utt.save.wave utt {_scheme_string(wav)} 'riff)\n"
                f"(utt.save.segs utt {_scheme_string(segs)})\n",
                encoding="utf-8",
            )
            subprocess.run(["festival", "-b", scm], capture_output=True, check=True, timeout=120)
            audio, rate = read_wav(wav)
            lines = Path(segs).read_text(encoding="utf-8").splitlines()
        ends: list[tuple[str, int]] = []
        for line in lines:
            parts = line.split()
            if len(parts) != 3:
                continue
            phone = arpabet_to_phone(parts[2])
            if phone is not None:
                ends.append((phone, round(float(parts[0]) * rate)))
        return speech_from_ends(audio * p.volume, rate, ends, job.text)
