"""Glasses stay rigid while the lids move.

The warp drags the skin above the upper lid down with a blink (the lid is drawn from its own
skin). A glasses frame resting on that skin would be dragged and bent with it, and the eye-contour
model then reads the bent frame as a lid edge. Per portrait, ``RigidGlasses.detect`` finds the
frame pixels: in a window around each eye (brow top to lower lid, 30 % of the eye's width beyond
its corners), outside the eye opening and its lash band, the very dark pixels (lightness below
``DARK`` × the median lightness of the skin under the eye) that form a component spanning more than
``SPAN`` × the eye's width (a rim across the whole eye; brows' dark cores, lashes and lid creases
are shorter or lighter), grown into the frame's lighter bevel and highlights next to it, closed
over small holes. The warp source gets
those pixels inpainted (the lid skin it drags down has no frame in it), and each frame the
original frame pixels are pasted back moved by the head only: an affine fit of the driven
keypoints that no expression moves (eye corners, nose bridge) to their source positions. At the
neutral pose that affine is the identity and the paste restores the photo exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from emostream.render import topology as tp

#: Frame pixels are darker than this fraction of the skin's lightness under the eye.
DARK = 0.3
#: A frame component spans at least this multiple of the eye's corner-to-corner width.
SPAN = 1.2
#: The frame's lighter bevel and highlights next to the dark core: pixels within ``GROW`` × the
#: eye-corner distance of it whose lightness is outside ``BEVEL`` × the skin's.
GROW = 0.04
BEVEL = (0.75, 1.2)
#: The search windows reach this far beyond the eye's outer and inner corner (× its width).
REACH = (0.6, 0.3)
#: Scale (× eye distance) below which the skin texture mirrored into the frame's hole is kept.
TEXTURE_SIGMA = 0.015
#: Width of the cross-fade at the left and right ends of the search windows (× eye distance).
EDGE = 0.06
#: Landmarks no blendshape moves, which carry the glasses with the head: eye corners, nose bridge.
ANCHORS = (33, 133, 362, 263, 168, 6)


def _fill(mask: np.ndarray, pts: np.ndarray) -> None:
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)


def _down(dy: float) -> np.ndarray:
    return np.array([0.0, dy])


def frame_mask(crop: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bool[S, S], float32[S, S]): the glasses frame pixels around the eyes (all False without
    glasses), and the search windows' weight: 1 inside, ramping to 0 over the last ``EDGE`` × the
    eye-corner distance at their left and right ends, where the frame runs on beyond them."""
    lm = landmarks[:, :2].astype(np.float64)
    s = crop.shape[0]
    iod = float(np.linalg.norm(lm[tp.EYE_LEFT_CORNERS[1]] - lm[tp.EYE_RIGHT_CORNERS[0]]))
    light = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB)[..., 0].astype(np.float32)
    out = np.zeros((s, s), bool)
    weight = np.zeros((s, s), np.float32)
    xs = np.arange(s, dtype=np.float32)
    for up, lo, brow in (
        (tp.EYE_RIGHT_UPPER, tp.EYE_RIGHT_LOWER, tp.BROW_RIGHT_UPPER),
        (tp.EYE_LEFT_UPPER, tp.EYE_LEFT_LOWER, tp.BROW_LEFT_UPPER),
    ):
        u, lw = lm[list(up)], lm[list(lo)]
        x0, x1 = float(u[:, 0].min()), float(u[:, 0].max())
        w = x1 - x0
        band = np.zeros((s, s), np.uint8)
        _fill(band, np.concatenate([lw + _down(0.05 * iod), (lw + _down(0.12 * iod))[::-1]]))
        if not band.any():
            continue
        skin = float(np.median(light[band > 0]))
        win = np.zeros((s, s), np.uint8)
        wy0, wy1 = float(lm[list(brow), 1].min()), float(lw[:, 1].max())
        # outer corner side: REACH[0] × the eye's width, towards the nose: REACH[1]
        outer_left = abs(lm[up[0], 0] - lm[tp.NOSE_TIP, 0]) > abs(lm[up[-1], 0] - lm[tp.NOSE_TIP, 0])
        left, right = (REACH[0], REACH[1]) if outer_left else (REACH[1], REACH[0])
        wx0, wx1 = round(x0 - left * w), round(x1 + right * w)
        cv2.rectangle(win, (wx0, round(wy0)), (wx1, round(wy1)), 1, -1)
        opening = np.zeros((s, s), np.uint8)
        _fill(opening, np.concatenate([u - _down(0.05 * iod), lw[::-1] + _down(0.01 * iod)]))
        eye = cv2.dilate(opening, np.ones((3, 3), np.uint8))
        dark = ((light < DARK * skin) & (win > 0) & (eye == 0)).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
        rim = np.isin(labels, [i for i in range(1, n) if stats[i, cv2.CC_STAT_WIDTH] >= SPAN * w])
        if not rim.any():
            continue
        # grow the dark core into the rest of the frame next to it: its lighter bevel and
        # highlights (lightness far from the skin's either way), connected to the core
        r = max(1, round(GROW * iod))
        near = cv2.dilate(
            rim.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2)
        )
        off_skin = (light < BEVEL[0] * skin) | (light > BEVEL[1] * skin)
        cand = (rim | ((near > 0) & off_skin)) & (win > 0) & (eye == 0)
        n, labels = cv2.connectedComponents(cand.astype(np.uint8), connectivity=8)
        frame = np.isin(labels, np.unique(labels[rim & (labels > 0)]))
        k = max(3, int(0.04 * iod) | 1)
        closed = cv2.morphologyEx(frame.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
        out |= (closed > 0) & (win > 0) & (eye == 0)
        edge = max(EDGE * iod, 1.0)
        ramp = np.clip(np.minimum(xs - wx0, wx1 - xs) / edge, 0.0, 1.0)
        weight = np.maximum(weight, (win > 0) * ramp[None, :])
    return out, weight


def fill_skin(img: np.ndarray, hole: np.ndarray, *, iod: float) -> np.ndarray:
    """uint8[S, S, 3]: ``img`` with the pixels under ``hole`` (bool[S, S]) replaced by skin: the
    colour of ``cv2.inpaint`` (Telea: smooth, continuous with the border) plus the fine texture of
    the skin just above the hole, mirrored down across its top edge column by column (Telea alone
    leaves a flat smear that shows when a brow raise stretches the skin behind the frame)."""
    smooth = cv2.inpaint(img, hole.astype(np.uint8), 3, cv2.INPAINT_TELEA).astype(np.float32)
    mirror = smooth.copy()
    ys, xs = np.nonzero(hole)
    if len(ys):
        # per pixel, the first row of its column's run of hole pixels (the run's top edge)
        run_top = np.zeros(hole.shape, np.int32)
        for x in np.unique(xs):
            col = hole[:, x]
            starts = np.flatnonzero(col & ~np.concatenate([[False], col[:-1]]))
            idx = np.searchsorted(starts, np.flatnonzero(col), side="right") - 1
            run_top[col, x] = starts[idx]
        src_y = 2 * run_top[ys, xs] - 1 - ys
        ok = src_y >= 0
        ok[ok] = ~hole[src_y[ok], xs[ok]]
        mirror[ys[ok], xs[ok]] = img[src_y[ok], xs[ok]]
    sigma = max(1.0, TEXTURE_SIGMA * iod)
    detail = mirror - cv2.GaussianBlur(mirror, (0, 0), sigma)
    out = smooth + np.where(hole[..., None], detail, 0.0)
    return np.asarray(np.clip(out + 0.5, 0, 255), np.uint8)


@dataclass(frozen=True)
class RigidGlasses:
    source: np.ndarray  # uint8[S, S, 3]: the crop with the frame inpainted (the warp's source)
    crop: np.ndarray  # uint8[S, S, 3]: the photo (frame pixels pasted from it)
    alpha: np.ndarray  # float32[S, S]: 1 on the frame (and wherever ``source`` differs), feathered
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of ``alpha`` > 0 in the crop
    anchors: np.ndarray  # float64[A, 2]: source positions of ANCHORS

    @classmethod
    def detect(cls, crop: np.ndarray, landmarks: np.ndarray) -> RigidGlasses | None:
        mask, weight = frame_mask(crop, landmarks)
        if not mask.any():
            return None
        hard = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        # where the window's weight fades out, the paste cross-fades into the warped photo (the
        # frame runs on beyond the window); only where it is 1 is the frame taken out of the source
        core = hard & (weight >= 1.0)
        source = fill_skin(crop, core, iod=float(np.linalg.norm(landmarks[263, :2] - landmarks[33, :2])))
        alpha = cv2.GaussianBlur(hard.astype(np.float32), (0, 0), 0.8)
        alpha[hard] = 1.0
        alpha *= weight
        alpha[core] = 1.0
        alpha[alpha < 1e-3] = 0.0
        ys, xs = np.nonzero(alpha)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        anchors = landmarks[list(ANCHORS), :2].astype(np.float64)
        return cls(source=source, crop=crop, alpha=alpha, box=box, anchors=anchors)

    def affine(self, kp: np.ndarray) -> np.ndarray:
        """float64[2, 3]: crop px of the source → crop px of the frame, the head's motion as the
        driven anchor keypoints (``kp`` float[468, 2]) say."""
        dst = np.asarray(kp[list(ANCHORS), :2], np.float64)
        a = np.hstack([self.anchors, np.ones((len(ANCHORS), 1))])
        return np.asarray(np.linalg.lstsq(a, dst, rcond=None)[0].T)

    def draw(self, frame: np.ndarray, kp: np.ndarray) -> None:
        """Paste the frame onto ``frame`` (uint8[S, S, 3], in place), moved by the head as the
        driven anchor keypoints (``kp`` float[468, 2]) say."""
        m = self.affine(kp)
        x0, y0, x1, y1 = self.box
        corners = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], np.float64) @ m.T
        s = frame.shape[0]
        dx0, dy0 = np.maximum(np.floor(corners.min(0)).astype(int) - 1, 0)
        dx1, dy1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 2, s)
        if dx1 <= dx0 or dy1 <= dy0:
            return
        m = m.copy()
        m[:, 2] -= [dx0, dy0]  # into the destination box
        inv = cv2.invertAffineTransform(m)
        size = (int(dx1 - dx0), int(dy1 - dy0))
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        rgb = cv2.warpAffine(self.crop, inv, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        al = cv2.warpAffine(self.alpha, inv, size, flags=flags, borderMode=cv2.BORDER_CONSTANT)[..., None]
        roi = frame[dy0:dy1, dx0:dx1]
        roi[:] = (roi * (1 - al) + rgb * al + 0.5).astype(np.uint8)
