"""What a portrait looks like, measured once per portrait, so that anything drawn into it matches.

``PhotoLook.measure(crop, landmarks)`` samples, from the crop itself:
- tones: the skin (cheeks), the lips (lower lip body), the eye whites (the brightest quarter of
  each eye opening) and the photo's black level (1st percentile of the face's lightness);
- sharpness: the blur σ (crop px) of the face's strongest edges, by re-blurring (the gradient of
  a Gaussian edge of σ drops by √(σ² + σr²) / σ when blurred again by σr; Zhuo & Sim 2011);
- grain: the robust σ (1.4826 × MAD) of the high-pass (``1 − G(GRAIN_SIGMA)``) lightness on the
  flat half of the photo's mouth (lips and any opening: what the interior sits among), and the
  same over the whole face (``skin_grain``).

Every colour derived from these is a per-channel-uniform scaling or mix of the samples, so a
greyscale photo (R = G = B) gives greyscale colours exactly and a sepia photo sepia ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from emostream.render import topology as tp

#: Extra blur of the re-blur sharpness estimate (crop px).
REBLUR_SIGMA = 1.0
#: Edge pixels: the top ``EDGE_PCT`` % of the face's gradient magnitudes.
EDGE_PCT = 97.0
#: Blur σ range the estimate is clipped to (crop px).
BLUR_RANGE = (0.3, 3.0)
#: High-pass scale of the grain measure (crop px).
GRAIN_SIGMA = 1.0
LUMA = np.array([0.299, 0.587, 0.114])


def luma(img: np.ndarray) -> np.ndarray:
    """float32[..., H, W]: Rec. 601 lightness of an RGB image."""
    return np.asarray(img.astype(np.float32) @ LUMA.astype(np.float32))


def _poly_mask(shape: tuple[int, ...], pts: np.ndarray) -> np.ndarray:
    m = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
    return m > 0


def blur_sigma(gray: np.ndarray, region: np.ndarray) -> float:
    """Blur σ (px) of the strongest edges of ``gray`` (float32[H, W]) inside ``region`` (bool)."""

    def grad(g: np.ndarray) -> np.ndarray:
        return np.asarray(np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)))

    g0 = grad(gray)
    g1 = grad(cv2.GaussianBlur(gray, (0, 0), REBLUR_SIGMA))
    vals = g0[region]
    if vals.size < 20:
        return float(np.mean(BLUR_RANGE))
    edge = region & (g0 >= np.percentile(vals, EDGE_PCT)) & (g0 > 1e-3)
    ratio = float(np.median(g0[edge] / np.maximum(g1[edge], 1e-6)))
    if ratio <= 1.0 + 1e-3:
        return BLUR_RANGE[1]
    # Sobel's own smoothing (≈ 0.7 px) is part of both gradients; take it out of the estimate
    s_total = REBLUR_SIGMA / np.sqrt(ratio**2 - 1.0)
    return float(np.clip(np.sqrt(max(s_total**2 - 0.5, 0.0)), *BLUR_RANGE))


def highpass(gray: np.ndarray) -> np.ndarray:
    return np.asarray(gray - cv2.GaussianBlur(gray, (0, 0), GRAIN_SIGMA))


def grain_sigma(gray: np.ndarray, region: np.ndarray) -> float:
    """Robust σ of the high-pass lightness over the flat half of ``region`` (bool[H, W])."""
    smooth = cv2.GaussianBlur(gray, (0, 0), 2.0)
    g = np.hypot(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))
    if region.sum() < 20:
        return 0.0
    flat = region & (g <= np.percentile(g[region], 50))
    hp = highpass(gray)[flat]
    return float(1.4826 * np.median(np.abs(hp - np.median(hp))))


@dataclass(frozen=True)
class PhotoLook:
    skin: np.ndarray  # float64[3] RGB, median of the cheeks
    lip: np.ndarray  # float64[3] RGB, median of the lower lip body
    white: np.ndarray  # float64[3] RGB, the eye whites (or the brightest skin)
    black: float  # lightness of the photo's darkest face pixels (1st percentile)
    blur: float  # σ (crop px) of the photo's edges
    grain: float  # σ (0-255) of the photo's high-pass grain on the flat half of its mouth
    skin_grain: float  # the same on the flat half of the whole face
    iod: float  # eye-corner distance (crop px)

    @classmethod
    def measure(cls, crop: np.ndarray, landmarks: np.ndarray) -> PhotoLook:
        lm = landmarks[:, :2].astype(np.float64)
        shape = crop.shape
        iod = float(np.linalg.norm(lm[tp.EYE_LEFT_CORNERS[1]] - lm[tp.EYE_RIGHT_CORNERS[0]]))
        face = _poly_mask(shape, lm[list(tp.FACE_OVAL)])
        gray = luma(crop)
        lip_mask = _poly_mask(shape, lm[list(tp.LIP_LOWER_OUTER + tp.LIP_LOWER_INNER[::-1])])
        px = crop.reshape(-1, 3).astype(np.float64)
        lip = np.median(px[lip_mask.ravel()], 0) if lip_mask.any() else np.median(px[face.ravel()], 0)
        cheeks = np.zeros(shape[:2], bool)
        r = max(2, round(0.08 * iod))
        for c in (tp.CHEEK_LEFT, tp.CHEEK_RIGHT):
            x, y = np.round(lm[c]).astype(int)
            cheeks[max(y - r, 0) : y + r, max(x - r, 0) : x + r] = True
        skin = np.median(px[(cheeks & face).ravel()], 0) if (cheeks & face).any() else lip
        eyes = np.zeros(shape[:2], bool)
        for up, lo in ((tp.EYE_RIGHT_UPPER, tp.EYE_RIGHT_LOWER), (tp.EYE_LEFT_UPPER, tp.EYE_LEFT_LOWER)):
            eyes |= _poly_mask(shape, np.concatenate([lm[list(up)], lm[list(lo)][::-1]]))
        white = skin * (255.0 / max(float(skin.max()), 1.0)) * 0.85
        if eyes.sum() >= 12:
            ev = gray[eyes]
            bright = eyes & (gray >= np.percentile(ev, 75))
            white = np.median(px[bright.ravel()], 0)
        black = float(np.percentile(gray[face], 1.0)) if face.any() else 0.0
        # the grain of the photo's own mouth (the lips and any opening), which the interior joins
        mouth = _poly_mask(shape, lm[list(tp.LIP_UPPER_OUTER + tp.LIP_LOWER_OUTER[::-1])])
        return cls(
            skin=skin, lip=lip, white=white, black=black, blur=blur_sigma(gray, face),
            grain=grain_sigma(gray, mouth if mouth.sum() >= 50 else face), skin_grain=grain_sigma(gray, face),
            iod=iod,
        )  # fmt: skip

    def scaled(self, colour: np.ndarray, lightness: float) -> np.ndarray:
        """float64[3]: ``colour`` scaled (same factor on every channel, so its hue and chroma
        direction are kept) to the given lightness."""
        lum = float(colour @ LUMA)
        return np.asarray(colour * (lightness / max(lum, 1e-6)))
