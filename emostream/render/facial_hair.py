"""A moustache or beard over the lips stays in front of the mouth's interior.

The warp already carries hair with the lip and jaw under it. What it cannot do is let hair that
hangs over the lip edge hide the opening behind it: the interior would be cut straight along the
inner-lip line through the hair. Per portrait, ``LipHair.detect`` measures, column by column along
the mouth, how hairy the band between the upper lip and the nose is (and between the lower lip and
the chin): hair is fine texture well above the photo's own grain (``PhotoLook.skin_grain``), or a band
much darker than the skin (a dark moustache in a soft photo). Where a band is hairy, each frame a
fringe hangs from the driven lip edge into the opening: strands of fixed, per-column lengths
(up to ``HANG`` × the eye-corner distance, a fixed pattern smoothed along the lip), returned as
a cover map that keeps the warped hair in front of the interior.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from emostream.render import topology as tp
from emostream.render.photo_look import LUMA, PhotoLook, highpass, luma

#: Hair: local texture energy (÷ the photo's grain) from ``TEXTURE[0]`` (none) to ``[1]`` (full), or
#: lightness (÷ the skin's) from ``DARK[0]`` (none) down to ``DARK[1]`` (full).
TEXTURE = (1.4, 2.4)
DARK = (0.7, 0.45)
GRAIN_FLOOR = 0.5
#: A band counts as hair only where its mean density over the middle half of the mouth is above this.
PRESENT = 0.4
#: Where the band between a lip and the nose (the chin) is sampled (fractions of the way).
BAND = (0.25, 0.45, 0.65)
#: Longest strands hanging over the opening from the upper / lower lip (× eye-corner distance).
HANG = (0.06, 0.025)
#: Samples along the mouth.
N_ALONG = 48
STRAND_SEED = 7


def texture_energy(gray: np.ndarray, iod: float) -> np.ndarray:
    """float32[H, W]: local mean |high-pass| over a window of ~4 % of the eye distance."""
    k = max(3, int(0.04 * iod) | 1)
    return np.asarray(cv2.blur(np.abs(highpass(gray)), (k, k)))


@dataclass(frozen=True)
class LipHair:
    upper: np.ndarray  # float32[N_ALONG]: hair density over the upper lip edge, corner to corner
    lower: np.ndarray  # float32[N_ALONG]: the same under the lower lip edge
    strands: np.ndarray  # float32[2, N_ALONG]: relative strand length (0.4 … 1), fixed
    iod: float

    @property
    def present(self) -> bool:
        return bool(max(self.upper.max(), self.lower.max()) > 0.0)

    @classmethod
    def detect(cls, crop: np.ndarray, landmarks: np.ndarray, look: PhotoLook) -> LipHair:
        lm = landmarks[:, :2].astype(np.float64)
        gray = luma(crop)
        # hair is texture well above the photo's grain, or a band much darker than the skin
        energy = texture_energy(gray, look.iod) / max(look.skin_grain, GRAIN_FLOOR)
        shade = cv2.blur(gray, (5, 5)) / max(float(look.skin @ LUMA), 1.0)
        hairy = np.maximum(
            np.clip((energy - TEXTURE[0]) / (TEXTURE[1] - TEXTURE[0]), 0, 1),
            np.clip((DARK[0] - shade) / (DARK[0] - DARK[1]), 0, 1),
        )
        t = np.linspace(0, 1, N_ALONG)
        out = []
        for contour, towards in ((tp.LIP_UPPER_OUTER, tp.NOSE_BASE), (tp.LIP_LOWER_OUTER, tp.CHIN)):
            c = lm[list(contour)]
            pts = np.stack([np.interp(t * (len(c) - 1), np.arange(len(c)), c[:, k]) for k in (0, 1)], -1)
            vals = []
            for frac in BAND:  # across the band between the lip and the nose (the chin)
                ys = np.clip(
                    np.round(pts[:, 1] + frac * (lm[towards, 1] - pts[:, 1])).astype(int),
                    0,
                    crop.shape[0] - 1,
                )
                xs = np.clip(np.round(pts[:, 0]).astype(int), 0, crop.shape[1] - 1)
                vals.append(hairy[ys, xs])
            dens = np.median(np.stack(vals), 0) * np.sin(np.pi * t) ** 0.5  # thinning to the corners
            if dens[N_ALONG // 4 : -N_ALONG // 4].mean() < PRESENT:  # a shadow or stubble, not a moustache
                dens = np.zeros_like(dens)
            out.append(cv2.blur(dens.astype(np.float32)[None], (7, 1), borderType=cv2.BORDER_REPLICATE)[0])
        rng = np.random.default_rng(STRAND_SEED)
        strands = cv2.blur(rng.uniform(0.4, 1.0, (2, N_ALONG)).astype(np.float32), (3, 1))
        return cls(upper=out[0], lower=out[1], strands=strands, iod=look.iod)

    def cover(self, upper_inner: np.ndarray, lower_inner: np.ndarray, w: int, h: int) -> np.ndarray | None:
        """float32[h, w] in [0, 1] (frame-box px; contours float[11, 2] in the same px): the hair
        hanging over the opening from both lips; None where the lips carry no hair."""
        if not self.present:
            return None
        xs = np.arange(w, dtype=np.float64)
        ys = np.arange(h, dtype=np.float64)[:, None]
        cover = np.zeros((h, w), np.float32)
        for k, (contour, dens, sign) in enumerate(
            ((upper_inner, self.upper, 1.0), (lower_inner, self.lower, -1.0))
        ):
            if dens.max() <= 0.0:
                continue
            o = np.argsort(contour[:, 0])
            y_edge = np.interp(xs, contour[o, 0], contour[o, 1])
            left, right = contour[o[0], 0], contour[o[-1], 0]
            t = np.clip((xs - left) / max(right - left, 1.0), 0, 1) * (N_ALONG - 1)
            d = np.interp(t, np.arange(N_ALONG), dens)
            length = np.interp(t, np.arange(N_ALONG), self.strands[k]) * HANG[k] * self.iod * d
            into = sign * (ys - y_edge[None, :])  # px into the opening from this lip's edge
            hang = np.clip(1.0 - into / np.maximum(length[None, :], 1e-3), 0, 1) * (into >= -1.0)
            cover = np.maximum(cover, (d[None, :] * np.sqrt(hang)).astype(np.float32))
        return cover
