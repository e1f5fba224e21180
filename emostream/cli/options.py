"""Renderer and output options shared by the commands that make frames (one definition each).

``render``, ``demo``, ``stream``, ``camera`` and ``serve`` take ``--crop`` and ``--max-side``
from here (the defaults live in emostream.config); ``render`` and ``serve`` also declare the
renderer flags with these defaults (``image: Path | None = options.IMAGE``) and check them all
with ``RendererOptions(...).check()`` in milliseconds, before any model loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from emostream.config import CROPS, DEFAULT_CROP, LIVE_MAX_SIDE, OFFLINE_MAX_SIDE
from emostream.errors import CheckpointError, ConfigError, ImageError

if TYPE_CHECKING:
    from emostream.render.framing import Framing

#: Face working resolutions the renderers support (the face crop's side).
SIZES = (256, 512)
RENDERERS = ("analytic", "fomm")
DEVICES = ("cpu", "cuda")

IMAGE: Any = typer.Option(None, "--image", help="Portrait photo (default: the bundled astronaut).")
RENDERER: Any = typer.Option("analytic", "--renderer", help="Renderer: analytic (CPU warp) or fomm (neural).")
SIZE: Any = typer.Option(256, "--size", help="Face working resolution (crop side): 256 or 512.")
DEVICE: Any = typer.Option("cpu", "--device", help="cpu or cuda (neural stages).")
CHECKPOINT: Any = typer.Option(None, "--checkpoint", help="FOMM checkpoint (--renderer fomm).")
CONFIG: Any = typer.Option(None, "--config", help="FOMM YAML config (--renderer fomm).")


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


@dataclass(frozen=True)
class RendererOptions:
    image: Path | None = None
    renderer: str = "analytic"
    size: int = 256
    device: str = "cpu"
    checkpoint: Path | None = None
    config: Path | None = None
    crop: str = DEFAULT_CROP
    max_side: int = LIVE_MAX_SIDE

    def check(self) -> RendererOptions:
        """ConfigError/ImageError/CheckpointError for a bad option, without loading anything.
        Returns self, so ``opts = RendererOptions(...).check()`` reads as one step."""
        if self.renderer not in RENDERERS:
            raise ConfigError(f"unknown --renderer {self.renderer!r}; choose one of {', '.join(RENDERERS)}")
        if self.size not in SIZES:
            raise ConfigError(f"--size must be {' or '.join(map(str, SIZES))}, got {self.size}")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ConfigError(f"unknown --device {self.device!r}; choose cpu or cuda")
        framing_from(self.crop, self.max_side)
        if self.image is not None and str(self.image) != "astronaut":
            if self.image.is_dir():
                raise ImageError("is a directory, not a portrait image", self.image)
            if not self.image.is_file():
                raise ImageError("portrait image not found", self.image)
        if self.renderer == "fomm":
            if self.checkpoint is None:
                raise ConfigError(
                    "the fomm renderer needs --checkpoint (a FOMM checkpoint; train one with "
                    "`emostream train fomm`)"
                )
            if not self.checkpoint.is_file():
                raise CheckpointError("checkpoint file not found", self.checkpoint)
            if self.config is not None and not self.config.is_file():
                raise CheckpointError("FOMM config not found", self.config)
        elif self.checkpoint is not None or self.config is not None:
            raise ConfigError("--checkpoint and --config only apply with --renderer fomm")
        return self

    def check_portrait(self) -> None:
        """Load the image and find its face (ImageError if unusable): a second or so, still
        before any model loads. The landmarks are cached, so the engine's own preparation of
        the same portrait later costs nothing."""
        # deferred: mediapipe (face detection), only when a portrait is checked
        from emostream.render.portrait import load_image, prepare_portrait

        prepare_portrait(load_image(self.image), self.size, path=self.image)

    def framing(self) -> Framing:
        return framing_from(self.crop, self.max_side)

    def engine_kwargs(self) -> dict[str, Any]:
        """The matching ``EngineConfig`` fields."""
        return {
            "renderer": self.renderer,
            "size": self.size,
            "device": self.device,
            "framing": self.framing(),
            "renderer_checkpoint": None if self.checkpoint is None else str(self.checkpoint),
            "renderer_config": None if self.config is None else str(self.config),
        }
