"""Shaded landmark-mesh renders of the rig (the "In"/"It" images the FOMM renderer reads).

The driven rig's 3D landmarks are drawn on the portrait's crop geometry as a flat-shaded mesh
(Lambert, light from the camera), painter's order by depth, on mid-grey: skin, darker brows,
red lips, white eyes with a dark iris disc, and a dark mouth opening. Deterministic, anti-aliased.
"""

from __future__ import annotations

import cv2
import numpy as np

from emostream.render import topology as tp
from emostream.render.warp import opening_pairs, strip_triangles

_SHIFT = 4
SKIN = np.array([205.0, 172.0, 150.0])
LIPS = np.array([176.0, 84.0, 86.0])
BROWS = np.array([90.0, 66.0, 55.0])
SCLERA = np.array([236.0, 236.0, 232.0])
MOUTH = np.array([45.0, 16.0, 18.0])
BACKGROUND = (128, 128, 128)


class RigRenderer:
    def __init__(self, face_triangles: np.ndarray, size: int) -> None:
        self.size = size
        fills = [strip_triangles(u, lo) for u, lo in opening_pairs()]
        self.mouth_tris = np.array(fills[0], np.int32)
        self.eye_tris = np.array(fills[1] + fills[2], np.int32)
        self.face_tris = face_triangles.astype(np.int32)
        lips = set(tp.LIP_UPPER_OUTER + tp.LIP_LOWER_OUTER + tp.LIP_UPPER_INNER + tp.LIP_LOWER_INNER)
        brows = set(tp.BROW_RIGHT_UPPER + tp.BROW_RIGHT_LOWER + tp.BROW_LEFT_UPPER + tp.BROW_LEFT_LOWER)
        color = np.tile(SKIN, (len(self.face_tris), 1))
        for i, t in enumerate(self.face_tris.tolist()):
            if sum(v in lips for v in t) >= 2 and not all(
                v in tp.LIP_UPPER_OUTER + tp.LIP_LOWER_OUTER for v in t
            ):
                color[i] = LIPS
            elif sum(v in brows for v in t) >= 2:
                color[i] = BROWS
        self.face_color = color

    def __call__(self, v: np.ndarray) -> np.ndarray:
        """float[468, 3] landmarks (crop px, depth z) → uint8[size, size, 3]."""
        img = np.full((self.size, self.size, 3), BACKGROUND, np.uint8)
        tris = self.face_tris
        p = v[tris]  # [T, 3, 3]
        n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
        lam = np.abs(n[:, 2]) / (np.linalg.norm(n, axis=1) + 1e-9)
        shade = (0.35 + 0.65 * lam)[:, None] * self.face_color
        fx = np.round(v[:, :2] * (1 << _SHIFT)).astype(np.int32)
        # openings first (they lie behind the face surface)
        for t in self.mouth_tris:
            cv2.fillConvexPoly(img, fx[t], MOUTH.tolist(), cv2.LINE_AA, _SHIFT)
        for t in self.eye_tris:
            cv2.fillConvexPoly(img, fx[t], SCLERA.tolist(), cv2.LINE_AA, _SHIFT)
        for top, bot in ((tp.EYE_RIGHT_TOP, tp.EYE_RIGHT_BOTTOM), (tp.EYE_LEFT_TOP, tp.EYE_LEFT_BOTTOM)):
            c = (v[top, :2] + v[bot, :2]) / 2
            r = max(float(np.linalg.norm(v[top, :2] - v[bot, :2])) * 0.55, 0.5)
            cv2.circle(
                img,
                tuple(np.round(c * (1 << _SHIFT)).astype(int)),
                int(r * (1 << _SHIFT)),
                (40, 32, 30),
                -1,
                cv2.LINE_AA,
                _SHIFT,
            )
        order = np.argsort(-p[:, :, 2].mean(1))  # far first
        for i in order:
            if lam[i] < 0.05:
                continue
            cv2.fillConvexPoly(img, fx[tris[i]], shade[i].tolist(), cv2.LINE_AA, _SHIFT)
        return img
