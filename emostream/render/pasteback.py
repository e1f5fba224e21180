"""Put the animated face back into the whole photo at the photo's own resolution.

The analytic renderer's warp is a backward map on the face crop (``size`` px). Its displacement
(map − identity, zero outside the warp's static ring) is carried into the output frame and the
*full-resolution* photo is re-sampled with it (:meth:`PasteBack.warp`): the face moves with
the photo's own detail and sharpness, so no low-resolution copy is laid over the still photo
(no double edges where the head moves), and the seam is invisible by construction because the
displacement falls continuously to exactly zero at the static ring, beyond which the photo is
untouched. What the renderer *draws* on top of the warp (mouth interior, closed lids,
lids) comes back as a layer from the crop: it replaces the warped photo where drawn opaque and is
added as a change where drawn faintly. A glasses frame (render/glasses.py) is handled at full
resolution too: taken out of the warp's source, and the photo's own frame pixels pasted back
moved by the head only.

At rest the displacement and the layer are zero and the frame is the photo, bit for bit. Only the
face's bounding box (the ring's) is touched per frame, with masks and grids precomputed.

:meth:`PasteBack.__call__` serves renderers without a map (FOMM): it adds the crop's change
against the source crop, mapped back under the same mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from emostream.render.framing import compose, extend_photo
from emostream.render.glasses import RigidGlasses

#: Drawn change at which the layer fully replaces the warped photo (0–255).
_OPAQUE = 24.0


@dataclass(frozen=True)
class Layer:
    """What the renderer drew over the warped crop: ``after`` pixels and the pre-drawing ones."""

    before: np.ndarray  # uint8[s, s, 3]
    after: np.ndarray  # uint8[s, s, 3]


class PasteBack:
    """The frame maker of one portrait: output photo (uint8[H, W, 3]), affine output px → crop
    px, the crop's ring mask (float32[s, s], 1 where the warp may move pixels), the source crop,
    and the rigid glasses found on it (if any)."""

    def __init__(
        self,
        image: np.ndarray,
        out_to_crop: np.ndarray,
        ring_mask: np.ndarray,
        source_crop: np.ndarray,
        glasses: RigidGlasses | None = None,
    ) -> None:
        self.image = image
        self.source_crop = source_crop.astype(np.float32)
        h, w = image.shape[:2]
        s = ring_mask.shape[0]
        self.crop_size = s
        inv = cv2.invertAffineTransform(out_to_crop)  # crop px -> output px
        ys, xs = np.nonzero(ring_mask > 1e-3)
        if len(xs):
            pts = np.array([[xs.min(), ys.min()], [xs.max() + 1, ys.min()], [xs.min(), ys.max() + 1],
                            [xs.max() + 1, ys.max() + 1]], np.float64)  # fmt: skip
        else:
            pts = np.zeros((1, 2))
        corners = pts @ inv[:, :2].T + inv[:, 2]
        x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int) - 1, 0)
        x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 2, [w, h])
        x1, y1 = max(int(x1), int(x0)), max(int(y1), int(y0))
        self.box = (int(x0), int(y0), int(x1), int(y1))
        self.box_size = (int(x1 - x0), int(y1 - y0))
        self.inv = inv.copy()
        self.inv[:, 2] = inv[:, 2] - [x0, y0]  # crop px -> box px
        #: crop-px displacement -> output-px displacement (the affine's linear part, inverted)
        self.lin = inv[:, :2].astype(np.float32)
        self.mask = cv2.warpAffine(
            ring_mask.astype(np.float32), self.inv, self.box_size, flags=cv2.INTER_LINEAR
        )
        self.mask3 = np.repeat(self.mask[..., None], 3, axis=2)
        bw, bh = self.box_size
        # the warp may pull pixels from past the photo's edge: sample a smoothly extended copy
        self.pad = int(np.ceil(0.25 * max(bw, bh))) + 2 if self._touches_edge(w, h) else 0
        self.extended = extend_photo(image, self.pad)
        self.glasses_alpha: np.ndarray | None = None
        if glasses is not None:
            self._take_out_glasses(glasses)
        gx, gy = np.meshgrid(np.arange(bw, dtype=np.float32), np.arange(bh, dtype=np.float32))
        self.grid_x = gx + np.float32(x0 + self.pad)
        self.grid_y = gy + np.float32(y0 + self.pad)
        ident = np.arange(s, dtype=np.float32)
        self.ident_x = np.tile(ident, (s, 1))
        self.ident_y = np.ascontiguousarray(self.ident_x.T)

    def _take_out_glasses(self, glasses: RigidGlasses) -> None:
        """The warp's source loses the frame (the crop's inpainted skin, upsampled, where the crop's
        source was inpainted); the photo's frame pixels and alpha are kept for :meth:`_glasses`."""
        x0, y0, x1, y1 = self.box
        alpha = self._to_box(glasses.alpha)
        skin = self._to_box(glasses.source.astype(np.float32))
        p = self.pad
        src = self.extended[y0 + p : y1 + p, x0 + p : x1 + p]
        # only where the crop's source was inpainted (the frame's core, alpha 1 there)
        core = np.any(glasses.source != glasses.crop, axis=2).astype(np.float32)
        # and only under a fully opaque pasted frame, so that at rest the photo comes back exactly
        a = (self._to_box(core) * (alpha >= 0.999))[..., None]
        self.extended = self.extended.copy()
        self.extended[y0 + p : y1 + p, x0 + p : x1 + p] = np.clip(src * (1 - a) + skin * a + 0.5, 0, 255)
        self.glasses_photo = np.ascontiguousarray(self.image[y0:y1, x0:x1])
        self.glasses_alpha = alpha
        self.out_to_crop = cv2.invertAffineTransform(self.inv)  # box px -> crop px

    def _glasses(self, warped: np.ndarray, crop_affine: np.ndarray) -> None:
        """Paste the photo's glasses frame moved by the crop-px affine (source → frame), in place."""
        assert self.glasses_alpha is not None
        m = compose(self.inv, compose(crop_affine, self.out_to_crop))  # box px → box px
        inv = cv2.invertAffineTransform(m)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        rgb = cv2.warpAffine(
            self.glasses_photo, inv, self.box_size, flags=flags, borderMode=cv2.BORDER_REPLICATE
        )
        al = cv2.warpAffine(
            self.glasses_alpha, inv, self.box_size, flags=flags, borderMode=cv2.BORDER_CONSTANT
        )
        warped[:] = cv2.blendLinear(rgb, warped, al, 1.0 - al)

    def _touches_edge(self, w: int, h: int) -> bool:
        x0, y0, x1, y1 = self.box
        margin = max(self.box_size) // 4 + 2
        return x0 < margin or y0 < margin or x1 > w - margin or y1 > h - margin

    @property
    def empty(self) -> bool:
        return self.box_size[0] <= 0 or self.box_size[1] <= 0

    def _to_box(self, a: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(
            a, self.inv, self.box_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )

    def warp(
        self,
        map_x: np.ndarray,
        map_y: np.ndarray,
        layer: Layer | None = None,
        glasses_affine: np.ndarray | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """The output frame for the crop's backward map (float32[s, s] each, crop px), the layer
        the renderer drew after remapping (None: nothing drawn) and, with glasses, their motion
        (crop px, source → frame; :meth:`RigidGlasses.affine`); written into ``out`` if given.

        No blending mask is needed: the displacement is continuous and falls to exactly zero at
        the warp's static ring, so outside it the re-sampled photo is the photo, bit for bit."""
        if out is None:
            out = self.image.copy()
        else:
            out[:] = self.image
        if self.empty:
            return out
        x0, y0, x1, y1 = self.box
        (a, b), (c, d) = self.lin
        # crop-px displacement, turned into output px while still at the crop's (small) size
        dxc = cv2.subtract(map_x, self.ident_x)
        dyc = cv2.subtract(map_y, self.ident_y)
        if b == 0.0 and c == 0.0:
            dxo, dyo = dxc * a, dyc * d
        else:
            dxo, dyo = dxc * a + dyc * b, dxc * c + dyc * d
        mx = cv2.add(self.grid_x, self._to_box(dxo))
        my = cv2.add(self.grid_y, self._to_box(dyo))
        region = out[y0:y1, x0:x1]
        cv2.remap(self.extended, mx, my, cv2.INTER_LINEAR, dst=region, borderMode=cv2.BORDER_REPLICATE)
        if layer is not None:
            self._apply_layer(region, layer)
        if self.glasses_alpha is not None and glasses_affine is not None:
            self._glasses(region, glasses_affine)
        return out

    def _apply_layer(self, warped: np.ndarray, layer: Layer) -> None:
        """Lay what was drawn on the crop over the box (``warped``, in place)."""
        drawn = cv2.absdiff(layer.after, layer.before)
        strength = cv2.max(cv2.max(drawn[..., 0], drawn[..., 1]), drawn[..., 2])
        bx, by, bw_, bh_ = cv2.boundingRect(strength)  # the nonzero pixels' box
        if bw_ == 0 or bh_ == 0:
            return
        # only the drawn part of the crop (mouth, eyes) is carried over
        cx0, cy0 = max(bx - 2, 0), max(by - 2, 0)
        cx1, cy1 = min(bx + bw_ + 2, self.crop_size), min(by + bh_ + 2, self.crop_size)
        corners = np.array([[cx0, cy0], [cx1, cy0], [cx0, cy1], [cx1, cy1]], np.float64)
        bc = corners @ self.inv[:, :2].T + self.inv[:, 2]
        bw, bh = self.box_size
        bx0, by0 = np.maximum(np.floor(bc.min(0)).astype(int) - 1, 0)
        bx1, by1 = np.minimum(np.ceil(bc.max(0)).astype(int) + 2, [bw, bh])
        if bx1 <= bx0 or by1 <= by0:
            return
        sub = (slice(cy0, cy1), slice(cx0, cx1))
        # opaque drawing replaces the warped photo; faint drawing is added as a change
        alpha = np.minimum(strength[sub].astype(np.float32) * (1.0 / _OPAQUE), 1.0)
        before = layer.before[sub].astype(np.float32)
        paint = layer.after[sub].astype(np.float32) - (1.0 - alpha[..., None]) * before
        m = np.array(self.inv, np.float64)
        # crop px of the window at (cx0, cy0) -> px of the box window at (bx0, by0)
        m[:, 2] = m[:, 2] - [bx0, by0] + m[:, :2] @ np.array([cx0, cy0], np.float64)
        size = (int(bx1 - bx0), int(by1 - by0))
        a = cv2.warpAffine(alpha, m, size, flags=cv2.INTER_LINEAR)
        p = cv2.warpAffine(paint, m, size, flags=cv2.INTER_LINEAR)
        win = warped[by0:by1, bx0:bx1].astype(np.float32) * (1.0 - a[..., None]) + p
        warped[by0:by1, bx0:bx1] = np.clip(win + 0.5, 0, 255).astype(np.uint8)

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        """The output frame for a rendered crop without a map: its change against the source crop,
        mapped back and added under the mask."""
        out = self.image.copy()
        if self.empty:
            return out
        x0, y0, x1, y1 = self.box
        change = self._to_box(crop.astype(np.float32) - self.source_crop)
        region = out[y0:y1, x0:x1]
        region[:] = np.clip(region + change * self.mask3 + 0.5, 0, 255).astype(np.uint8)
        return out
