"""Deprecated alias of :mod:`emostream.media.audio` (moved there); it will be removed in the next
release. Importing it emits a ``DeprecationWarning``."""

from __future__ import annotations

import warnings

from emostream.media.audio import (
    MSG_CORRUPT,
    MSG_DIRECTORY,
    MSG_EMPTY,
    MSG_MISSING,
    MSG_NO_SAMPLES,
    MSG_NO_STREAM,
    MSG_NONFINITE,
    MSG_NOT_AUDIO,
    MSG_TOO_LONG,
    MSG_TRUNCATED,
    MSG_TRUNCATED_WAV,
    RESAMPLE_QUALITY,
    AudioInfo,
    StreamResampler,
    audio_info,
    check_file,
    iter_audio,
    load_audio,
    resample,
)

__all__ = [
    "MSG_CORRUPT",
    "MSG_DIRECTORY",
    "MSG_EMPTY",
    "MSG_MISSING",
    "MSG_NONFINITE",
    "MSG_NOT_AUDIO",
    "MSG_NO_SAMPLES",
    "MSG_NO_STREAM",
    "MSG_TOO_LONG",
    "MSG_TRUNCATED",
    "MSG_TRUNCATED_WAV",
    "RESAMPLE_QUALITY",
    "AudioInfo",
    "StreamResampler",
    "audio_info",
    "check_file",
    "iter_audio",
    "load_audio",
    "resample",
]

warnings.warn(
    "emostream.streaming.audio_io is deprecated; import emostream.media.audio instead",
    DeprecationWarning,
    stacklevel=2,
)
