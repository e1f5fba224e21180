"""The renderer interface: chosen once (``create_renderer``), then called per batch of frames.

Implementations: ``analytic`` (CPU warp, emostream.render.analytic) and ``fomm`` (neural,
emostream.render.fomm_renderer). Both take motion vectors (see emostream.arkit) and return
RGB uint8 frames of the prepared portrait crop (``size`` x ``size``) or, with
``Framing(crop="photo")`` (emostream.render.framing), of the whole photo, long side capped.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Renderer(Protocol):
    #: Output frame height and width in pixels.
    height: int
    width: int

    def render(self, motion: np.ndarray) -> np.ndarray:
        """float32[B, MOTION_DIM] -> uint8[B, height, width, 3] (RGB)."""
        ...
