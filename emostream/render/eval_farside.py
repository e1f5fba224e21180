"""The far side of a turned head: background pulled into the face, and how far the warp stretches.

Figures (JSON, ``eval render``), each with the head turned ``TURN_RAD`` both ways (the contact
sheet's "head left" / "head right"), worst of the two:

- ``farside_bg_px_turned`` / ``farside_bg_px_rest``: the face turned to ``SOURCE_YAW_DEG`` both
  ways by ``turn.turned_face`` (its own texture on its 3D landmarks, over a flat ``BACKGROUND``,
  pure green) is the portrait; counted at 256² are the output pixels the warp's *face* triangles
  (not its outer band, whose job is to carry the background) fill from a background pixel of that
  portrait (its colour within ``BG_TOL`` of the background's; the backward map's source pixel,
  nearest): background used as cheek texture. Worst source side, with the head turned (worst
  pose) and at rest;
- ``farside_stretch``: on the photo itself at 256², the 99th percentile over the pixels inside
  the driven face oval of the warp's largest local magnification (1 / the smallest singular value
  of the backward map's Jacobian, finite differences): 1 = no stretch, 3 = a source pixel smeared
  over three;
- ``farside_min_alpha``: the fold guard's α on those poses (1 = the full motion was applied).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from emostream.arkit import motion_vector
from emostream.render import topology as tp
from emostream.render.analytic import AnalyticRenderer
from emostream.render.portrait import cached_landmarks, prepare_portrait
from emostream.render.turn import turned_face

TURN_RAD = 0.3
SOURCE_YAW_DEG = 35.0
BG_TOL = 3
#: The flat background the turned faces are drawn over: a colour no face has.
BACKGROUND = (0, 255, 0)
_OVAL = np.array(tp.FACE_OVAL)


@dataclass(frozen=True)
class FarsideMetrics:
    farside_bg_px_turned: float
    farside_bg_px_rest: float
    farside_stretch: float
    farside_min_alpha: float

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in asdict(self).items()}


def oval_mask(size: int, kp: np.ndarray) -> np.ndarray:
    """bool[S, S]: inside the face oval of the driven landmarks ``kp`` float[468, 2]."""
    m = np.zeros((size, size), np.uint8)
    poly = np.round(kp[_OVAL, :2] * 16).astype(np.int32)
    cv2.fillPoly(m, [poly], 255, lineType=cv2.LINE_8, shift=4)
    return m > 0


def background_in_face(r: AnalyticRenderer, motion_row: np.ndarray) -> int:
    """Output pixels for ``motion_row`` that the warp's face triangles fill from a pixel of the
    portrait with the flat background's colour."""
    src = r.portrait.crop.astype(np.int16)
    bg = np.abs(src - np.array(BACKGROUND, np.int16)).max(-1) <= BG_TOL
    mx, my, _ = r._warp_crop(r.keypoints(motion_row[None])[0], motion_row)
    w = r.warp
    assert w.last_ids is not None
    x0, y0, x1, y1 = w._roi()
    ids = w.last_ids[: y1 - y0, : x1 - x0]
    face = (ids >= 0) & ~(w.triangles[ids] >= w.n_dynamic).any(-1)
    sx = np.clip(np.round(mx[y0:y1, x0:x1]).astype(int), 0, r.size - 1)
    sy = np.clip(np.round(my[y0:y1, x0:x1]).astype(int), 0, r.size - 1)
    return int((face & bg[sy, sx]).sum())


def magnification(map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """float[S, S]: 1 / σ_min of the backward map's Jacobian (the forward map's largest stretch)."""
    a, b = np.gradient(map_x, axis=1), np.gradient(map_x, axis=0)
    c, d = np.gradient(map_y, axis=1), np.gradient(map_y, axis=0)
    t = a * a + b * b + c * c + d * d
    det = np.abs(a * d - b * c)
    smin = np.sqrt(np.maximum((t - np.sqrt(np.maximum(t * t - 4 * det * det, 0))) / 2, 1e-12))
    return np.asarray(1.0 / smin)


def turned_poses() -> np.ndarray:
    return np.stack([motion_vector(yaw=-TURN_RAD), motion_vector(yaw=TURN_RAD)])


def evaluate_farside(img: np.ndarray) -> FarsideMetrics:
    poses = turned_poses()
    r = AnalyticRenderer(prepare_portrait(img, 256))
    stretch, alphas = [], []
    for m in poses:
        kp = r.keypoints(m[None])[0]
        mx, my, _ = r._warp_crop(kp, m)
        inside = cv2.erode(oval_mask(r.size, kp).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        stretch.append(float(np.percentile(magnification(mx, my)[inside], 99)))
        alphas.append(r.last_alpha)
    lm = cached_landmarks(img)
    bg_turn, bg_rest = [], []
    for side in (-1.0, 1.0):
        turned = turned_face(img, lm, side * SOURCE_YAW_DEG, background=BACKGROUND)
        rt = AnalyticRenderer(prepare_portrait(turned, 256))
        bg_rest.append(background_in_face(rt, motion_vector()))
        for m in poses:
            bg_turn.append(background_in_face(rt, m))
            alphas.append(rt.last_alpha)
    return FarsideMetrics(
        farside_bg_px_turned=float(max(bg_turn)), farside_bg_px_rest=float(max(bg_rest)),
        farside_stretch=max(stretch), farside_min_alpha=float(min(alphas)),
    )  # fmt: skip
