"""Deprecated alias of :mod:`emostream.apps.render_video` (offline rendering to mp4 is an
application of the engine and a sink, so it moved up to the apps layer); it will be removed in the
next release. Importing it emits a ``DeprecationWarning``. The one import of a higher layer from
``emostream.render``, excused by name in ``[tool.importlinter]``."""

from __future__ import annotations

import warnings

from emostream.apps.render_video import BATCH, motion_from_audio, render_to_mp4

__all__ = ["BATCH", "motion_from_audio", "render_to_mp4"]

warnings.warn(
    "emostream.render.video is deprecated; import emostream.apps.render_video instead",
    DeprecationWarning,
    stacklevel=2,
)
