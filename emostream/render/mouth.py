"""The inner mouth, drawn where the lips part further than in the photo.

Geometry lives in the rig's head frame, so it moves only as bones do:
- **upper teeth** are fixed to the skull: they move with the head pose only, never with the lips
  (an upper-lip raise uncovers them, it does not drag them);
- **lower teeth** and the **tongue** move with the jaw's rigid transform (jawOpen rotation about
  the jaw pivot, jawForward / jawLeft / jawRight), the tongue pushed forward by tongueOut;
- the **cavity** is a dark, warm shade of the photo's own lip colour, darker towards the back.

Each tooth row is a strip of 3D columns along a parabolic dental arch (incisal edge and gum line),
projected through the rig's camera and drawn anti-aliased with sub-pixel precision
(``cv2.fillConvexPoly`` with ``LINE_AA`` and 4 fractional bits), with darker gaps between teeth
and shading by depth. Nothing depends on the frame index or on random numbers, so a static pose
gives identical pixels every frame (teeth never shimmer or slide). The whole composite is masked
by the driven inner-lip polygon and blended in by how much further the lips are open than in
the photo (the photo's own mouth shows at neutral).
"""

from __future__ import annotations

import cv2
import numpy as np

from emostream.arkit import BLENDSHAPE_INDEX
from emostream.render import topology as tp
from emostream.render.rig import Rig

_SHIFT = 4
#: Tooth boundaries along the arch, in head-frame x at the front (incisors narrow, then wider).
_TOOTH_EDGES = np.array([-0.30, -0.20, -0.13, -0.065, 0.0, 0.065, 0.13, 0.20, 0.30])
#: Lips must be this many pixels further apart than in the photo for the mouth to be fully drawn.
OPEN_RAMP_PX = (0.5, 3.0)


def _arch(x: np.ndarray, y: float, z0: float) -> np.ndarray:
    """3D points on the dental arch (head frame): it curves back towards the sides."""
    return np.stack([x, np.full_like(x, y), z0 + 1.4 * x**2], -1)


class InnerMouth:
    def __init__(self, rig: Rig, crop: np.ndarray, landmarks: np.ndarray) -> None:
        self.rig = rig
        v = rig.identity
        up_mid, lo_mid = v[tp.LIP_UPPER_MID], v[tp.LIP_LOWER_MID]
        closed_mid = (up_mid[1] + lo_mid[1]) / 2
        z_front = float(min(up_mid[2], lo_mid[2])) + 0.05
        # upper incisal edge just below the closed-lip line; lower edge overlaps it slightly (overbite)
        y_up_edge = closed_mid + 0.012
        y_lo_edge = closed_mid - 0.005
        x = _TOOTH_EDGES
        xs = np.linspace(x[0], x[-1], 41)
        self.upper_edge = _arch(xs, y_up_edge, z_front)
        self.upper_gum = _arch(xs, y_up_edge - 0.11, z_front + 0.01)
        self.lower_edge = _arch(xs, y_lo_edge, z_front + 0.02)
        self.lower_gum = _arch(xs, y_lo_edge + 0.10, z_front + 0.03)
        self.upper_gaps = np.stack(
            [_arch(x, y_up_edge, z_front), _arch(x, y_up_edge - 0.11, z_front + 0.01)], 1
        )
        self.lower_gaps = np.stack(
            [_arch(x, y_lo_edge, z_front + 0.02), _arch(x, y_lo_edge + 0.10, z_front + 0.03)], 1
        )
        self.tongue_center = np.array([0.0, y_lo_edge + 0.06, z_front + 0.16])
        self.mouth_center = np.array([0.0, closed_mid + 0.06, z_front])
        half_width = float(v[tp.MOUTH_CORNER_LEFT, 0] - v[tp.MOUTH_CORNER_RIGHT, 0]) / 2
        self.shade_radius = np.array([half_width, 0.2]) * rig.scale
        # colours from the photo: lips (median of the lip bodies), skin brightness
        lm = landmarks[:, :2]
        mask = np.zeros(crop.shape[:2], np.uint8)
        cv2.fillPoly(
            mask, [np.round(lm[list(tp.LIP_LOWER_OUTER + tp.LIP_LOWER_INNER[::-1])]).astype(np.int32)], 1
        )
        lip = np.median(crop[mask > 0], axis=0) if mask.any() else np.array([150.0, 80, 80])
        cheek = crop[int(lm[tp.CHEEK_LEFT, 1]), int(lm[tp.CHEEK_LEFT, 0])].astype(np.float64)
        light = float(np.clip(cheek.mean() / 150.0, 0.55, 1.1))
        self.cavity = np.clip(lip * np.array([0.32, 0.16, 0.16]) * light + 6, 0, 255)
        self.tongue = np.clip(lip * np.array([0.85, 0.55, 0.58]) * light, 0, 255)
        self.tooth = np.clip(np.array([218.0, 208, 192]) * light, 0, 255)
        self.gum = np.clip(lip * np.array([0.9, 0.55, 0.55]), 0, 255)
        self.src_gap = float(np.linalg.norm(lm[tp.LIP_LOWER_MID] - lm[tp.LIP_UPPER_MID]))

    def _project(self, pts: np.ndarray, motion: np.ndarray, jaw: bool) -> np.ndarray:
        p = pts.reshape(1, -1, 3)
        if jaw:
            r, t = self.rig.jaw_transform(motion[None])
            p = np.einsum("bij,bnj->bni", r, p) + t[:, None]
        return np.asarray(self.rig.to_camera(p, motion[None])[0].reshape(*pts.shape[:-1], 3))

    def draw(
        self, frame: np.ndarray, motion: np.ndarray, upper_inner: np.ndarray, lower_inner: np.ndarray
    ) -> None:
        """Composite the inner mouth into ``frame`` (uint8[S, S, 3], in place).

        ``upper_inner`` / ``lower_inner``: float[11, 2] driven inner-lip contours (crop px)."""
        gap = float(np.linalg.norm(lower_inner[5] - upper_inner[5]))
        open_w = float(
            np.clip((gap - self.src_gap - OPEN_RAMP_PX[0]) / (OPEN_RAMP_PX[1] - OPEN_RAMP_PX[0]), 0, 1)
        )
        if open_w <= 0.0:
            return
        poly = np.concatenate([upper_inner, lower_inner[::-1]])
        s = frame.shape[0]
        x0, y0 = np.floor(poly.min(0)).astype(int) - 2
        x1, y1 = np.ceil(poly.max(0)).astype(int) + 3
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, s), min(y1, s)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        off = np.array([x0, y0], np.float64)
        h, w = y1 - y0, x1 - x0
        fx = lambda p: np.round((p[..., :2] - off) * (1 << _SHIFT)).astype(np.int32)  # noqa: E731
        # cavity with depth shading: darker towards the back (the polygon's centre and bottom)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        # shading is anchored to the skull (not to the lips), so teeth keep their shade as lips move
        c = self._project(self.mouth_center[None], motion, jaw=False)[0, :2] - off
        r = self.shade_radius
        depth = np.clip(((xx - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2, 0, 1)
        shade = (0.45 + 0.55 * depth)[..., None]
        roi = (self.cavity * shade).astype(np.uint8)
        roi = np.ascontiguousarray(roi)
        m = motion
        # tongue (moves with the jaw; tongueOut pushes it forward and up)
        t_out = float(m[BLENDSHAPE_INDEX["tongueOut"]])
        tc = self.tongue_center + np.array([0.0, -0.04 * t_out, -0.2 * t_out])
        ring = tc + np.stack(
            [
                0.2 * np.cos(np.linspace(0, 2 * np.pi, 24)),
                0.05 * np.sin(np.linspace(0, 2 * np.pi, 24)),
                np.zeros(24),
            ],
            -1,
        )
        tongue = self._project(ring, m, jaw=True)
        cv2.fillPoly(roi, [fx(tongue)], self.tongue.tolist(), cv2.LINE_AA, _SHIFT)
        # lower teeth (jaw), then upper teeth (skull) in front
        for edge, gum, gaps, jaw in (
            (self.lower_edge, self.lower_gum, self.lower_gaps, True),
            (self.upper_edge, self.upper_gum, self.upper_gaps, False),
        ):
            e = self._project(edge, m, jaw)
            g = self._project(gum, m, jaw)
            poly_t = np.concatenate([e[:, :2], g[::-1, :2]])
            cv2.fillPoly(roi, [fx(poly_t)], self.tooth.tolist(), cv2.LINE_AA, _SHIFT)
            cv2.polylines(roi, [fx(g)], False, self.gum.tolist(), 1, cv2.LINE_AA, _SHIFT)
            gp = self._project(gaps, m, jaw)
            for k in range(len(gp)):
                cv2.line(
                    roi,
                    tuple(fx(gp[k, 0])),
                    tuple(fx(gp[k, 1])),
                    (self.tooth * 0.8).tolist(),
                    1,
                    cv2.LINE_AA,
                    _SHIFT,
                )
        # side teeth recede into shadow
        side = np.clip(np.abs(xx - c[0]) / r[0], 0, 1)[..., None]
        roi = (roi * (1.0 - 0.45 * side**2)).astype(np.float32)
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [fx(poly)], 255, cv2.LINE_AA, _SHIFT)
        a = (mask.astype(np.float32) / 255.0 * open_w)[..., None]
        dst = frame[y0:y1, x0:x1]
        dst[:] = (dst * (1 - a) + roi * a + 0.5).astype(np.uint8)
