"""Renderer and output options shared by the commands that make frames (one definition each).

``render``, ``demo``, ``stream``, ``camera`` and ``serve`` take ``--crop`` and ``--max-side``
from here; the defaults live in emostream.config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from emostream.config import CROPS, DEFAULT_CROP, LIVE_MAX_SIDE, OFFLINE_MAX_SIDE

if TYPE_CHECKING:
    from emostream.render.framing import Framing


def crop_option() -> Any:
    return typer.Option(
        DEFAULT_CROP,
        "--crop",
        help=f"Output framing: {' or '.join(CROPS)}. photo: the whole portrait with the face "
        "animated in it (its aspect, long side capped by --max-side); face: the square face crop "
        "(--size px).",
    )


def max_side_option(live: bool) -> Any:
    default = LIVE_MAX_SIDE if live else OFFLINE_MAX_SIDE
    return typer.Option(
        default,
        "--max-side",
        help="With --crop photo: cap on the output's long side in px (never enlarged, sides made even).",
    )


def framing_from(crop: str, max_side: int) -> Framing:
    """The Framing the options ask for (ConfigError on a bad value)."""
    # deferred: OpenCV (heavy), loaded only by the commands that render
    from emostream.render.framing import Framing

    return Framing(crop=crop, max_side=max_side)
