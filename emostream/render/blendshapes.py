"""The 52 ARKit blendshapes authored as displacement fields on the 468-vertex face mesh.

Each field follows the FACS meaning of the shape (Apple's ARKit documentation, DESIGN.md's AU
table) and is written for the *left* side only; the right side is its mirror image (x negated,
vertices exchanged through the mirror map), so L/R pairs are exactly symmetric. Units: the head
frame of emostream.render.build_rig (x image-right = the subject's left, y down, z away from the
camera, 1 = the outer-eye-corner distance).

- jawOpen rotates the jaw-weighted vertices (lower lip 1, upper lip 0, smooth on the cheeks)
  about the temporo-mandibular axis; the renderer's lower teeth follow the same rotation.
- eyeBlink moves the upper-lid contour onto the lower lid (0.9 of the gap, the lower lid rises
  the rest) and drags the lid skin above it with a falloff, so the lid is drawn from its own skin.
- Lip shapes (press, roll) thin the lip bodies towards the inner contour in a "lip thickness"
  coordinate, so inner contours never cross (the rig also enforces contact, see rig.py).
- eyeLook* have no vertices to move in this topology (no iris points); eyeLookUp/Down move the
  upper lid a little, as real lids follow vertical gaze; eyeLookIn/Out are all-zero fields.
- Small weights (< 2 %) are cut to exactly zero so every shape is strictly local.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.path import Path as MplPath

from emostream.arkit import BLENDSHAPE_INDEX, NUM_BLENDSHAPES
from emostream.render import topology as tp

#: Jaw rotation at jawOpen = 1 (radians, about the x axis through the jaw pivot).
JAW_ANGLE = 0.34
#: Jaw translation at jawForward = 1 (towards the camera) and at jawLeft/Right = 1 (sideways).
JAW_FORWARD = 0.08
JAW_SIDE = 0.07


@dataclass(frozen=True)
class Authored:
    deltas: np.ndarray  # float32[52, 468, 3]
    jaw_pivot: np.ndarray  # float32[3]
    head_pivot: np.ndarray  # float32[3]
    jaw_angle: float
    jaw_weight: np.ndarray  # float32[468]


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def gauss(v: np.ndarray, center: np.ndarray | tuple[float, float], sigma: float) -> np.ndarray:
    d2 = ((v[:, :2] - np.asarray(center)[:2]) ** 2).sum(1)
    return np.asarray(np.exp(-d2 / (2 * sigma * sigma)))


def _interp_contour(v: np.ndarray, contour: tuple[int, ...], x: np.ndarray, axis: int = 1) -> np.ndarray:
    c = v[list(contour)]
    order = np.argsort(c[:, 0])
    return np.asarray(np.interp(x, c[order, 0], c[order, axis]))


def _inside(v: np.ndarray, outer: tuple[int, ...], inner: tuple[int, ...]) -> np.ndarray:
    poly = np.concatenate([v[list(outer), :2], v[list(inner[::-1]), :2]])
    return np.asarray(MplPath(poly).contains_points(v[:, :2], radius=1e-4))


class _Author:
    def __init__(self, ref: np.ndarray, mirror: np.ndarray) -> None:
        self.v = ref.astype(np.float64)
        self.mirror = mirror
        v = self.v
        self.n = len(v)
        x, y = v[:, 0], v[:, 1]
        lower = _inside(v, tp.LIP_LOWER_OUTER, tp.LIP_LOWER_INNER)
        upper = _inside(v, tp.LIP_UPPER_OUTER, tp.LIP_UPPER_INNER)
        for i in tp.LIP_LOWER_OUTER + tp.LIP_LOWER_INNER:
            lower[i] = True
        for i in tp.LIP_UPPER_OUTER + tp.LIP_UPPER_INNER:
            upper[i] = True
        corners = [tp.MOUTH_CORNER_LEFT, tp.MOUTH_CORNER_RIGHT, tp.INNER_CORNER_LEFT, tp.INNER_CORNER_RIGHT]
        lower[corners] = upper[corners] = False
        self.lower_lip, self.upper_lip = lower, upper
        # thickness coordinate: 0 on the inner contour, 1 on the outer contour
        yi_l = _interp_contour(v, tp.LIP_LOWER_INNER, x)
        yo_l = _interp_contour(v, tp.LIP_LOWER_OUTER, x)
        yi_u = _interp_contour(v, tp.LIP_UPPER_INNER, x)
        yo_u = _interp_contour(v, tp.LIP_UPPER_OUTER, x)
        self.t_lower = np.where(lower, np.clip((y - yi_l) / np.maximum(yo_l - yi_l, 1e-3), 0, 1), 0.0)
        self.t_upper = np.where(upper, np.clip((yi_u - y) / np.maximum(yi_u - yo_u, 1e-3), 0, 1), 0.0)
        self.mouth_half_width = float(v[tp.MOUTH_CORNER_LEFT, 0])
        # lip "profile": 1 at the centre, 0 at the corners
        self.profile = np.clip(1 - (x / self.mouth_half_width) ** 2, 0, 1)
        self.corner_y = float(v[[tp.MOUTH_CORNER_LEFT, tp.MOUTH_CORNER_RIGHT], 1].mean())
        jw = smoothstep(y, self.corner_y - 0.06, self.corner_y + 0.14)
        # lips: the lower lip follows the jaw, the upper lip stays; both meet at 1/2 at the corners
        taper = 0.5 * smoothstep(np.abs(x) / abs(float(v[tp.MOUTH_CORNER_LEFT, 0])), 0.55, 1.0)
        jw = np.where(lower, 1.0 - taper, np.where(upper, taper, jw))
        jw[corners] = 0.5
        self.jaw_weight = jw
        self.jaw_pivot = np.array([0.0, 0.25, 0.6])
        oval = v[list(tp.FACE_OVAL)]
        self.head_pivot = np.array([0.0, oval[:, 1].mean(), oval[:, 2].mean()])
        self.left = x > 1e-3  # the subject's left half (image right)
        # the lower face, below the nose: where mouth shapes may act
        self.lower_face = smoothstep(y, float(v[tp.NOSE_TIP, 1]) + 0.02, float(v[tp.NOSE_TIP, 1]) + 0.12)
        self.side_left = smoothstep(x, -0.06, 0.06)

    # --- helpers ------------------------------------------------------------------------------
    def zeros(self) -> np.ndarray:
        return np.zeros((self.n, 3))

    def jaw_rotation_delta(self, angle: float) -> np.ndarray:
        """The jaw rotation's displacement, evaluated as if every vertex lay at the depth of the
        lower lip (so the vertical motion is monotone down each column and the projected mesh
        cannot fold), tapered towards the jaw angles."""
        c, s = np.cos(angle), np.sin(angle)
        r = self.v - self.jaw_pivot
        r[:, 2] = self.v[tp.LIP_LOWER_MID, 2] - self.jaw_pivot[2]
        rot = np.stack([r[:, 0], c * r[:, 1] - s * r[:, 2], s * r[:, 1] + c * r[:, 2]], 1)
        lateral = 1.0 - 0.6 * smoothstep(np.abs(self.v[:, 0]), 0.4, 0.85)
        return (rot - r) * (self.jaw_weight * lateral)[:, None]

    def eye(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return tp.EYE_LEFT_UPPER, tp.EYE_LEFT_LOWER

    def lid(self, upper_frac: float, lower_frac: float) -> np.ndarray:
        """Move the left upper lid by ``upper_frac`` of the eye gap (+ = down, closing) and the
        lower lid by ``lower_frac`` (+ = up), dragging the skin above/below with a falloff."""
        v, d = self.v, self.zeros()
        up, lo = self.eye()
        x, y = v[:, 0], v[:, 1]
        y_up = _interp_contour(v, up, x)
        y_lo = _interp_contour(v, lo, x)
        gap = np.maximum(y_lo - y_up, 0.0)
        x0, x1 = v[list(up), 0].min(), v[list(up), 0].max()
        across = smoothstep(x, x0, x0 + 0.06) * (1 - smoothstep(x, x1 - 0.06, x1))
        near = self.left & (x > x0 - 0.1) & (x < x1 + 0.1)
        above = np.clip(y_up - y, 0, None)
        below = np.clip(y - y_lo, 0, None)
        on_up = np.isin(np.arange(self.n), up)
        on_lo = np.isin(np.arange(self.n), lo)
        # the lash line just above the contour moves rigidly with it (it is not stretched into a
        # dark band); the lid skin above stretches, fading out below the brow
        lash = 0.035
        w_up = np.where(
            on_up, 1.0, np.where(y <= y_up, np.exp(-((np.clip(above - lash, 0, None) / 0.08) ** 2)), 0.0)
        )
        w_lo = np.where(on_lo, 1.0, np.where(y >= y_lo, np.exp(-((below / 0.06) ** 2)), 0.0))
        w_up = np.where(on_lo, 0.0, w_up)
        w_lo = np.where(on_up, 0.0, w_lo)
        d[:, 1] = near * across * gap * (upper_frac * w_up - lower_frac * w_lo)
        return d

    def corner(self, dx: float, dy: float, dz: float, sigma: float) -> np.ndarray:
        c = self.v[tp.MOUTH_CORNER_LEFT]
        w = gauss(self.v, c, sigma) * self.side_left * self.lower_face
        return w[:, None] * np.array([dx, dy, dz])

    # --- the shapes (left side or central) ----------------------------------------------------
    def shapes(self) -> dict[str, np.ndarray]:
        v = self.v
        x, y = v[:, 0], v[:, 1]
        out: dict[str, np.ndarray] = {}
        out["eyeBlinkLeft"] = self.lid(0.90, 0.05)
        out["eyeSquintLeft"] = self.lid(0.10, 0.30)
        out["eyeWideLeft"] = self.lid(-0.30, -0.05)
        out["eyeLookDownLeft"] = self.lid(0.15, 0.0)
        out["eyeLookUpLeft"] = self.lid(-0.10, 0.0)
        out["eyeLookInLeft"] = self.zeros()
        out["eyeLookOutLeft"] = self.zeros()

        jaw = self.jaw_rotation_delta(JAW_ANGLE)
        out["jawOpen"] = jaw
        d = self.zeros()
        d[:, 2] = -JAW_FORWARD * self.jaw_weight
        out["jawForward"] = d
        d = self.zeros()
        d[:, 0] = JAW_SIDE * self.jaw_weight
        out["jawLeft"] = d
        # mouthClose: the lips close while the jaw stays open (used together with jawOpen)
        d = self.zeros()
        d[self.lower_lip] = -0.8 * jaw[self.lower_lip]
        d[self.upper_lip, 1] = 0.2 * jaw[self.lower_lip, 1].mean() * self.profile[self.upper_lip]
        out["mouthClose"] = d
        # funnel: lips pushed forward and flared into an "O"; corners come in
        d = self.zeros()
        mouth = gauss(v, (0.0, self.corner_y), 0.28) * self.lower_face
        d[:, 0] = -0.12 * x / self.mouth_half_width * mouth
        d[:, 2] = -0.08 * mouth
        d[:, 1] += np.where(self.lower_lip, 0.07 * (0.4 + 0.6 * self.profile), 0.0)
        d[:, 1] += np.where(self.upper_lip, -0.04 * (0.4 + 0.6 * self.profile), 0.0)
        out["mouthFunnel"] = d
        # pucker: corners strongly in, lips forward, lips stay closed
        d = self.zeros()
        pucker = gauss(v, (0.0, self.corner_y), 0.25) * self.lower_face
        d[:, 0] = -0.14 * x / self.mouth_half_width * pucker
        d[:, 2] = -0.10 * pucker
        out["mouthPucker"] = d
        d = self.zeros()
        d[:, 0] = 0.08 * gauss(v, (0.0, self.corner_y + 0.05), 0.22) * self.lower_face
        out["mouthLeft"] = d
        smile = self.corner(0.07, -0.10, 0.03, 0.17)
        cheek = gauss(v, (0.42, 0.32), 0.14) * self.left
        smile[:, 1] += -0.045 * cheek
        smile += self.lid(0.0, 0.12)
        out["mouthSmileLeft"] = smile
        out["mouthFrownLeft"] = self.corner(0.02, 0.08, 0.0, 0.15)
        out["mouthDimpleLeft"] = self.corner(0.05, 0.0, 0.04, 0.12)
        stretch = self.corner(0.07, 0.03, 0.0, 0.18)
        stretch[:, 1] += np.where(self.lower_lip, 0.03 * self.side_left, 0.0)
        out["mouthStretchLeft"] = stretch
        # thickness-based lip shapes (never cross the inner contour)
        th_l = self.t_lower * (
            _interp_contour(v, tp.LIP_LOWER_OUTER, x) - _interp_contour(v, tp.LIP_LOWER_INNER, x)
        )
        th_u = self.t_upper * (
            _interp_contour(v, tp.LIP_UPPER_INNER, x) - _interp_contour(v, tp.LIP_UPPER_OUTER, x)
        )
        d = self.zeros()
        d[:, 1] = -0.7 * th_l
        d[:, 2] = 0.04 * self.t_lower
        out["mouthRollLower"] = d
        d = self.zeros()
        d[:, 1] = 0.7 * th_u
        d[:, 2] = 0.04 * self.t_upper
        out["mouthRollUpper"] = d
        d = self.zeros()
        d[:, 1] = (-0.35 * th_l + 0.35 * th_u) * self.side_left
        d[:, 0] = 0.015 * gauss(v, v[tp.MOUTH_CORNER_LEFT], 0.1) * self.side_left
        out["mouthPressLeft"] = d
        d = self.zeros()
        chin = gauss(v, v[tp.CHIN] + np.array([0, -0.12, 0]), 0.16)
        d[:, 1] = -0.04 * chin - 0.5 * th_l
        d[:, 2] = -0.02 * chin
        out["mouthShrugLower"] = d
        d = self.zeros()
        d[:, 1] = np.where(self.upper_lip, -0.025, 0.0) * (0.5 + 0.5 * self.profile)
        out["mouthShrugUpper"] = d
        d = self.zeros()
        d[:, 1] = np.where(self.lower_lip, 0.07, 0.0) * self.side_left * (0.3 + 0.7 * self.profile)
        out["mouthLowerDownLeft"] = d
        d = self.zeros()
        naso = gauss(v, (0.2, 0.48), 0.08) * self.left
        d[:, 1] = (
            np.where(self.upper_lip, -0.06, 0.0) * self.side_left * (0.3 + 0.7 * self.profile) - 0.02 * naso
        )
        out["mouthUpperUpLeft"] = d
        # brows
        brow_c = v[list(tp.BROW_LEFT_UPPER + tp.BROW_LEFT_LOWER)].mean(0)
        d = self.zeros()
        w = gauss(v, brow_c, 0.2) * self.left * (y < brow_c[1] + 0.2)
        d[:, 1] = 0.06 * w
        d[:, 0] = -0.03 * w * gauss(v, v[tp.BROW_LEFT_UPPER[0]], 0.15)
        d += 0.3 * self.lid(0.12, 0.0)
        out["browDownLeft"] = d
        d = self.zeros()
        inner = gauss(v, v[tp.BROW_LEFT_UPPER[0]], 0.13) + gauss(v, v[tp.BROW_RIGHT_UPPER[-1]], 0.13)
        inner = np.minimum(inner, 1.0) * (y < v[tp.EYE_LEFT_TOP, 1] - 0.04)
        d[:, 1] = -0.09 * inner
        out["browInnerUp"] = d
        d = self.zeros()
        w = gauss(v, v[tp.BROW_LEFT_UPPER[-1]], 0.16) * self.left * (y < v[tp.EYE_LEFT_TOP, 1] - 0.03)
        d[:, 1] = -0.08 * w
        out["browOuterUpLeft"] = d
        # cheeks and nose
        d = self.zeros()
        for sx in (1.0, -1.0):
            w = gauss(v, (0.42 * sx, 0.58), 0.18) * self.lower_face
            d[:, 0] += 0.06 * sx * w
            d[:, 2] += -0.04 * w
        out["cheekPuff"] = d
        d = self.zeros()
        d[:, 1] = -0.035 * gauss(v, (0.42, 0.30), 0.13) * self.left
        d += self.lid(0.0, 0.10)
        out["cheekSquintLeft"] = d
        d = self.zeros()
        alar = gauss(v, v[tp.NOSE_ALAR_LEFT], 0.07) * self.side_left
        d[:, 1] = -0.04 * alar - 0.015 * gauss(v, (0.15, 0.5), 0.06) * self.left
        d[:, 0] = 0.01 * alar
        d[:, 1] += 0.02 * gauss(v, v[tp.BROW_LEFT_UPPER[0]], 0.08) * self.left
        out["noseSneerLeft"] = d
        d = self.zeros()
        d[:, 1] = np.where(self.lower_lip, 0.03, 0.0) * self.profile
        d[:, 2] = np.where(self.lower_lip, -0.02, 0.0) * self.profile
        out["tongueOut"] = d
        return out


def _mirror_field(d: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    m = d[mirror].copy()
    m[:, 0] *= -1
    return m


def author_blendshapes(ref: np.ndarray, mirror: np.ndarray) -> Authored:
    a = _Author(ref, mirror)
    shapes = a.shapes()
    deltas = np.zeros((NUM_BLENDSHAPES, len(ref), 3))
    for name, field in shapes.items():
        deltas[BLENDSHAPE_INDEX[name]] = field
        for lname, rname in (("Left", "Right"),):
            if name.endswith(lname) and name not in ("mouthLeft", "jawLeft"):
                deltas[BLENDSHAPE_INDEX[name[: -len(lname)] + rname]] = _mirror_field(field, mirror)
    deltas[BLENDSHAPE_INDEX["mouthRight"]] = _mirror_field(shapes["mouthLeft"], mirror)
    deltas[BLENDSHAPE_INDEX["jawRight"]] = _mirror_field(shapes["jawLeft"], mirror)
    # strict locality: cut negligible motion to exactly zero
    mag = np.linalg.norm(deltas, axis=2, keepdims=True)
    deltas = np.where(mag < 2e-3, 0.0, deltas)
    return Authored(
        deltas=deltas.astype(np.float32),
        jaw_pivot=a.jaw_pivot.astype(np.float32),
        head_pivot=a.head_pivot.astype(np.float32),
        jaw_angle=JAW_ANGLE,
        jaw_weight=a.jaw_weight.astype(np.float32),
    )
