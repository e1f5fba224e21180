"""Closed eyelids drawn from the lid's own skin.

The warp already brings the upper lid down over the eye with the lid skin above it (the rig's
eyeBlink field drags the skin; the eye opening collapses between the lid contours). What it
cannot do is hide what remains: the photo's dark lash band moving down with the lid and a sliver
of compressed eye. When a lid is nearly closed, this overlays the lid region (from above the lash
band to the lower lid) with the photo's own skin tones, a vertical blend from the upper-lid skin
(sampled above the lashes) to the under-eye skin (sampled below the lower lid), and draws one
thin lash line where the lids meet. It fades in with closure, so half-closed and open eyes stay
pure warp.
"""

from __future__ import annotations

import cv2
import numpy as np

from emostream.render import topology as tp

_SHIFT = 4
#: Closure (1 − gap / rest gap) over which the overlay fades in.
FADE = (0.55, 0.9)
#: Lash band height above the lid contour (× the eye-corner distance) that the overlay covers.
LASH = 0.045


def _band_median(img: np.ndarray, poly: np.ndarray) -> np.ndarray:
    m = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(m, [np.round(poly).astype(np.int32)], 1)
    px = img[m > 0]
    return np.median(px, axis=0) if len(px) else img.reshape(-1, 3).mean(0)


class Eyelids:
    def __init__(self, crop: np.ndarray, landmarks: np.ndarray) -> None:
        lm = landmarks[:, :2].astype(np.float64)
        self.iod = float(np.linalg.norm(lm[tp.EYE_LEFT_CORNERS[1]] - lm[tp.EYE_RIGHT_CORNERS[0]]))
        lash = LASH * self.iod
        self.eyes = []
        for up, lo in ((tp.EYE_RIGHT_UPPER, tp.EYE_RIGHT_LOWER), (tp.EYE_LEFT_UPPER, tp.EYE_LEFT_LOWER)):
            u, lw = np.array(up), np.array(lo)
            top = lm[u] - [0, lash]
            lid_band = np.concatenate([top, (lm[u] - [0, 2.2 * lash])[::-1]])
            under_band = np.concatenate([lm[lw] + [0, 0.6 * lash], (lm[lw] + [0, 1.6 * lash])[::-1]])
            lash_band = np.concatenate([lm[u] - [0, 0.2 * lash], top[::-1]])
            rest = float(np.median(lm[lw[2:-2], 1] - lm[u[2:-2], 1]))
            lash_mask = np.zeros(crop.shape[:2], np.uint8)
            cv2.fillPoly(lash_mask, [np.round(lash_band).astype(np.int32)], 1)
            lash_px = crop[lash_mask > 0]
            lash_c = np.percentile(lash_px, 15, axis=0) if len(lash_px) else np.zeros(3)
            lid_c, under_c = _band_median(crop, lid_band), _band_median(crop, under_band)
            self.eyes.append((u, lw, lid_c, under_c, lash_c, max(rest, 1e-3)))
        self.lash = lash

    def draw(self, frame: np.ndarray, kp: np.ndarray) -> None:
        """Overlay closed lids on ``frame`` (uint8[S, S, 3], in place); ``kp`` float[468, 2] driven."""
        s = frame.shape[0]
        for u, lw, lid_c, under_c, lash_c, rest in self.eyes:
            gap = float(np.median(kp[lw[2:-2], 1] - kp[u[2:-2], 1]))
            closure = 1.0 - gap / rest
            a = float(np.clip((closure - FADE[0]) / (FADE[1] - FADE[0]), 0.0, 1.0))
            if a <= 0.0:
                continue
            top = kp[u] - [0, self.lash]
            poly = np.concatenate([top, kp[lw][::-1] + np.array([0.0, 0.5])])
            x0, y0 = np.maximum(np.floor(poly.min(0)).astype(int) - 2, 0)
            x1, y1 = np.minimum(np.ceil(poly.max(0)).astype(int) + 3, s)
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            off = np.array([x0, y0], np.float64)
            h, w = y1 - y0, x1 - x0
            mask = np.zeros((h, w), np.uint8)
            cv2.fillPoly(
                mask, [np.round((poly - off) * (1 << _SHIFT)).astype(np.int32)], 255, cv2.LINE_AA, _SHIFT
            )
            mask = cv2.GaussianBlur(mask, (0, 0), max(0.7, 0.015 * self.iod))
            # vertical blend from lid skin (top) to under-eye skin (bottom)
            ys = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
            skin = lid_c * (1 - 0.5 * ys) + under_c * (0.5 * ys)
            roi = np.ascontiguousarray(np.broadcast_to(skin, (h, w, 3)).astype(np.uint8))
            meet = (kp[u] + kp[lw]) / 2
            cv2.polylines(roi, [np.round((meet - off) * (1 << _SHIFT)).astype(np.int32)], False,
                          np.asarray(lash_c, float).tolist(), 1, cv2.LINE_AA, _SHIFT)  # fmt: skip
            alpha = (mask.astype(np.float32) / 255.0 * a)[..., None]
            dst = frame[y0:y1, x0:x1]
            dst[:] = (dst * (1 - alpha) + roi * alpha + 0.5).astype(np.uint8)
