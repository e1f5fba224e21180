"""Deprecated alias of :mod:`emostream.models.weights` (weight I/O moved next to the models, so
inference no longer imports the training package); it will be removed in the next release.
Importing it emits a ``DeprecationWarning``."""

from __future__ import annotations

import warnings

from emostream.models.weights import (
    FORMAT_VERSION,
    checkpoint_paths,
    load_into,
    load_state,
    read_checkpoint_json,
    save_checkpoint,
)

__all__ = [
    "FORMAT_VERSION",
    "checkpoint_paths",
    "load_into",
    "load_state",
    "read_checkpoint_json",
    "save_checkpoint",
]

warnings.warn(
    "emostream.training.checkpoint is deprecated; import emostream.models.weights instead",
    DeprecationWarning,
    stacklevel=2,
)
