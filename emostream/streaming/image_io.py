"""Deprecated alias of :mod:`emostream.media.image` (moved there); it will be removed in the next
release. Importing it emits a ``DeprecationWarning``."""

from __future__ import annotations

import warnings

from emostream.media.image import (
    MSG_DIRECTORY,
    MSG_EMPTY,
    MSG_MISSING,
    MSG_NOT_IMAGE,
    MSG_TOO_LARGE,
    MSG_TRUNCATED,
    ImageInfo,
    describe_image,
    load_image_rgb,
)

__all__ = [
    "MSG_DIRECTORY",
    "MSG_EMPTY",
    "MSG_MISSING",
    "MSG_NOT_IMAGE",
    "MSG_TOO_LARGE",
    "MSG_TRUNCATED",
    "ImageInfo",
    "describe_image",
    "load_image_rgb",
]

warnings.warn(
    "emostream.streaming.image_io is deprecated; import emostream.media.image instead",
    DeprecationWarning,
    stacklevel=2,
)
