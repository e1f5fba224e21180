"""Paste a rendered crop back into the full-size photo with a feathered, static mask.

What is pasted is the *change* the renderer made to the crop (rendered − source crop), mapped
back into the photo and added under a feathered mask of the warp's moving region. At rest the
change is zero, so the photo comes back bit-exact (no resampling blur from the crop's round trip);
the mask does not depend on the motion, so the seam cannot move with the head. Only the crop's
bounding box in the photo is touched per frame.
"""

from __future__ import annotations

import cv2
import numpy as np


class PasteBack:
    def __init__(
        self, image: np.ndarray, crop_affine: np.ndarray, ring_mask: np.ndarray, source_crop: np.ndarray
    ) -> None:
        self.image = image
        self.source_crop = source_crop.astype(np.float32)
        h, w = image.shape[:2]
        inv = cv2.invertAffineTransform(crop_affine)
        s = ring_mask.shape[0]
        corners = np.array([[0, 0], [s, 0], [0, s], [s, s]], np.float64) @ inv[:, :2].T + inv[:, 2]
        x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int), [w, h])
        self.box = (int(x0), int(y0), int(x1), int(y1))
        self.inv = inv.copy()
        self.inv[:, 2] = inv[:, 2] - [x0, y0]  # crop px -> box px
        self.box_size = (int(x1 - x0), int(y1 - y0))
        self.mask = cv2.warpAffine(
            ring_mask.astype(np.float32), self.inv, self.box_size, flags=cv2.INTER_LINEAR
        )[..., None]

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = self.box
        out = self.image.copy()
        if x1 <= x0 or y1 <= y0:
            return out
        change = crop.astype(np.float32) - self.source_crop
        warped = cv2.warpAffine(
            change, self.inv, self.box_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        region = out[y0:y1, x0:x1]
        region[:] = np.clip(region + warped * self.mask + 0.5, 0, 255).astype(np.uint8)
        return out
