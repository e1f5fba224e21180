"""The inner mouth: the photo's own (or a procedural) interior, carried by skull and jaw.

Geometry lives in the rig's head frame, so it moves only as bones do:
- **upper teeth**, gums and the cavity are fixed to the skull: they move with the head pose only,
  never with the lips (an upper-lip raise uncovers them, it does not drag them);
- **lower teeth** move with the jaw's rigid transform (jawOpen rotation about the jaw pivot,
  jawForward / jawLeft / jawRight); the **tongue** too, pushed forward and up by tongueOut.

The interior's pixels are textures built once per portrait (mouth_layers.py): the photo's own
teeth when the photo shows its mouth open, otherwise procedural teeth in the photo's own tones,
sharpness and grain. Per frame each layer is moved by one affine map (the least-squares fit of
its carrier's anchor points from their neutral to their driven projection; the rig's camera is
weak-perspective, so this is exact for points in a plane) and composited back to front. Light
that depends on the lips is applied per frame on top of the procedural interior: the upper
lip's shadow on the teeth under it and the darker corners of the opening. The composite is
masked by the driven inner-lip polygon (softened to the photo's sharpness), with facial hair over
the lips kept in front (facial_hair.py), and blended in by how far the lips are from their
opening in the photo, so the photo's own mouth shows at neutral. Nothing depends on the frame
index or on random numbers drawn per frame: a pose gives the same pixels every time.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from emostream.arkit import BLENDSHAPE_INDEX, neutral_vector
from emostream.render import topology as tp
from emostream.render.facial_hair import LipHair
from emostream.render.mouth_layers import (
    CROWN,
    TOOTH_EDGES,
    Layer,
    MouthBox,
    Tones,
    arch,
    photo_layers,
    photo_mouth_open,
    procedural_layers,
)
from emostream.render.photo_look import PhotoLook
from emostream.render.rig import Rig

_SHIFT = 4
#: Lips must be this many pixels further from their photo opening for the interior to be fully drawn.
OPEN_RAMP_PX = (0.5, 3.0)
#: The upper lip's shadow on the teeth: depth and fall-off (× eye-corner distance).
LIP_SHADOW, LIP_SHADOW_LEN = 0.35, 0.035
#: Darkening towards the corners of the opening (at the corners; quadratic from the middle).
CORNER_SHADOW = 0.35
#: Darkening of the whole opening behind rounded lips (at mouthFunnel or mouthPucker = 1).
ROUNDED_SHADOW = 0.45
#: Where tongueOut moves the tongue (head-frame units at tongueOut = 1): up (−y), forward (−z).
TONGUE_OUT = np.array([0.0, -0.05, -0.2])


class InnerMouth:
    def __init__(
        self, rig: Rig, crop: np.ndarray, landmarks: np.ndarray, look: PhotoLook | None = None
    ) -> None:
        self.rig = rig
        self.look = look or PhotoLook.measure(crop, landmarks)
        v = rig.identity
        up_mid, lo_mid = v[tp.LIP_UPPER_MID], v[tp.LIP_LOWER_MID]
        closed_mid = (up_mid[1] + lo_mid[1]) / 2
        z_front = float(min(up_mid[2], lo_mid[2])) + 0.05
        # upper incisal edge just below the closed-lip line; the lower edge sits behind it (overbite)
        #: Whether the photo's own open mouth is used (else a procedural interior).
        self.from_photo = photo_mouth_open(crop, landmarks)
        y_up, y_lo = closed_mid + 0.03, closed_mid + 0.012
        if self.from_photo:  # procedural lower teeth only behind the photo's lower lip
            y_lo = lo_mid[1] - 0.008
        xs = np.linspace(TOOTH_EDGES[0], TOOTH_EDGES[-1], 41)
        self.upper_edge = arch(xs, y_up, z_front)
        self.upper_gum = arch(xs, y_up - CROWN[0], z_front + 0.01)
        self.lower_edge = arch(xs, y_lo, z_front + 0.02)
        self.lower_gum = arch(xs, y_lo + CROWN[1], z_front + 0.03)
        self.tongue_center = np.array([0.0, y_lo + 0.005, z_front + 0.16])
        self.mouth_center = np.array([0.0, closed_mid + 0.06, z_front])
        ang = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        self.tongue_ring = self.tongue_center + np.stack(
            [0.2 * np.cos(ang), 0.045 * np.sin(ang), 0 * ang], -1
        )
        # anchors: a 3 × 3 grid over the front of the mouth carries each layer
        gx, gy = np.meshgrid([-0.3, 0.0, 0.3], [y_up - 0.15, closed_mid, y_lo + 0.2])
        self.anchors = arch(gx.ravel(), 0.0, z_front)
        self.anchors[:, 1] = gy.ravel()
        neutral = neutral_vector().astype(np.float64)
        anchor_src = self._project(self.anchors, neutral, jaw=False)[:, :2]
        #: Least-squares affine fit from the anchors' neutral projection: A = (fit @ dst)ᵀ.
        self._fit = np.linalg.pinv(np.hstack([anchor_src, np.ones((len(anchor_src), 1))]))
        self.box = self._box(neutral, crop.shape[0])
        self.hair = LipHair.detect(crop, landmarks, self.look)
        self.tones = Tones.from_look(self.look)
        lm = landmarks[:, :2]
        self.src_gap = float(np.linalg.norm(lm[tp.LIP_LOWER_MID] - lm[tp.LIP_UPPER_MID]))
        if self.from_photo:
            own, cavity = photo_layers(self.box, crop, landmarks, self.look, self.tones)
            # the procedural cavity (in the hue of the photo's own darkest interior), tongue and
            # lower teeth behind them
            back = self._procedural(neutral, replace(self.tones, cavity=cavity))[:3]
            self.layers: list[Layer] = [*back, *own]
        else:
            self.layers = self._procedural(neutral, self.tones)

    def _procedural(self, neutral: np.ndarray, tones: Tones) -> list[Layer]:
        proj = {
            name: self._project(pts, neutral, jaw=False)[:, :2]
            for name, pts in (
                ("upper_edge", self.upper_edge), ("upper_gum", self.upper_gum),
                ("lower_edge", self.lower_edge), ("lower_gum", self.lower_gum),
                ("tongue", self.tongue_ring), ("centre", self.mouth_center[None]),
            )
        }  # fmt: skip
        return procedural_layers(self.box, proj, self.look, tones, self.rig.scale)

    def _box(self, neutral: np.ndarray, size: int) -> MouthBox:
        """The layers' box in the source crop: the arches, the lips and a jaw opened fully."""
        open_jaw = neutral.copy()
        open_jaw[BLENDSHAPE_INDEX["jawOpen"]] = 1.0
        pts = np.concatenate(
            [
                self._project(
                    np.concatenate([self.upper_gum, self.lower_gum, self.tongue_ring]), neutral, False
                ),
                self._project(self.lower_gum, open_jaw, True),
                self.rig.to_camera(self.rig.identity[None], neutral[None])[0][
                    list(tp.LIP_UPPER_OUTER + tp.LIP_LOWER_OUTER)
                ],
            ]
        )[:, :2]
        lo, hi = pts.min(0), pts.max(0)
        m = 0.15 * (hi - lo)
        x0, y0 = np.floor(lo - m).astype(int)
        x1, y1 = np.ceil(hi + m).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
        return MouthBox(int(x0), int(y0), int(max(x1 - x0, 2)), int(max(y1 - y0, 2)))

    def _project(self, pts: np.ndarray, motion: np.ndarray, jaw: bool) -> np.ndarray:
        p = pts.reshape(1, -1, 3)
        if jaw:
            r, t = self.rig.jaw_transform(motion[None])
            p = np.einsum("bij,bnj->bni", r, p) + t[:, None]
        return np.asarray(self.rig.to_camera(p, motion[None])[0].reshape(*pts.shape[:-1], 3))

    def carrier_affines(self, motion: np.ndarray) -> dict[str, np.ndarray]:
        """Per carrier (skull, jaw, tongue), float64[2, 3]: source crop px → driven crop px."""
        r, t = self.rig.jaw_transform(motion[None])
        jaw = self.anchors @ r[0].T + t[0]
        tongue = (self.anchors + TONGUE_OUT * float(motion[BLENDSHAPE_INDEX["tongueOut"]])) @ r[0].T + t[0]
        pts = np.concatenate([self.anchors, jaw, tongue])[None]
        dst = self.rig.to_camera(pts, motion[None])[0, :, :2].reshape(3, len(self.anchors), 2)
        return {name: (self._fit @ d).T for name, d in zip(("skull", "jaw", "tongue"), dst, strict=True)}

    def interior(self, motion: np.ndarray, off: np.ndarray, w: int, h: int) -> np.ndarray:
        """float32[h, w, 3]: the unlit interior (all layers, back to front) over the frame box
        whose top-left corner is at ``off`` (crop px)."""
        out = np.zeros((h, w, 3), np.float32)
        order = self.layers
        if float(motion[BLENDSHAPE_INDEX["tongueOut"]]) > 0.3:  # the tongue comes out between the teeth
            order = [x for x in self.layers if x.carrier != "tongue"] + [
                x for x in self.layers if x.carrier == "tongue"
            ]
        affines = self.carrier_affines(motion)
        for layer in order:
            a = affines[layer.carrier].copy()
            a[:, 2] += a[:, :2] @ self.box.origin - off
            lay = cv2.warpAffine(
                layer.rgba, a, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
            )
            out = np.asarray(lay[..., :3] + out * (1.0 - lay[..., 3:]), np.float32)
        return out

    def draw(
        self, frame: np.ndarray, motion: np.ndarray, upper_inner: np.ndarray, lower_inner: np.ndarray
    ) -> None:
        """Composite the inner mouth into ``frame`` (uint8[S, S, 3], in place).

        ``upper_inner`` / ``lower_inner``: float[11, 2] driven inner-lip contours (crop px)."""
        gap = float(np.linalg.norm(lower_inner[5] - upper_inner[5]))
        open_w = float(
            np.clip((abs(gap - self.src_gap) - OPEN_RAMP_PX[0]) / (OPEN_RAMP_PX[1] - OPEN_RAMP_PX[0]), 0, 1)
        )
        if not self.from_photo and gap < self.src_gap:
            open_w = 0.0
        if open_w <= 0.0:
            return
        poly = np.concatenate([upper_inner, lower_inner[::-1]])
        s = frame.shape[0]
        x0, y0 = np.floor(poly.min(0)).astype(int) - 3
        x1, y1 = np.ceil(poly.max(0)).astype(int) + 4
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, s), min(y1, s)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        off = np.array([x0, y0], np.float64)
        h, w = y1 - y0, x1 - x0
        roi = self.interior(motion, off, w, h)
        if not self.from_photo:
            roi *= self._lip_light(upper_inner - off, lower_inner - off, w, h)[..., None]
            # rounded, pushed-out lips ("oo") shade the whole opening behind them
            rounded = max(float(motion[BLENDSHAPE_INDEX[k]]) for k in ("mouthFunnel", "mouthPucker"))
            roi *= 1.0 - ROUNDED_SHADOW * rounded
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(
            mask, [np.round((poly - off) * (1 << _SHIFT)).astype(np.int32)], 255, cv2.LINE_AA, _SHIFT
        )
        a = mask.astype(np.float32) / 255.0
        if self.look.blur > 0.6:
            a = np.asarray(
                cv2.GaussianBlur(a, (0, 0), float(np.sqrt(self.look.blur**2 - 0.5**2))), np.float32
            )
        a *= open_w
        cover = self.hair.cover(upper_inner - off, lower_inner - off, w, h)
        if cover is not None:  # hair hanging over the lips stays in front
            a *= 1.0 - cover
        dst = frame[y0:y1, x0:x1]
        dst[:] = np.clip(dst * (1 - a[..., None]) + roi * a[..., None] + 0.5, 0, 255).astype(np.uint8)

    def _lip_light(self, upper: np.ndarray, lower: np.ndarray, w: int, h: int) -> np.ndarray:
        """float32[h, w]: the upper lip's shadow and the darker corners of the opening."""
        xs = np.arange(w, dtype=np.float64)
        o = np.argsort(upper[:, 0])
        y_up = np.interp(xs, upper[o, 0], upper[o, 1])
        ys = np.arange(h, dtype=np.float64)[:, None]
        below = np.maximum(ys - y_up[None, :], 0.0)
        shade = 1.0 - LIP_SHADOW * np.exp(-below / max(LIP_SHADOW_LEN * self.look.iod, 1.0))
        left, right = upper[0, 0], upper[-1, 0]
        u = np.clip(np.abs(xs - (left + right) / 2) / max(abs(right - left) / 2, 1.0), 0, 1)
        shade *= (1.0 - CORNER_SHADOW * u**2)[None, :]
        return np.asarray(shade, np.float32)
