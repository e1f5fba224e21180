"""The ARKit rig: 52 blendshape weights + head yaw/pitch/roll → 3D landmarks → image keypoints.

The rig asset (``emostream/assets/rig/rig.npz``, built by ``python -m emostream.render.build_rig``)
holds the topology and the 52 displacement fields in the *head frame* (x image-right, y down,
z away from the camera, unit = outer-eye-corner distance).

Fitting to a photo: the photo's 3D landmarks L (crop px) are explained by a weak-perspective
camera, ``L = s · R · V + t`` (similarity, Umeyama on all 468 points), with the *identity shape*
``V = Rᵀ (L − t) / s`` — exact, so the neutral rig reproduces the photo's own landmarks. The
camera's R is the photo's own head pose.

Driving: ``V' = V + Σ w_i Δ_i``, lip and eyelid contours kept from crossing (contact), then the
head rotation about the head pivot (mean of the face oval, i.e. roughly the ear line):
``V'' = p + R_head (V' − p)``, ``R_head = R_y(yaw) · R_x(pitch) · R_z(roll)``; finally the camera.

Head-pose conventions (radians, 0 = the photo's pose): yaw > 0 turns the face towards the image's
right; pitch > 0 nods down; roll > 0 tilts clockwise in the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from emostream.arkit import BLENDSHAPE_INDEX, HEAD_SLICE, MOTION_DIM, NUM_BLENDSHAPES
from emostream.errors import DependencyError
from emostream.render import topology as tp
from emostream.render.blendshapes import JAW_FORWARD, JAW_SIDE

RIG_PATH = Path(__file__).resolve().parents[1] / "assets" / "rig" / "rig.npz"

LIP_PAIRS = np.array([tp.LIP_UPPER_INNER[1:-1], tp.LIP_LOWER_INNER[1:-1]])  # [2, 9]
EYE_PAIRS = np.array(
    [tp.EYE_RIGHT_UPPER[1:-1] + tp.EYE_LEFT_UPPER[1:-1], tp.EYE_RIGHT_LOWER[1:-1] + tp.EYE_LEFT_LOWER[1:-1]]
)  # [2, 14]
#: Smallest gap (head-frame units) kept between closing lip / eyelid contours: the warp's
#: opening triangles then never collapse completely (the lash line stays a ~1 px seam).
MIN_GAP_LIPS = 0.004
MIN_GAP_EYES = 0.015


@dataclass(frozen=True)
class RigData:
    reference: np.ndarray  # float32[468, 3]
    triangles: np.ndarray  # int32[T, 3]
    mirror: np.ndarray  # int32[468]
    deltas: np.ndarray  # float32[52, 468, 3]
    jaw_pivot: np.ndarray  # float32[3]
    head_pivot: np.ndarray  # float32[3]
    jaw_angle: float
    jaw_weight: np.ndarray  # float32[468]


@cache
def load_rig(path: Path = RIG_PATH) -> RigData:
    if not path.is_file():
        raise DependencyError(
            f"rig asset {path} is missing; build it with: python -m emostream.render.build_rig"
        )
    with np.load(path) as z:
        data = RigData(
            reference=z["reference"], triangles=z["triangles"], mirror=z["mirror"], deltas=z["deltas"],
            jaw_pivot=z["jaw_pivot"], head_pivot=z["head_pivot"], jaw_angle=float(z["jaw_angle"]),
            jaw_weight=z["jaw_weight"],
        )  # fmt: skip
    if data.deltas.shape != (NUM_BLENDSHAPES, 468, 3) or data.reference.shape != (468, 3):
        raise DependencyError(f"rig asset {path} has unexpected shapes; rebuild it (build_rig)")
    return data


def rotation(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """float64[B, 3, 3] = R_y(yaw) R_x(pitch) R_z(roll) in the head frame (see module doc)."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    one, zero = np.ones_like(yaw), np.zeros_like(yaw)
    ry = np.stack(
        [np.stack([cy, zero, -sy], -1), np.stack([zero, one, zero], -1), np.stack([sy, zero, cy], -1)], -2
    )
    rx = np.stack(
        [np.stack([one, zero, zero], -1), np.stack([zero, cp, -sp], -1), np.stack([zero, sp, cp], -1)], -2
    )
    rz = np.stack(
        [np.stack([cr, -sr, zero], -1), np.stack([sr, cr, zero], -1), np.stack([zero, zero, one], -1)], -2
    )
    return np.asarray(ry @ rx @ rz)


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) minimising |dst - (s R src + t)|² (Umeyama 1991), proper rotation."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    r = u @ np.diag(sign) @ vt
    s = float((d * sign).sum() / (a**2).sum(1).mean())
    t = mu_d - s * r @ mu_s
    return s, r, t


class Rig:
    """A rig fitted to one photo's landmarks (crop px). ``evaluate`` is vectorised over frames."""

    def __init__(self, landmarks: np.ndarray, data: RigData | None = None) -> None:
        self.data = data or load_rig()
        lm = landmarks.astype(np.float64)
        self.scale, self.rot, self.trans = umeyama(self.data.reference.astype(np.float64), lm)
        self.identity = ((lm - self.trans) @ self.rot) / self.scale  # head frame, exact at neutral
        self.deltas = self._retarget_lids(self.data.deltas.astype(np.float64)).reshape(NUM_BLENDSHAPES, -1)
        gaps = lambda pairs: self.identity[pairs[1], 1] - self.identity[pairs[0], 1]  # noqa: E731
        self._lip_floor = np.minimum(gaps(LIP_PAIRS), MIN_GAP_LIPS)
        self._eye_floor = np.minimum(gaps(EYE_PAIRS), MIN_GAP_EYES)

    def _retarget_lids(self, deltas: np.ndarray) -> np.ndarray:
        """Lid shapes are authored for the reference eye; scale their vertical motion around each
        eye by this face's eye opening ÷ the reference's, so a blink closes any eye."""
        ref = self.data.reference
        for blink, top, bottom in (
            ("eyeBlinkLeft", tp.EYE_LEFT_TOP, tp.EYE_LEFT_BOTTOM),
            ("eyeBlinkRight", tp.EYE_RIGHT_TOP, tp.EYE_RIGHT_BOTTOM),
        ):
            ratio = (self.identity[bottom, 1] - self.identity[top, 1]) / (ref[bottom, 1] - ref[top, 1])
            lid = np.linalg.norm(deltas[BLENDSHAPE_INDEX[blink]], axis=1) > 0
            deltas[:, lid, 1] *= float(np.clip(ratio, 0.3, 3.0))
        return deltas

    def shape(self, motion: np.ndarray) -> np.ndarray:
        """float64[B, 468, 3]: the deformed identity in the head frame, before head rotation."""
        w = np.array(motion, np.float64)[:, :NUM_BLENDSHAPES]
        # mouthClose closes lips the jaw opened; alone it would push the lower lip through the upper
        jaw, close = BLENDSHAPE_INDEX["jawOpen"], BLENDSHAPE_INDEX["mouthClose"]
        w[:, close] = np.minimum(w[:, close], w[:, jaw])
        v = self.identity[None] + (w @ self.deltas).reshape(len(w), -1, 3)
        for pairs, floor in ((LIP_PAIRS, self._lip_floor), (EYE_PAIRS, self._eye_floor)):
            up, lo = v[:, pairs[0], 1], v[:, pairs[1], 1]
            short = (lo - up) < floor
            mid = (up + lo) / 2
            v[:, pairs[0], 1] = np.where(short, mid - floor / 2, up)
            v[:, pairs[1], 1] = np.where(short, mid + floor / 2, lo)
        return v

    def head_rotation(self, motion: np.ndarray) -> np.ndarray:
        hp = np.asarray(motion, np.float64)[:, HEAD_SLICE]
        return rotation(hp[:, 0], hp[:, 1], hp[:, 2])

    def to_camera(self, v: np.ndarray, motion: np.ndarray) -> np.ndarray:
        """Head-frame points float[B, N, 3] → crop px (x, y) and depth z, after head rotation."""
        p = self.data.head_pivot.astype(np.float64)
        rh = self.head_rotation(motion)
        v = p + np.einsum("bij,bnj->bni", rh, v - p)
        return np.asarray(self.scale * v @ self.rot.T + self.trans)

    def evaluate(self, motion: np.ndarray) -> np.ndarray:
        """float[B, 55] → float64[B, 468, 3] landmarks in crop px (x, y) with depth z."""
        motion = np.atleast_2d(np.asarray(motion, np.float64))
        if motion.shape[1] != MOTION_DIM:
            raise ValueError(f"motion must be [B, {MOTION_DIM}], got {motion.shape}")
        return self.to_camera(self.shape(motion), motion)

    def jaw_transform(self, motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The lower jaw's rigid motion in the head frame: (R float64[B,3,3], t float64[B,3])
        with x_jaw = R x + t, from jawOpen (rotation about the jaw pivot), jawForward, jawLeft/Right."""
        motion = np.atleast_2d(np.asarray(motion, np.float64))
        ang = motion[:, BLENDSHAPE_INDEX["jawOpen"]] * self.data.jaw_angle
        c, s = np.cos(ang), np.sin(ang)
        one, zero = np.ones_like(ang), np.zeros_like(ang)
        r = np.stack(
            [np.stack([one, zero, zero], -1), np.stack([zero, c, -s], -1), np.stack([zero, s, c], -1)], -2
        )
        piv = self.data.jaw_pivot.astype(np.float64)
        t = piv - np.einsum("bij,j->bi", r, piv)
        t[:, 2] += -JAW_FORWARD * motion[:, BLENDSHAPE_INDEX["jawForward"]]
        t[:, 0] += JAW_SIDE * (
            motion[:, BLENDSHAPE_INDEX["jawLeft"]] - motion[:, BLENDSHAPE_INDEX["jawRight"]]
        )
        return r, t
