"""Output framing: the whole photo (default for the commands) or the square face crop.

* ``Framing(crop="photo", max_side=N)``: the frame is the portrait's own picture, scaled so its
  long side is at most ``N`` (never enlarged) and both sides are even (the video encoders need
  4:2:0), with the animated face re-warped into it (emostream.render.pasteback).
* ``Framing(crop="face")``: the square crop the renderer works on (``size`` × ``size``).

Nothing is ever mirrored. Where a crop or a warp reaches past the photo, the picture is extended
(:func:`crop_extended`): next to the photo its edge pixels are drawn outwards, slightly blurred,
and they fade into a pull-push fill (:func:`pull_push_fill`: the known pixels' colours, averaged
over ever coarser pyramid levels, flow smoothly into the unknown area). Neither keeps any
structure of the photo beyond its edge row, so no copy of the chin, hat or shoulders can appear.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from emostream.config import CROPS, DEFAULT_CROP, MIN_MAX_SIDE, OFFLINE_MAX_SIDE
from emostream.errors import ConfigError

#: Past the photo: its edge is drawn outwards, blurred by this fraction of the frame's side, and
#: fades into the pull-push fill over ``EDGE_FADE`` of it.
EDGE_BLUR = 0.01
EDGE_FADE = 0.12


@dataclass(frozen=True)
class Framing:
    """How the renderer's face crop becomes an output frame."""

    crop: str = DEFAULT_CROP
    max_side: int = OFFLINE_MAX_SIDE

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise ConfigError(f"unknown crop {self.crop!r}; choose one of {', '.join(CROPS)}")
        if self.max_side < MIN_MAX_SIDE:
            raise ConfigError(f"--max-side must be >= {MIN_MAX_SIDE}, got {self.max_side}")

    @property
    def whole_photo(self) -> bool:
        return self.crop == "photo"


def output_shape(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(height, width) of a photo scaled to a long side <= ``max_side`` (never up), both even
    (rounded down: an odd side loses at most one pixel row or column of scale)."""
    k = min(1.0, max_side / max(height, width))
    return max(2, 2 * int(height * k / 2)), max(2, 2 * int(width * k / 2))


def resize_affine(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> np.ndarray:
    """float64[2, 3]: source px → destination px of ``cv2.resize`` (pixel centres aligned)."""
    sy, sx = dst_hw[0] / src_hw[0], dst_hw[1] / src_hw[1]
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float64[2, 3]: first ``b``, then ``a``."""
    return np.hstack([a[:, :2] @ b[:, :2], (a[:, :2] @ b[:, 2] + a[:, 2])[:, None]])


def pull_push_fill(premultiplied: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Fill where ``weight`` < 1 (float32[H, W, C] colour already multiplied by ``weight``,
    float32[H, W] in [0, 1]) from coarser averages of the known pixels. Known pixels (weight 1)
    are returned unchanged; the fill varies smoothly and holds no mirrored or repeated structure."""
    levels: list[tuple[np.ndarray, np.ndarray]] = [
        (premultiplied.astype(np.float32), weight.astype(np.float32))
    ]
    while min(levels[-1][1].shape[:2]) > 2:
        c, w = levels[-1]
        levels.append((cv2.pyrDown(c), cv2.pyrDown(w)))
    c, w = levels[-1]
    wc = w[..., None] if c.ndim == 3 else w
    total = np.maximum(wc.sum((0, 1)), 1e-6)
    colour = np.broadcast_to(c.sum((0, 1)) / total, c.shape).astype(np.float32)  # the mean colour
    for c, w in reversed(levels):
        up = cv2.resize(colour, (c.shape[1], c.shape[0]), interpolation=cv2.INTER_LINEAR)
        up = up.reshape(c.shape)
        wc = np.clip(w, 0.0, 1.0)
        wc = wc[..., None] if c.ndim == 3 else wc
        colour = c + (1.0 - wc) * up
    return colour


def crop_extended(img: np.ndarray, affine: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``cv2.warpAffine(img, affine, size)`` (size = (width, height)), with whatever lies outside
    the photo filled by :func:`pull_push_fill` instead of a reflected border."""
    flags = cv2.INTER_LINEAR if affine[0, 0] < 1 else cv2.INTER_CUBIC
    out = cv2.warpAffine(img, affine, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    inside = cv2.warpAffine(
        np.ones(img.shape[:2], np.float32), affine, size, flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )  # fmt: skip
    if inside.min() >= 1.0:
        return out
    # bicubic overshoots at the photo's edge: use the bilinear colours (exactly premultiplied) there
    lin = cv2.warpAffine(img, affine, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    filled = pull_push_fill(lin.astype(np.float32), inside)
    # next to the photo: its edge pixels drawn outwards (softened), fading into the smooth fill
    side = max(size)
    rep = cv2.warpAffine(img, affine, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    rep = cv2.GaussianBlur(rep.astype(np.float32), (0, 0), max(1.0, EDGE_BLUR * side))
    outside = (inside < 0.5).astype(np.uint8)
    dist = cv2.distanceTransform(outside, cv2.DIST_L2, 5)
    w = np.clip(dist / (EDGE_FADE * side), 0.0, 1.0)[..., None]
    ext = rep * (1.0 - w) + filled * w
    a = inside[..., None]
    blend = lin.astype(np.float32) + (1.0 - a) * ext  # lin is premultiplied by ``inside``
    edge = (inside < 1.0)[..., None]
    return np.where(edge, np.clip(blend + 0.5, 0, 255).astype(np.uint8), out)


def extend_photo(img: np.ndarray, pad: int) -> np.ndarray:
    """The photo with a ``pad``-pixel margin of smooth fill on every side."""
    if pad <= 0:
        return img
    h, w = img.shape[:2]
    m = np.array([[1.0, 0.0, pad], [0.0, 1.0, pad]])
    return crop_extended(img, m, (w + 2 * pad, h + 2 * pad))


def scaled_photo(img: np.ndarray, max_side: int) -> np.ndarray:
    """The photo at :func:`output_shape` (area-averaged when it shrinks; itself when it fits)."""
    h, w = output_shape(img.shape[0], img.shape[1], max_side)
    if (h, w) == img.shape[:2]:
        return img
    return np.asarray(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA))
