"""The analytic renderer (``renderer="analytic"``): real-time CPU warp of one portrait.

Per portrait (``AnalyticRenderer(portrait)``, a few ms after the cached landmark pass): fit the rig
to the photo's landmarks, build the warp mesh, the inner-mouth model and the paste-back mask.
Per batch of frames: rig → driven 3D landmarks (It), FOMM's relative motion from the neutral rig
(In) onto the photo's keypoints (T), a fold-free piecewise-affine backward map, ``cv2.remap``
(bilinear: anti-aliased), the inner mouth (render/mouth.py: the photo's own teeth, or teeth in the
photo's tones, sharpness and grain measured by render/photo_look.py; facial hair kept in front),
closed eyelids (render/eyes.py), a glasses frame kept rigid (render/glasses.py). With
``Framing(crop="photo")`` the frame is the whole photo (its long side capped): the crop's map
re-warps the full-resolution photo and what was drawn is laid over it (render/pasteback.py); with
``crop="face"`` (or no framing) it is the square crop. Everything per frame is O(pixels) C code
plus ~1k small cv2 rasterisation calls; see benchmarks/bench_render.py and
benchmarks/bench_pasteback.py.

Also draws the rig itself (``rig_render`` / ``rig_render_neutral``) for the FOMM renderer.
"""

from __future__ import annotations

import cv2
import numpy as np

from emostream.arkit import BLENDSHAPE_INDEX, MOTION_DIM, neutral_vector
from emostream.render import topology as tp
from emostream.render.eyes import Eyelids
from emostream.render.framing import Framing, compose, resize_affine, scaled_photo
from emostream.render.glasses import RigidGlasses
from emostream.render.motion_transfer import movement_scale, relative_keypoints
from emostream.render.mouth import InnerMouth
from emostream.render.pasteback import Layer, PasteBack
from emostream.render.photo_look import PhotoLook
from emostream.render.portrait import Portrait
from emostream.render.rig import Rig
from emostream.render.rig_render import RigRenderer
from emostream.render.warp import MeshWarp, regularize_source

_UPPER_INNER = np.array(tp.LIP_UPPER_INNER)
_LOWER_INNER = np.array(tp.LIP_LOWER_INNER)
_OVAL = np.array(tp.FACE_OVAL)


class AnalyticRenderer:
    """Implements emostream.render.base.Renderer."""

    def __init__(self, portrait: Portrait, *, framing: Framing | None = None, step: int = 1) -> None:
        self.portrait = portrait
        self.size = portrait.size
        self.rig = Rig(portrait.landmarks)
        self.kp_source = regularize_source(portrait.landmarks[:, :2])  # T
        self.kp_neutral = self.rig.evaluate(neutral_vector()[None])[0, :, :2]  # In
        self.scale = movement_scale(self.kp_source, self.kp_neutral)
        self.warp = MeshWarp.build(portrait.landmarks, self.size, step=step)
        #: Glasses frames are kept rigid (None: no glasses found); the warp reads ``self.source``.
        self.glasses = RigidGlasses.detect(portrait.crop, portrait.landmarks)
        self.source = portrait.crop if self.glasses is None else self.glasses.source
        look = PhotoLook.measure(portrait.crop, portrait.landmarks)
        self.mouth = InnerMouth(self.rig, portrait.crop, portrait.landmarks, look)
        blink = neutral_vector()
        blink[[BLENDSHAPE_INDEX["eyeBlinkLeft"], BLENDSHAPE_INDEX["eyeBlinkRight"]]] = 1.0
        closed, _ = self.warp.fold_guard(self.warp.driven_points(self.keypoints(blink[None])[0]))
        self.eyelids = Eyelids(self.source, portrait.landmarks, closed[: self.warp.n_face], look)
        self.framing = framing
        self.paste = paste_back_for(portrait, self.warp.ring_mask(), framing, self.glasses)
        self._rig_renderer: RigRenderer | None = None
        if self.paste is not None:
            self.height, self.width = self.paste.image.shape[:2]
        else:
            self.height = self.width = self.size
        #: α of the last frame's fold guard (1.0 = the full motion was applied).
        self.last_alpha = 1.0

    def keypoints(self, motion: np.ndarray) -> np.ndarray:
        """float[B, 55] → float64[B, 468, 2]: driven keypoints in crop px (relative motion)."""
        it = self.rig.evaluate(motion)[:, :, :2]
        kp = relative_keypoints(self.kp_source, it, self.kp_neutral, scale=self.scale)
        # Smooth the displacement along the face outline ([1 2 1]/4, twice): the landmark model's
        # depth along the silhouette is noisy, and under head rotation that noise would show as
        # notches in the jaw line where the face meets the still background.
        d = kp[:, _OVAL] - self.kp_source[_OVAL]
        for _ in range(2):
            d = 0.25 * np.roll(d, 1, axis=1) + 0.5 * d + 0.25 * np.roll(d, -1, axis=1)
        kp[:, _OVAL] = self.kp_source[_OVAL] + d
        return kp

    def _warp_crop(self, kp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(map_x, map_y, warped crop) before anything is drawn."""
        mx, my, alpha = self.warp.backward_map(kp)
        self.last_alpha = alpha
        # the crop is already extended past the photo (render/framing.py); never reflect
        frame = cv2.remap(self.source, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return mx, my, frame

    def _draw(self, frame: np.ndarray, motion_row: np.ndarray, *, glasses: bool = True) -> np.ndarray:
        """Mouth interior, closed lids and (``glasses``) rigid glasses onto the warped crop (in
        place). Returns the driven face keypoints used."""
        assert self.warp.last_points is not None
        kp_used = self.warp.last_points[: self.warp.n_face]
        self.mouth.draw(frame, motion_row, kp_used[_UPPER_INNER], kp_used[_LOWER_INNER])
        self.eyelids.draw(frame, kp_used)
        if glasses and self.glasses is not None:
            self.glasses.draw(frame, kp_used)
        return kp_used

    def render_crop(self, motion_row: np.ndarray, kp: np.ndarray) -> np.ndarray:
        """uint8[size, size, 3]: one frame of the face crop."""
        _, _, frame = self._warp_crop(kp)
        self._draw(frame, motion_row)
        return frame

    def render_frame(
        self, motion_row: np.ndarray, kp: np.ndarray, out: np.ndarray | None = None
    ) -> np.ndarray:
        """uint8[height, width, 3]: one output frame (the crop, or the whole photo), written into
        ``out`` if given."""
        if self.paste is None:
            frame = self.render_crop(motion_row, kp)
            if out is not None:
                out[:] = frame
            return frame
        mx, my, frame = self._warp_crop(kp)
        before = frame.copy()
        kp_used = self._draw(frame, motion_row, glasses=False)  # glasses: at full resolution
        moved = self.glasses.affine(kp_used) if self.glasses is not None else None
        return self.paste.warp(mx, my, Layer(before, frame), moved, out=out)

    def render(self, motion: np.ndarray) -> np.ndarray:
        """float32[B, 55] → uint8[B, height, width, 3]."""
        motion = np.atleast_2d(np.asarray(motion, np.float32))
        if motion.ndim != 2 or motion.shape[1] != MOTION_DIM:
            raise ValueError(f"motion must be [B, {MOTION_DIM}], got {motion.shape}")
        kps = self.keypoints(motion)
        out = np.empty((len(motion), self.height, self.width, 3), np.uint8)
        for i in range(len(motion)):
            self.render_frame(motion[i], kps[i], out=out[i])
        return out

    # --- rig renders for the FOMM renderer -------------------------------------------------------
    def rig_render(self, motion: np.ndarray) -> np.ndarray:
        """float32[B, 55] → uint8[B, size, size, 3]: the driven rig (It) on the crop geometry."""
        if self._rig_renderer is None:
            self._rig_renderer = RigRenderer(self.rig.data.triangles, self.size)
        motion = np.atleast_2d(np.asarray(motion, np.float32))
        v = self.rig.evaluate(motion)
        return np.stack([self._rig_renderer(x) for x in v])

    def rig_render_neutral(self) -> np.ndarray:
        """uint8[size, size, 3]: the neutral rig (In)."""
        return self.rig_render(neutral_vector()[None])[0]


def paste_back_for(
    portrait: Portrait, ring_mask: np.ndarray, framing: Framing | None, glasses: RigidGlasses | None = None
) -> PasteBack | None:
    """The paste-back into the whole photo (scaled to ``framing.max_side``), or None for the crop."""
    if framing is None or not framing.whole_photo:
        return None
    photo = scaled_photo(portrait.image, framing.max_side)
    to_out = resize_affine(portrait.image.shape[:2], photo.shape[:2])
    out_to_crop = compose(portrait.crop_affine, cv2.invertAffineTransform(to_out))
    return PasteBack(photo, out_to_crop, ring_mask, portrait.crop, glasses)
