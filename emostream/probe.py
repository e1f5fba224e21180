"""Deprecated alias of :mod:`emostream.apps.probe` (moved there); it will be removed in the next
release. Importing it emits a ``DeprecationWarning``."""

from __future__ import annotations

import warnings

from emostream.apps.probe import (
    CSV_SUFFIXES,
    PROBE_VAD_SECONDS,
    format_probe,
    probe,
    probe_audio,
    probe_image,
    probe_livelink,
)

__all__ = [
    "CSV_SUFFIXES",
    "PROBE_VAD_SECONDS",
    "format_probe",
    "probe",
    "probe_audio",
    "probe_image",
    "probe_livelink",
]

warnings.warn(
    "emostream.probe is deprecated; import emostream.apps.probe instead",
    DeprecationWarning,
    stacklevel=2,
)
