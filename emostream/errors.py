"""Domain errors. Every user-facing failure is one of these: the CLI prints its message on one
line and exits with code 2 (``--debug`` shows the traceback). Raise them ``from`` their cause."""

from __future__ import annotations

from pathlib import Path


class EmostreamError(Exception):
    """Base class of all user-facing errors. ``str(err)`` is the one-line message."""

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class InputError(EmostreamError):
    """A file or argument the user gave cannot be used (missing, unreadable, malformed)."""


class AudioError(InputError):
    """Audio that cannot be decoded or is unusable (empty, NaN, silent where speech is needed)."""


class ImageError(InputError):
    """A portrait image that cannot be used (unreadable, no face, too small, profile view)."""


class MotionFileError(InputError):
    """A motion file (Live Link Face CSV, ARKit JSON) that is malformed."""


class CheckpointError(InputError):
    """A model checkpoint or config that is truncated, mismatched or from another model."""


class ConfigError(EmostreamError):
    """Inconsistent options or configuration values."""


class DependencyError(EmostreamError):
    """A system library, engine or device is missing; the message says how to install it."""


class DeviceError(EmostreamError):
    """A requested device (CUDA GPU, microphone, virtual camera) is not available."""
