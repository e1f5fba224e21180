"""Faces of known yaw: a portrait's own face, texture-mapped onto its 3D landmarks and turned.

The check for the source-yaw estimate (``face.estimate_yaw_deg``) needs photos whose yaw is known
exactly. ``turned_face`` makes them from any frontal portrait: the rig's reference shape is fitted
to the photo's 468 3D landmarks (similarity, Umeyama), which gives the face's own shape in the
head frame, frontalised; that shape is rotated about the vertical axis by the requested yaw (and
optionally nodded by a pitch; roll 0) and projected orthographically. Every mesh triangle (face
mesh plus the eye and mouth openings) is filled with its own pixels from the photo by an affine
warp, far triangles first (painter's order), back-facing ones culled, so the far cheek is hidden
behind the nose as in a real turned head. The result is upright, centred in a square on a flat
grey background (the photo's hair and ears are not part of the mesh). Deterministic; ~0.1 s per
face on one core.
"""

from __future__ import annotations

import cv2
import numpy as np

from emostream.render.rig import load_rig, rotation, umeyama
from emostream.render.warp import opening_pairs, strip_triangles

BACKGROUND = (128, 128, 128)
#: Face width (outer eye corners) in the output, as a fraction of its side.
EYE_SPAN = 0.3


def frontal_shape(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """(float64[468, 3] the face's own shape in the head frame (unit: the rig reference's),
    the photo's scale in px per unit)."""
    ref = load_rig().reference.astype(np.float64)
    s, r, t = umeyama(ref, landmarks.astype(np.float64))
    return ((landmarks.astype(np.float64) - t) @ r) / s, s


def _triangles() -> np.ndarray:
    fills = [t for u, lo in opening_pairs() for t in strip_triangles(u, lo)]
    return np.concatenate([load_rig().triangles.astype(np.int64), np.array(fills, np.int64)])


def _areas(q: np.ndarray) -> np.ndarray:
    """Twice the signed areas of triangles float[T, 3, 2]."""
    e1, e2 = q[:, 1] - q[:, 0], q[:, 2] - q[:, 0]
    return np.asarray(e1[:, 0] * e2[:, 1] - e2[:, 0] * e1[:, 1])


def turned_face(
    image: np.ndarray, landmarks: np.ndarray, yaw_deg: float, size: int = 384, *, pitch_deg: float = 0.0
) -> np.ndarray:
    """uint8[size, size, 3]: the face of ``image`` (landmarks float[468, 3] in its px) turned to
    ``yaw_deg`` (> 0: towards the image's right) and nodded by ``pitch_deg`` (> 0: down), the
    rig's conventions (``R = R_y R_x``)."""
    v, _ = frontal_shape(landmarks)
    piv = load_rig().head_pivot.astype(np.float64)
    yaw = np.radians(yaw_deg)
    rot = rotation(np.array([yaw]), np.array([np.radians(pitch_deg)]), np.array([0.0]))[0]
    p = piv + (v - piv) @ rot.T
    k = EYE_SPAN * size  # the reference's unit is the outer-eye-corner distance
    dst = np.empty((len(p), 3))
    dst[:, :2] = (p[:, :2] - p[:, :2].mean(0)) * k + size / 2
    dst[:, 2] = p[:, 2]
    src = landmarks[:, :2].astype(np.float64)
    tris = _triangles()
    out = np.full((size, size, 3), BACKGROUND, np.uint8)
    d2 = dst[tris, :2]
    s2 = src[tris]
    facing = np.sign(_areas(d2)) == np.sign(_areas(s2))  # back-facing triangles flip orientation
    order = np.argsort(-dst[tris, 2].mean(1))  # far first (z points away from the camera)
    for i in order:
        if not facing[i] or abs(_areas(d2[i : i + 1])[0]) < 1e-3:
            continue
        x0, y0 = np.floor(d2[i].min(0)).astype(int)
        x1, y1 = np.ceil(d2[i].max(0)).astype(int) + 1
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
        if x1 <= x0 or y1 <= y0:
            continue
        m = cv2.getAffineTransform(s2[i].astype(np.float32), (d2[i] - [x0, y0]).astype(np.float32))
        patch = cv2.warpAffine(image, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(mask, np.round((d2[i] - [x0, y0]) * 16).astype(np.int32), 255, cv2.LINE_AA, 4)
        # grow by a pixel so that neighbouring triangles leave no seams
        mask = cv2.dilate(mask, np.ones((2, 2), np.uint8))
        a = (mask.astype(np.float32) / 255.0)[..., None]
        roi = out[y0:y1, x0:x1]
        roi[:] = (roi * (1 - a) + patch * a + 0.5).astype(np.uint8)
    return out
