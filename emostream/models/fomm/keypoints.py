"""Keypoints (value + jacobian) and relative motion transfer (official ``normalize_kp``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import ConvexHull, QhullError

from emostream.models.fomm.blocks import inverse2x2
from emostream.models.fomm.config import NormalizationConfig


@dataclass(frozen=True)
class Keypoints:
    """value (B, K, 2) in (x, y) on the heatmap grid; jacobian (B, K, 2, 2) or None."""

    value: torch.Tensor
    jacobian: torch.Tensor | None = None

    def __getitem__(self, idx: slice | int) -> Keypoints:
        sl = slice(idx, idx + 1) if isinstance(idx, int) else idx
        return Keypoints(self.value[sl], None if self.jacobian is None else self.jacobian[sl])

    @staticmethod
    def cat(kps: list[Keypoints]) -> Keypoints:
        jac = None if kps[0].jacobian is None else torch.cat([k.jacobian for k in kps])  # type: ignore[misc]
        return Keypoints(torch.cat([k.value for k in kps]), jac)


def hull_area(points: np.ndarray) -> float:
    """2-D convex hull area of (K, 2) points (scipy's ConvexHull(...).volume); 0 if degenerate."""
    try:
        return float(ConvexHull(points.astype(np.float64)).volume)
    except (QhullError, ValueError):
        return 0.0


def movement_scale(kp_source: Keypoints, kp_driving_initial: Keypoints, adapt: bool) -> float:
    """sqrt(area(hull(kp_source[0]))) / sqrt(area(hull(kp_driving_initial[0]))), or 1."""
    if not adapt:
        return 1.0
    sa = hull_area(kp_source.value[0].detach().cpu().numpy())
    da = hull_area(kp_driving_initial.value[0].detach().cpu().numpy())
    if da <= 0.0:
        return 1.0
    return float(np.sqrt(sa) / np.sqrt(da))


def normalize_kp(
    kp_source: Keypoints,
    kp_driving: Keypoints,
    kp_driving_initial: Keypoints,
    norm: NormalizationConfig,
    scale: float | None = None,
) -> Keypoints:
    """Relative motion: value = (p_d - p_d0) * s + p_s; jacobian = (J_d J_d0^-1) J_s.

    ``scale`` may be passed precomputed (it depends only on the source and the initial frame)."""
    if scale is None:
        scale = movement_scale(kp_source, kp_driving_initial, norm.adapt_movement_scale)
    if not norm.use_relative_movement:
        return kp_driving
    value = (kp_driving.value - kp_driving_initial.value) * scale + kp_source.value
    jac = kp_driving.jacobian
    if norm.use_relative_jacobian and jac is not None:
        assert kp_driving_initial.jacobian is not None and kp_source.jacobian is not None
        diff = torch.matmul(jac, inverse2x2(kp_driving_initial.jacobian))
        jac = torch.matmul(diff, kp_source.jacobian)
    return Keypoints(value, jac)
