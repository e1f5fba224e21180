"""Does the rendered mouth interior belong to the photo? Colour, detail and stability figures.

Measured at 512² on frames with the jaw open (jawOpen 0.5, 0.7, 0.85, 1.0), over the *interior*:
the pixels inside the driven inner-lip polygon, eroded by ``EDGE_PX`` so the lips' own edge is
not counted. Figures (JSON, ``eval render``):

- ``mouth_chroma``: median CIELAB chroma C*ab of the interior;
- ``skin_chroma``: the photo's own tone, median C*ab of its skin (discs on both cheeks and the
  forehead, ``SKIN_DISC`` × the eye-corner distance across);
- ``mouth_hue_diff_deg``: angle between the interior's and the skin's mean (a*, b*) directions
  (chroma-weighted), 0 when either is grey;
- ``photo_tone_spread`` / ``mouth_tone_dist``: the photo's *tone curve* is the median (a*, b*)
  of its face (inside the face oval) per L* band (``TONE_BIN`` wide, interpolated between bands):
  for a greyscale photo it is (0, 0) at every lightness, for a sepia print a warm line that grows
  with lightness. ``photo_tone_spread`` is the mean distance (in a*b*) of the face's own pixels
  from that curve (small: the photo is monochrome), ``mouth_tone_dist`` the same for the interior's
  pixels, each compared with the curve at its own lightness;
- ``mouth_colour_ok``: 1.0 or 0.0. On a monochrome photo (``photo_tone_spread`` <
  ``MONO_SPREAD``) the interior must lie on the photo's tone curve (``mouth_tone_dist`` <
  ``MONO_SPREAD`` + the photo's spread): grey teeth in a grey photo, sepia in a sepia one. On a
  colour photo it must lie within ``MAX_HUE_DIFF_DEG`` of the skin's hue and carry no more than
  ``MAX_CHROMA_RATIO`` × its chroma (+ ``GREY_CHROMA``);
- ``interior_sharpness_rel`` / ``interior_noise_rel``: the interior's sharpness (90th percentile
  of the luminance gradient magnitude, Sobel) and noise (1.4826 × the median absolute deviation of
  the luminance minus its Gaussian blur, σ = 1 px), each ÷ the same figure on the face around the
  mouth (a band ``RING`` × the eye-corner distance wide outside the outer lip contour), and that
  ratio ÷ the same ratio in the photo (its mouth: the outer-lip polygon, lips and any visible
  interior, against the same band). 1.0 = the interior is as sharp / grainy relative to its
  surroundings as the photo's mouth is; ``interior_detail_ok`` is 1.0 when both lie in
  ``DETAIL_BAND`` (0.7–1.4), else 0.0;
- ``interior_temporal_mad``: mean |Δ| (0–255) of the interior between consecutive frames while
  the jaw holds still (jawOpen 0.7, ``HOLD_FRAMES`` frames): 0 for a static drawing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from emostream.arkit import motion_vector
from emostream.render import topology as tp
from emostream.render.analytic import AnalyticRenderer

JAW_LEVELS = (0.5, 0.7, 0.85, 1.0)
HOLD_JAW = 0.7
HOLD_FRAMES = 6
EDGE_PX = 2
SKIN_DISC = 0.18
RING = 0.25
GREY_CHROMA = 4.0
TONE_BIN = 4.0
MONO_SPREAD = 1.5
MAX_HUE_DIFF_DEG = 35.0
MAX_CHROMA_RATIO = 2.0
DETAIL_BAND = (0.7, 1.4)
_UPPER_INNER = np.array(tp.LIP_UPPER_INNER)
_LOWER_INNER = np.array(tp.LIP_LOWER_INNER)
_OUTER = np.array(tp.LIP_UPPER_OUTER + tp.LIP_LOWER_OUTER[::-1][1:-1])


@dataclass(frozen=True)
class MouthMetrics:
    mouth_chroma: float
    skin_chroma: float
    mouth_hue_diff_deg: float
    photo_tone_spread: float
    mouth_tone_dist: float
    mouth_colour_ok: float
    interior_sharpness_rel: float
    interior_noise_rel: float
    interior_detail_ok: float
    interior_temporal_mad: float

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in asdict(self).items()}


def lab(img: np.ndarray) -> np.ndarray:
    """float32[H, W, 3] CIELAB (L* 0–100, a*, b*) of an RGB uint8 image."""
    return np.asarray(cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab))


def luminance(img: np.ndarray) -> np.ndarray:
    return np.asarray(img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))


def polygon_mask(shape: tuple[int, ...], pts: np.ndarray) -> np.ndarray:
    m = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(m, [np.round(pts * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return m


def _iod(lm: np.ndarray) -> float:
    return float(np.linalg.norm(lm[tp.EYE_LEFT_CORNERS[1], :2] - lm[tp.EYE_RIGHT_CORNERS[0], :2]))


def skin_mask(shape: tuple[int, ...], lm: np.ndarray) -> np.ndarray:
    m = np.zeros(shape[:2], np.uint8)
    r = max(2, round(SKIN_DISC * _iod(lm) / 2))
    for i in (tp.CHEEK_LEFT, tp.CHEEK_RIGHT, 151):  # 151: mid-forehead
        cv2.circle(m, tuple(int(v) for v in np.round(lm[i, :2])), r, 1, -1)
    return m


def ring_mask(shape: tuple[int, ...], lm: np.ndarray) -> np.ndarray:
    """The face around the mouth: a band outside the outer lip contour."""
    inner = polygon_mask(shape, lm[_OUTER, :2])
    k = max(3, round(RING * _iod(lm)))
    grown = cv2.dilate(inner, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    return np.asarray((grown > 0) & (inner == 0), np.uint8)


def sharpness(y: np.ndarray, mask: np.ndarray) -> float:
    gx = cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=3)
    g = np.hypot(gx, gy)[mask > 0]
    return float(np.percentile(g, 90)) if g.size else 0.0


def noise(y: np.ndarray, mask: np.ndarray) -> float:
    r = (y - cv2.GaussianBlur(y, (0, 0), 1.0))[mask > 0]
    return float(1.4826 * np.median(np.abs(r - np.median(r)))) if r.size else 0.0


def _tone(lab_px: np.ndarray) -> tuple[float, np.ndarray]:
    """(median chroma, chroma-weighted mean (a*, b*) direction) of float[N, 3] Lab pixels."""
    ab = lab_px[:, 1:]
    c = np.hypot(ab[:, 0], ab[:, 1])
    return float(np.median(c)), ab.sum(0)


def _ratio(a: float, b: float) -> float:
    return a / b if b > 1e-6 else 0.0


def tone_curve(lab_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(L* band centres float[K], median (a*, b*) float[K, 2]) over the bands with >= 20 pixels."""
    band = np.floor(lab_px[:, 0] / TONE_BIN).astype(int)
    keys = [k for k in np.unique(band) if (band == k).sum() >= 20]
    if not keys:
        return np.array([50.0]), np.median(lab_px[:, 1:], axis=0)[None]
    centres = (np.array(keys, np.float64) + 0.5) * TONE_BIN
    return centres, np.stack([np.median(lab_px[band == k, 1:], axis=0) for k in keys])


def tone_distance(lab_px: np.ndarray, curve: tuple[np.ndarray, np.ndarray]) -> float:
    """Mean a*b* distance of pixels from the tone curve at their own lightness (the mean, not the
    median: a dark cavity fills most of an open mouth and carries little colour; the teeth, a
    smaller part, are what shows a wrong tint)."""
    lc, ab = curve
    ref = np.stack([np.interp(lab_px[:, 0], lc, ab[:, i]) for i in (0, 1)], -1)
    return float(np.mean(np.linalg.norm(lab_px[:, 1:] - ref, axis=1))) if len(lab_px) else 0.0


def colour_ok(mouth_c: float, skin_c: float, hue_diff: float, spread: float, tone_dist: float) -> bool:
    if spread < MONO_SPREAD:
        return tone_dist < MONO_SPREAD + spread
    return hue_diff <= MAX_HUE_DIFF_DEG and mouth_c <= MAX_CHROMA_RATIO * skin_c + GREY_CHROMA


def evaluate_mouth(r: AnalyticRenderer) -> MouthMetrics:
    """The figures above for a renderer (any size; 512² is what ``eval render`` passes)."""
    photo, lm0 = r.portrait.crop, r.portrait.landmarks
    shape = photo.shape
    edge = np.ones((2 * EDGE_PX + 1, 2 * EDGE_PX + 1), np.uint8)
    frames, masks, rings = [], [], []
    motions = [motion_vector(jawOpen=w) for w in JAW_LEVELS] + [motion_vector(jawOpen=HOLD_JAW)] * HOLD_FRAMES
    for m in motions:
        frames.append(r.render(m[None])[0])
        if frames[-1].shape != shape:
            raise ValueError(f"evaluate_mouth needs the face crop {shape}, got frames of {frames[-1].shape}")
        assert r.warp.last_points is not None
        kp = r.warp.last_points[: r.warp.n_face]
        poly = np.concatenate([kp[_UPPER_INNER], kp[_LOWER_INNER][::-1]])
        masks.append(cv2.erode(polygon_mask(shape, poly), edge))
        rings.append(ring_mask(shape, kp))
    n = len(JAW_LEVELS)
    lab_px = np.concatenate([lab(f)[mk > 0] for f, mk in zip(frames[:n], masks[:n], strict=True)])
    skin_px = lab(photo)[skin_mask(shape, lm0) > 0]
    mouth_c, mouth_dir = _tone(lab_px) if len(lab_px) else (0.0, np.zeros(2))
    skin_c, skin_dir = _tone(skin_px)
    hue_diff = 0.0
    if mouth_c >= GREY_CHROMA and skin_c >= GREY_CHROMA:
        cos = np.dot(mouth_dir, skin_dir) / (np.linalg.norm(mouth_dir) * np.linalg.norm(skin_dir) + 1e-9)
        hue_diff = float(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    face_px = lab(photo)[polygon_mask(shape, lm0[np.array(tp.FACE_OVAL), :2]) > 0]
    curve = tone_curve(face_px)
    spread, tone_dist = tone_distance(face_px, curve), tone_distance(lab_px, curve)
    # detail: interior vs the face around it, in the render and (mouth vs around) in the photo
    y0 = luminance(photo)
    photo_mouth, photo_ring = polygon_mask(shape, lm0[_OUTER, :2]), ring_mask(shape, lm0)
    sharp_photo = _ratio(sharpness(y0, photo_mouth), sharpness(y0, photo_ring))
    noise_photo = _ratio(noise(y0, photo_mouth), noise(y0, photo_ring))
    sharp_r, noise_r = [], []
    for f, mk, rg in zip(frames[:n], masks[:n], rings[:n], strict=True):
        if mk.sum() < 20:
            continue
        y = luminance(f)
        sharp_r.append(_ratio(sharpness(y, mk), sharpness(y, rg)))
        noise_r.append(_ratio(noise(y, mk), noise(y, rg)))
    sharp_rel = _ratio(float(np.mean(sharp_r)) if sharp_r else 0.0, sharp_photo)
    noise_rel = _ratio(float(np.mean(noise_r)) if noise_r else 0.0, noise_photo)
    hold = np.stack(frames[n:]).astype(np.int16)
    still = np.stack(masks[n:]).min(0) > 0
    temporal = float(np.abs(np.diff(hold, axis=0))[:, still].mean()) if still.any() else 0.0
    return MouthMetrics(
        mouth_chroma=mouth_c,
        skin_chroma=skin_c,
        mouth_hue_diff_deg=hue_diff,
        photo_tone_spread=spread,
        mouth_tone_dist=tone_dist,
        mouth_colour_ok=float(colour_ok(mouth_c, skin_c, hue_diff, spread, tone_dist)),
        interior_sharpness_rel=sharp_rel,
        interior_noise_rel=noise_rel,
        interior_detail_ok=float(all(DETAIL_BAND[0] <= v <= DETAIL_BAND[1] for v in (sharp_rel, noise_rel))),
        interior_temporal_mad=temporal,
    )
