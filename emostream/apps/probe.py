"""``probe``: describe an input file: audio, portrait image or Live Link Face CSV.

Audio statistics (duration, peak, RMS) are computed by *streaming* the decoded 16 kHz mono
signal, so memory stays constant for files of any length; the speech fraction runs Silero
VAD over the first ``vad_seconds`` (default 10 minutes) and says so in ``speech_fraction_span_s``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from emostream.config import DEFAULT_FPS, SAMPLE_RATE
from emostream.engine.vad import SPEECH_THRESHOLD, SileroVAD
from emostream.errors import InputError
from emostream.livelink import read_livelink_csv
from emostream.media.audio import MSG_DIRECTORY, MSG_EMPTY, MSG_MISSING, audio_info, iter_audio
from emostream.media.image import describe_image, load_image_rgb

#: Seconds of audio the probe runs VAD over (VAD costs ~0.05 s per minute of audio).
PROBE_VAD_SECONDS = 600.0
CSV_SUFFIXES = (".csv",)


def _db(x: float) -> float | None:
    return round(20.0 * math.log10(x), 2) if x > 0 else None


def probe_audio(path: Path, *, vad_seconds: float = PROBE_VAD_SECONDS) -> dict[str, Any]:
    info = audio_info(path)
    vad = SileroVAD(DEFAULT_FPS)
    vad_limit = int(vad_seconds * SAMPLE_RATE)
    n = 0
    peak = 0.0
    sum_sq = 0.0
    probs: list[np.ndarray] = []
    for chunk in iter_audio(path, SAMPLE_RATE):
        peak = max(peak, float(np.abs(chunk).max()))
        sum_sq += float(np.square(chunk, dtype=np.float64).sum())  # not np.dot: BLAS threads stall under load
        if n < vad_limit:
            probs.append(vad.push(chunk[: vad_limit - n]))
        n += chunk.size
    probs.append(vad.flush())
    p = np.concatenate(probs)
    rms = math.sqrt(sum_sq / n)
    return {
        "kind": "audio",
        "path": str(path),
        "container": info.container,
        "codec": info.codec,
        "sample_format": info.sample_format,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "duration_s": round(n / SAMPLE_RATE, 4),
        "peak": round(peak, 5),
        "peak_dbfs": _db(peak),
        "rms": round(rms, 5),
        "rms_dbfs": _db(rms),
        "speech_fraction": round(float(np.mean(p > SPEECH_THRESHOLD)), 4),
        "speech_fraction_span_s": round(min(n, vad_limit) / SAMPLE_RATE, 4),
    }


def probe_image(path: Path) -> dict[str, Any]:
    info = describe_image(path)
    rgb = load_image_rgb(path)  # proves the pixels decode, not only the header
    return {
        "kind": "image",
        "path": str(path),
        "format": info.format,
        "width": info.width,
        "height": info.height,
        "mode": info.mode,
        "has_alpha": info.has_alpha,
        "conversion": info.conversion,
        "loads_as": f"RGB {rgb.shape[1]}x{rgb.shape[0]}",
    }


def probe_livelink(path: Path) -> dict[str, Any]:
    clip = read_livelink_csv(path, fps=DEFAULT_FPS)
    return {
        "kind": "livelink_csv",
        "path": str(path),
        "frames": clip.source_frames,
        "fps": round(clip.source_fps, 3),
        "timecode_rate": clip.timecode_rate,
        "duration_s": round((clip.source_frames - 1) / clip.source_fps, 3) if clip.source_frames > 1 else 0.0,
        "first_timecode": clip.timecodes[0],
        "last_timecode": clip.timecodes[-1],
        "columns": len(clip.columns),
        "column_names": list(clip.columns),
        f"frames_at_{DEFAULT_FPS}fps": len(clip.motion),
    }


def _is_image(path: Path) -> bool:
    try:
        with Image.open(path):
            return True
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        return False


def probe(path: str | Path, *, vad_seconds: float = PROBE_VAD_SECONDS) -> dict[str, Any]:
    """Describe ``path``; raises an :class:`~emostream.errors.InputError` subclass when the file
    cannot be used. CSV files are read as Live Link Face recordings; files Pillow identifies as
    images are images; everything else is decoded as audio."""
    p = Path(path)
    if not p.exists():
        raise InputError(MSG_MISSING, p)
    if p.is_dir():
        raise InputError(MSG_DIRECTORY.replace("an audio file", "a file"), p)
    if p.stat().st_size == 0:
        raise InputError(MSG_EMPTY, p)
    if p.suffix.lower() in CSV_SUFFIXES:
        return probe_livelink(p)
    if _is_image(p):
        return probe_image(p)
    return probe_audio(p, vad_seconds=vad_seconds)


def format_probe(result: dict[str, Any]) -> str:
    """Human-readable summary, one ``key: value`` per line."""
    lines = [f"{result['path']}: {result['kind'].replace('_', ' ')}"]
    for k, v in result.items():
        if k in ("kind", "path", "column_names"):
            continue
        lines.append(f"  {k:<24} {'-' if v is None else v}")
    return "\n".join(lines)
