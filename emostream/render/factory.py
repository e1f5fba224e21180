"""Choose a renderer once: ``create_renderer("analytic" | "fomm", portrait, ...)``.

``portrait`` may be a prepared :class:`~emostream.render.portrait.Portrait`, an RGB uint8 image,
or a path (``None`` = the default astronaut portrait).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emostream.errors import ConfigError, DependencyError
from emostream.render.analytic import AnalyticRenderer
from emostream.render.base import Renderer
from emostream.render.framing import Framing
from emostream.render.portrait import Portrait, load_image, prepare_portrait

RENDERERS = ("analytic", "fomm")


def as_portrait(portrait: Portrait | np.ndarray | str | Path | None, size: int) -> Portrait:
    if isinstance(portrait, Portrait):
        return portrait if portrait.size == size else prepare_portrait(portrait.image, size)
    if isinstance(portrait, np.ndarray):
        return prepare_portrait(portrait, size)
    return prepare_portrait(load_image(portrait), size, path=portrait)


def create_renderer(
    kind: str,
    portrait: Portrait | np.ndarray | str | Path | None,
    *,
    size: int = 256,
    device: str = "cpu",
    framing: Framing | None = None,
    checkpoint: str | Path | None = None,
    config: str | Path | None = None,
) -> Renderer:
    """The renderer ``kind`` for one portrait. The analytic renderer runs on the CPU only.
    ``framing`` None (or crop="face"): frames are the square face crop; crop="photo": the whole
    photo with the face pasted back (emostream.render.framing)."""
    if kind not in RENDERERS:
        raise ConfigError(f"unknown renderer {kind!r}; choose one of {', '.join(RENDERERS)}")
    prepared = as_portrait(portrait, size)
    if kind == "analytic":
        if device not in ("cpu", "cuda"):
            raise ConfigError(f"unknown device {device!r}; choose cpu or cuda")
        # the analytic warp is CPU code by design; --device only affects neural stages
        return AnalyticRenderer(prepared, framing=framing)
    if checkpoint is None:
        raise ConfigError(
            "the fomm renderer needs --checkpoint (a FOMM checkpoint; train one with `emostream train fomm`)"
        )
    # deferred: torch (heavy), only for the neural renderer
    try:
        from emostream.render.fomm_renderer import FommRenderer
    except ImportError as e:
        raise DependencyError(f"the fomm renderer is not available in this installation ({e})") from e
    return FommRenderer.from_checkpoint(prepared, checkpoint, config, device=device, framing=framing)
