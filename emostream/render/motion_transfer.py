"""FOMM's relative keypoint motion (Siarohin et al. 2019, ``normalize_kp``), for landmarks.

    kp_new = kp_source + (kp_driving − kp_driving_initial) · s,
    s = sqrt(area(hull(kp_source)) / area(hull(kp_driving_initial)))   (movement-scale adaptation)

``kp_driving_initial`` are the neutral rig's keypoints (In), ``kp_driving`` the driven rig's (It),
``kp_source`` the photo's own (T): only the *motion* of the rig is transferred, so the photo's
face shape is kept. With the analytic renderer's identity-fitted rig, In equals T and s = 1; the
formula matters when the rig shape differs from the photo (e.g. a generic rig, or FOMM).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull


def hull_area(kp: np.ndarray) -> float:
    """Area of the 2D convex hull of float[N, 2] points."""
    return float(ConvexHull(np.asarray(kp, np.float64)[:, :2]).volume)


def movement_scale(kp_source: np.ndarray, kp_driving_initial: np.ndarray) -> float:
    return float(np.sqrt(hull_area(kp_source) / hull_area(kp_driving_initial)))


def relative_keypoints(
    kp_source: np.ndarray,
    kp_driving: np.ndarray,
    kp_driving_initial: np.ndarray,
    *,
    adapt_movement_scale: bool = True,
    scale: float | None = None,
) -> np.ndarray:
    """float[N, 2] source, float[..., N, 2] driving, float[N, 2] initial → float[..., N, 2].

    ``scale`` (precomputed ``movement_scale``) skips the hull computation on hot paths."""
    if scale is None:
        scale = movement_scale(kp_source, kp_driving_initial) if adapt_movement_scale else 1.0
    return np.asarray(kp_source + (np.asarray(kp_driving) - kp_driving_initial) * scale)
