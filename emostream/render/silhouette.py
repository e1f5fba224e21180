"""The far side of a three-quarter photo: where the face really ends.

On a face turned away (a three-quarter view) the landmark model puts the far side of the face
oval a little past the visible silhouette, on the background. The warp's face triangles then
hold a strip of background, and a head turn that brings the far side towards the camera stretches
that strip into the cheek. ``far_side_oval`` moves those oval points inwards onto the silhouette,
found along the ray from the face's centre by a colour test (a sample is background when it is
nearer, in CIELAB, to the colour just outside the oval there than to the face's own skin), so the
background stays in the warp's outer band, which turning the far side towards the camera
compresses. Only the cheek part of the far side of a face turned by more than
``MIN_SOURCE_YAW_DEG`` moves: the chin, forehead and hairline, and frontal faces, stay as the
landmarks put them.
"""

from __future__ import annotations

import cv2
import numpy as np

from emostream.render import topology as tp
from emostream.render.face import estimate_yaw_deg

MIN_SOURCE_YAW_DEG = 12.0
#: Samples along each ray between ``INNER`` × and 1 × the oval point's distance from the centre.
SAMPLES = 16
INNER = 0.75
#: The colour just outside the oval is sampled at these multiples of the distance.
OUTSIDE = (1.06, 1.1, 1.14)
#: The skin and the outside must differ by at least this (ΔE) for the test to mean anything.
MIN_CONTRAST = 12.0
_OVAL = np.array(tp.FACE_OVAL)


def _lab_at(lab: np.ndarray, pts: np.ndarray) -> np.ndarray:
    h, w = lab.shape[:2]
    xy = np.round(pts).astype(int)
    xy[..., 0] = np.clip(xy[..., 0], 0, w - 1)
    xy[..., 1] = np.clip(xy[..., 1], 0, h - 1)
    return np.asarray(lab[xy[..., 1], xy[..., 0]], np.float64)


def far_side_oval(crop: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """float64[len(FACE_OVAL), 2]: the face oval, its far cheek pulled onto the silhouette."""
    xy = landmarks[:, :2].astype(np.float64)
    oval = xy[_OVAL].copy()
    yaw = estimate_yaw_deg(landmarks)
    if abs(yaw) < MIN_SOURCE_YAW_DEG:
        return oval
    centre = oval.mean(0)
    # the far side is where the nose points (yaw < 0: the face turned towards the image's left)
    far = (oval[:, 0] - centre[0]) * np.sign(-yaw) > 0
    eye_y = xy[[tp.EYE_LEFT_CORNERS[0], tp.EYE_RIGHT_CORNERS[1]], 1].mean()
    chin_y = xy[tp.LIP_LOWER_MID, 1]
    cheek = far & (oval[:, 1] > eye_y) & (oval[:, 1] < chin_y)
    if not cheek.any():
        return oval
    lab = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB).astype(np.float32)
    inner = centre + 0.5 * (oval - centre)
    skin = np.median(_lab_at(lab, inner), axis=0)
    t = np.linspace(INNER, 1.0, SAMPLES)
    keep = np.ones(len(oval))
    for i in np.nonzero(cheek)[0]:
        ray = oval[i] - centre
        outside = np.median(_lab_at(lab, centre + np.outer(OUTSIDE, ray)), axis=0)
        if np.linalg.norm(outside - skin) < MIN_CONTRAST:
            continue
        c = _lab_at(lab, centre + np.outer(t, ray))
        bg = np.linalg.norm(c - outside, axis=1) < np.linalg.norm(c - skin, axis=1)
        if bg.any():
            keep[i] = t[max(int(np.argmax(bg)) - 1, 0)]
    # smooth along the oval so the outline keeps its shape ([1 2 1] / 4, twice; never outwards)
    k = keep.copy()
    for _ in range(2):
        k = 0.25 * np.roll(k, 1) + 0.5 * k + 0.25 * np.roll(k, -1)
    k = np.where(cheek, np.minimum(k, 1.0), 1.0)
    return np.asarray(centre + k[:, None] * (oval - centre))
