"""Closed eyelids drawn from the lid's own skin.

The warp already brings the upper lid down over the eye with the lid skin above it (the rig's
eyeBlink field drags the skin; the eye opening collapses between the lid contours). What it
cannot do is hide what remains: the photo's dark lash band moving down with the lid and a sliver
of compressed eye. When a lid is nearly closed, this covers the lid region (from above the lash
band to the lower lid) with skin taken from the frame itself, column by column: a vertical blend
from the pixels just above the patch (the lid skin the warp brought down) to those just below it
(the lower lid), lightly smoothed along the lid, so the closed lid has the colours and shading of
the skin around it in every frame (also under head motion), with the photo's own fine skin
texture laid over it (the high-pass of the skin above the eye, fixed per portrait and carried with
the head, so it never shimmers). Where the lids meet, the lash fringe of a closed eye is drawn in
the photo's own lash tone (the median of the darkest 5 % of its lash band, so a sepia photo gets
sepia lashes and no pixel darker than its lashes): a band hanging below the lid margin, 2 % of
the eye-corner distance deep mid-lid, opaque at the margin and 80 % towards the tips, tapering to
the corners along a smooth curve, supersampled and then softened to the photo's own sharpness
(``PhotoLook.blur``), so it is no crisper than the photo's real lashes.

The overlay fades in with closure, so half-closed and open eyes stay pure warp. Closure is measured
against how far this portrait's lids travel at full blink: the rig's blink field is authored on the
reference face, and on a photo whose eye is more open than it the driven lids stop at 75–85 % of
the gap, which used to leave the overlay only half faded in at a full blink (the eye showing through
it on the three-quarter test face).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.interpolate import CubicSpline

from emostream.render import topology as tp
from emostream.render.photo_look import LUMA, PhotoLook, highpass, luma

_SHIFT = 4
#: Closure (1 − gap / rest gap, ÷ the closure this portrait's lids reach at full blink) over
#: which the overlay fades in.
FADE = (0.55, 0.9)
#: Floor on that full-blink closure (a degenerate rig fit must not make the overlay pop in).
MIN_TRAVEL = 0.5
#: Lash band height above the lid contour (× the eye-corner distance) that the overlay covers.
LASH = 0.045
#: Margin below the lower-lid contour that the overlay also covers (× the eye-corner distance):
#: the face mesh's lower lid can sit a pixel or two above the visible lid margin (sclera showing
#: under a closed lid, mostly at the inner corner of a turned face's far eye).
BELOW = 0.02
#: Lash fringe of the closed lid (× the eye-corner distance): how far it hangs below / reaches
#: above the line where the lids meet, mid-lid; it tapers to the corners as sin(π t) ** TAPER_POW
#: (plus 0.35 px each side, so it never vanishes between the corners).
LASH_BELOW = 0.02
LASH_ABOVE = 0.0
TAPER_POW = 1.0
#: The lash fringe is opaque over its upper ``MARGIN`` (the lid margin) and ``TIPS`` opaque below.
MARGIN = 0.5
TIPS = 0.8
#: Supersampling of the lash fringe's coverage.
SUPERSAMPLE = 4
#: The lash fringe takes the median colour of the darkest ``LASH_PCT`` % of the photo's lash band.
LASH_PCT = 5.0
#: Smoothing of the sampled skin along the lid (box width, × the eye-corner distance).
SKIN_SMOOTH = 0.12


class Eyelids:
    def __init__(
        self, crop: np.ndarray, landmarks: np.ndarray, closed: np.ndarray | None = None,
        look: PhotoLook | None = None,
    ) -> None:  # fmt: skip
        """``closed``: float[468, 2] driven keypoints at full blink (eyeBlink = 1), so the fade is
        measured against how far this portrait's lids actually travel (the rig's blink field is
        authored on the reference face; on a photo whose eye is more open the driven lids stop
        short of each other at full blink). ``None``: the lids are taken to meet."""
        lm = landmarks[:, :2].astype(np.float64)
        self.iod = float(np.linalg.norm(lm[tp.EYE_LEFT_CORNERS[1]] - lm[tp.EYE_RIGHT_CORNERS[0]]))
        self.look = look or PhotoLook.measure(crop, landmarks)
        #: The photo's own fine skin texture (high-pass lightness), laid over the closed lids.
        self.texture = highpass(luma(crop))
        lash = LASH * self.iod
        self.eyes = []
        for up, lo in ((tp.EYE_RIGHT_UPPER, tp.EYE_RIGHT_LOWER), (tp.EYE_LEFT_UPPER, tp.EYE_LEFT_LOWER)):
            u, lw = np.array(up), np.array(lo)
            rest = max(float(np.median(lm[lw[2:-2], 1] - lm[u[2:-2], 1])), 1e-3)
            full = 1.0
            if closed is not None:
                full = 1.0 - float(np.median(closed[lw[2:-2], 1] - closed[u[2:-2], 1])) / rest
            full = float(np.clip(full, MIN_TRAVEL, 1.0))
            lash_band = np.concatenate([lm[u] - [0, 0.2 * lash], (lm[u] - [0, lash])[::-1]])
            lash_mask = np.zeros(crop.shape[:2], np.uint8)
            cv2.fillPoly(lash_mask, [np.round(lash_band).astype(np.int32)], 1)
            lash_px = crop[lash_mask > 0].astype(np.float64)
            lash_c = np.zeros(3)
            if len(lash_px):  # the photo's own lash tone: the median of the band's darkest pixels
                lum = lash_px @ LUMA
                lash_c = np.median(lash_px[lum <= np.percentile(lum, LASH_PCT)], axis=0)
            self.eyes.append((u, lw, lash_c, rest, full))
        self.lash = lash
        self.source_lm = lm

    def coverage(self, kp: np.ndarray) -> list[float]:
        """Per eye (right, left), the overlay's opacity in [0, 1] for driven keypoints ``kp``."""
        out = []
        for u, lw, _, rest, full in self.eyes:
            gap = float(np.median(kp[lw[2:-2], 1] - kp[u[2:-2], 1]))
            closure = (1.0 - gap / rest) / full
            out.append(float(np.clip((closure - FADE[0]) / (FADE[1] - FADE[0]), 0.0, 1.0)))
        return out

    def draw(self, frame: np.ndarray, kp: np.ndarray) -> None:
        """Overlay closed lids on ``frame`` (uint8[S, S, 3], in place); ``kp`` float[468, 2] driven."""
        s = frame.shape[0]
        for (u, lw, lash_c, _, _), a in zip(self.eyes, self.coverage(kp), strict=True):
            if a <= 0.0:
                continue
            top = kp[u] - [0, self.lash]
            bottom = kp[lw] + np.array([0.0, 0.5 + BELOW * self.iod])
            poly = np.concatenate([top, bottom[::-1]])
            x0, y0 = np.maximum(np.floor(poly.min(0)).astype(int) - 2, 0)
            x1, y1 = np.minimum(np.ceil(poly.max(0)).astype(int) + 3, s)
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            off = np.array([x0, y0], np.float64)
            mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
            cv2.fillPoly(
                mask, [np.round((poly - off) * (1 << _SHIFT)).astype(np.int32)], 255, cv2.LINE_AA, _SHIFT
            )
            mask = cv2.GaussianBlur(mask, (0, 0), max(0.7, 0.015 * self.iod))
            roi = self._skin(frame, top, bottom, x0, x1, y0, y1)
            self._texture(roi, kp[u], u, x0, y0)
            meet = (kp[u] + kp[lw]) / 2
            self._lashes(roi, meet - off, lash_c)
            alpha = (mask.astype(np.float32) / 255.0 * a)[..., None]
            dst = frame[y0:y1, x0:x1]
            dst[:] = (dst * (1 - alpha) + roi * alpha + 0.5).astype(np.uint8)

    def _texture(self, roi: np.ndarray, upper: np.ndarray, u: np.ndarray, x0: int, y0: int) -> None:
        """Add the photo's own lid-skin texture to ``roi`` (in place): the high-pass of the skin
        above the eye in the photo, carried down to the closed lid and with the head (fixed per
        portrait, so it never shimmers)."""
        src = self.source_lm[u]
        h, w = roi.shape[:2]
        d = (upper - src).mean(0)  # the head's motion of this eye (the lid's own is below)
        lift = float(np.ptp(src[:, 1])) + LASH * self.iod + 2.0
        mx = (np.arange(w, dtype=np.float32) + np.float32(x0 - d[0]))[None].repeat(h, 0)
        my = (np.arange(h, dtype=np.float32) + np.float32(y0 - d[1] - lift))[:, None].repeat(w, 1)
        tex = cv2.remap(self.texture, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        roi[:] = np.clip(roi + tex[..., None] + 0.5, 0, 255).astype(np.uint8)

    def _lashes(self, roi: np.ndarray, meet: np.ndarray, lash_c: np.ndarray) -> None:
        """Draw the closed lid's lash fringe into ``roi`` (in place) along ``meet`` (float[9, 2],
        roi px, corner to corner): a band hanging below the lid margin, thickest mid-lid and
        tapering to the corners, opaque at the margin and ``TIPS`` opaque towards the lash tips."""
        c = _SPLINE @ meet  # a smooth curve through the 9 contour points
        taper = np.sin(np.pi * np.linspace(0.0, 1.0, len(c)))[:, None] ** TAPER_POW
        depth = LASH_BELOW * self.iod * taper + 0.35
        up = c - [0.0, 1.0] * (LASH_ABOVE * self.iod * taper + 0.35)
        # coverage rasterised at SUPERSAMPLE × and area-averaged down: a band only 1–2 px deep
        # would otherwise show cv2's anti-aliasing steps
        h, w = roi.shape[:2]
        big = np.zeros((h * SUPERSAMPLE, w * SUPERSAMPLE), np.uint8)
        k = SUPERSAMPLE * (1 << _SHIFT)
        for lo, level in ((c + [0.0, 1.0] * depth, TIPS), (c + [0.0, 1.0] * (MARGIN * depth), 1.0)):
            poly = np.round((np.concatenate([up, lo[::-1]]) + 0.5) * k - 0.5 * (1 << _SHIFT)).astype(np.int32)
            cv2.fillPoly(big, [poly], round(255 * level), cv2.LINE_8, _SHIFT)
        a = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        soft = float(np.sqrt(max(self.look.blur**2 - 0.35**2, 0.0)))
        if soft > 0.2:  # as sharp as the photo's own edges, no sharper
            a = np.asarray(cv2.GaussianBlur(a, (0, 0), soft), np.float32)
        a = a[..., None]
        roi[:] = np.clip(roi * (1.0 - a) + np.asarray(lash_c, np.float32) * a + 0.5, 0, 255).astype(np.uint8)

    def _skin(
        self, frame: np.ndarray, top: np.ndarray, bottom: np.ndarray, x0: int, x1: int, y0: int, y1: int
    ) -> np.ndarray:
        """uint8[y1-y0, x1-x0, 3]: per column, the frame's skin 1.5 px above ``top`` blended
        vertically into its skin 1.5 px below ``bottom`` (both contours float[N, 2])."""
        xs = np.arange(x0, x1, dtype=np.float64)
        t_y = _contour_y(top, xs) - 1.5
        b_y = _contour_y(bottom, xs) + 1.5
        k = max(3, int(SKIN_SMOOTH * self.iod) | 1)
        above = cv2.blur(_sample(frame, xs, t_y), (k, 1))[0]  # float32[W, 3]
        below = cv2.blur(_sample(frame, xs, b_y), (k, 1))[0]
        ys = np.arange(y0, y1, dtype=np.float64)[:, None]
        t = np.clip((ys - t_y) / np.maximum(b_y - t_y, 1.0), 0.0, 1.0).astype(np.float32)[..., None]
        return np.ascontiguousarray(np.clip(above * (1 - t) + below * t + 0.5, 0, 255).astype(np.uint8))


def _spline_basis(n: int, k: int) -> np.ndarray:
    """float[k, n]: weights of a natural cubic spline through n points (by index), at k samples."""
    return np.asarray(CubicSpline(np.arange(n), np.eye(n), bc_type="natural")(np.linspace(0, n - 1, k)))


_SPLINE = _spline_basis(len(tp.EYE_RIGHT_UPPER), 8 * (len(tp.EYE_RIGHT_UPPER) - 1) + 1)


def _contour_y(c: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """float[N]: the contour ``c`` (float[M, 2]) interpolated at columns ``xs``."""
    o = np.argsort(c[:, 0])
    return np.asarray(np.interp(xs, c[o, 0], c[o, 1]))


def _sample(img: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """float32[1, N, 3]: ``img`` bilinearly sampled at the points (xs, ys)."""
    mx, my = xs.astype(np.float32)[None], ys.astype(np.float32)[None]
    out = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out, np.float32).reshape(1, len(xs), -1)
