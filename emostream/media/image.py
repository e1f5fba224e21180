"""Portrait images: read any Pillow-readable file into uint8[H, W, 3] RGB.

Conversions (each logged, none silent): EXIF orientation applied; greyscale (L, I;16, I, F,
1) replicated to RGB, 16-bit/float scaled to 8 bits; palette expanded; CMYK and YCbCr/LAB
converted by Pillow; an alpha channel composited on white (a warning, because transparent
regions become white background). ``describe_image`` reports what the loader would do.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from emostream.config import MAX_IMAGE_PIXELS
from emostream.errors import ImageError

log = logging.getLogger(__name__)

MSG_MISSING = "file not found"
MSG_DIRECTORY = "is a directory, not an image"
MSG_EMPTY = "file is empty (0 bytes)"
MSG_NOT_IMAGE = "not an image file (Pillow cannot identify it)"
MSG_TRUNCATED = "truncated or corrupt image data"
MSG_TOO_LARGE = "image is {w}×{h} = {n:,} pixels; the limit is {limit:,} pixels"

_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_HIGH_BIT = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


@dataclass(frozen=True)
class ImageInfo:
    path: str
    width: int
    height: int
    mode: str  # Pillow mode as stored: RGB, RGBA, L, LA, P, CMYK, I;16, ...
    format: str  # PNG, JPEG, ...
    has_alpha: bool
    conversion: str  # what load_image_rgb does to it ("none" for plain RGB)


def _check(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise ImageError(MSG_MISSING, p)
    if p.is_dir():
        raise ImageError(MSG_DIRECTORY, p)
    if p.stat().st_size == 0:
        raise ImageError(MSG_EMPTY, p)
    return p


def _open(p: Path, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p)
    except UnidentifiedImageError as e:
        raise ImageError(MSG_NOT_IMAGE, p) from e
    except Image.DecompressionBombError as e:  # Pillow's own cap, checked from the header too
        found = re.search(r"\((\d+) pixels\)", str(e))
        n = f"{int(found.group(1)):,}" if found else "too many"
        raise ImageError(f"image has {n} pixels; the limit is {max_pixels:,} pixels", p) from e
    except OSError as e:
        raise ImageError(MSG_TRUNCATED, p) from e
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise ImageError(MSG_TOO_LARGE.format(w=w, h=h, n=w * h, limit=max_pixels), p)
    return im


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in _ALPHA_MODES or (im.mode == "P" and "transparency" in im.info)


def _conversion(im: Image.Image) -> str:
    mode = im.mode
    if mode == "RGB":
        return "none"
    if _has_alpha(im):
        return f"{mode} → RGB, alpha composited on white"
    if mode in ("L", "1"):
        return f"greyscale {mode} → RGB (replicated)"
    if mode in _HIGH_BIT:
        return f"greyscale {mode} → 8-bit → RGB (replicated)"
    if mode == "P":
        return "palette → RGB"
    return f"{mode} → RGB"


def describe_image(path: str | Path, *, max_pixels: int = MAX_IMAGE_PIXELS) -> ImageInfo:
    """Size, mode and the conversion the loader would apply (header only, nothing decoded)."""
    p = _check(path)
    im = _open(p, max_pixels)
    with im:
        return ImageInfo(
            path=str(p), width=im.width, height=im.height, mode=im.mode, format=im.format or "",
            has_alpha=_has_alpha(im), conversion=_conversion(im),
        )  # fmt: skip


def load_image_rgb(path: str | Path, *, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode an image into uint8[H, W, 3] RGB (EXIF orientation applied)."""
    p = _check(path)
    im = _open(p, max_pixels)
    with im:
        try:
            im.load()
            im2 = ImageOps.exif_transpose(im) or im
        except (OSError, SyntaxError, ValueError) as e:
            raise ImageError(MSG_TRUNCATED, p) from e
        conv = _conversion(im2)
        if _has_alpha(im2):
            log.warning("%s: %s (transparent areas become white)", p, conv)
            rgba = im2.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            out = Image.alpha_composite(white, rgba).convert("RGB")
        elif im2.mode in _HIGH_BIT:
            log.info("%s: %s", p, conv)
            a = np.asarray(im2, dtype=np.float64)
            # 16-bit data → /65535; float data in [0, 1] → ×255; anything else is 8-bit range.
            if im2.mode.startswith("I;16") or (im2.mode == "I" and a.max() > 255):
                scale = 255.0 / 65535.0
            elif im2.mode == "F" and a.max() <= 1.0:
                scale = 255.0
            else:
                scale = 1.0
            g = np.clip(np.round(a * scale), 0, 255).astype(np.uint8)
            return np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2))
        else:
            if conv != "none":
                log.info("%s: %s", p, conv)
            out = im2.convert("RGB")
        return np.ascontiguousarray(np.asarray(out, dtype=np.uint8))
