"""The FOMM neural renderer (``renderer="fomm"``): the paper's R(T, M_{In->It}).

Per portrait (once): the source T (the portrait crop) goes through the generator's encoder, the
dense-motion downsample and the keypoint detector; the results are cached (exact: the same ops,
run once). Per stream (once): the keypoint detector reads the neutral rig render In and the
movement scale sqrt(area(hull(kp_T)) / area(hull(kp_In))) is fixed. Per batch of frames: the
analytic renderer draws the driven rig It for each ARKit frame, the detector reads them, relative
motion (normalize_kp) maps them onto the portrait's keypoints, and the backend animates the
cached source, ``batch_size`` frames at a time.

The backend (torch CPU / CUDA, onnxruntime CPU / CUDA / TensorRT) is chosen once, in
emostream.models.fomm.backends.create_backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch

from emostream.arkit import MOTION_DIM
from emostream.errors import ConfigError
from emostream.models.fomm.backends import FommBackend, create_backend
from emostream.models.fomm.checkpoint import FommModel, load_fomm
from emostream.models.fomm.config import FommConfig
from emostream.models.fomm.keypoints import Keypoints, movement_scale, normalize_kp
from emostream.render.analytic import AnalyticRenderer
from emostream.render.framing import Framing


class RigSource(Protocol):
    """What FOMM needs from the analytic renderer (emostream.render.analytic.AnalyticRenderer)."""

    def rig_render(self, motion: np.ndarray) -> np.ndarray:
        """float32[B, 55] -> uint8[B, size, size, 3]: driven rig renders It."""
        ...

    def rig_render_neutral(self) -> np.ndarray:
        """uint8[size, size, 3]: the neutral rig render In."""
        ...


def to_tensor(images: np.ndarray, side: int) -> torch.Tensor:
    """uint8[B, H, W, 3] (or [H, W, 3]) -> float32 (B, 3, side, side) in [0, 1]."""
    images = images[None] if images.ndim == 3 else images
    if images.shape[1:3] != (side, side):
        interp = cv2.INTER_AREA if images.shape[1] > side else cv2.INTER_CUBIC
        images = np.stack([cv2.resize(im, (side, side), interpolation=interp) for im in images])
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


def to_uint8(pred: torch.Tensor, side: int) -> np.ndarray:
    """float (B, 3, h, w) in [0, 1] -> uint8[B, side, side, 3]."""
    out = (pred.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if out.shape[1] != side:
        interp = cv2.INTER_CUBIC if side > out.shape[1] else cv2.INTER_AREA
        out = np.stack([cv2.resize(im, (side, side), interpolation=interp) for im in out])
    return out


class FommRenderer:
    """Implements emostream.render.base.Renderer with FOMM relative motion transfer."""

    def __init__(
        self,
        source: np.ndarray,
        rig: RigSource,
        model: FommModel | FommBackend,
        *,
        backend: str = "torch-cpu",
        dtype: str = "fp32",
        batch_size: int = 8,
        paste: Any = None,
        out_size: int | None = None,
    ) -> None:
        """source: uint8[S, S, 3] portrait crop (T); rig: draws In / It on the same crop geometry;
        paste: optional callable uint8[S, S, 3] -> full-photo frame (the analytic paste-back).
        model: a loaded FommModel (a backend is created) or a backend shared by several sessions
        (weights held once; see :func:`render_sessions`)."""
        if isinstance(model, FommModel):
            self.backend: FommBackend = create_backend(model, backend, dtype=dtype)
            cfg: FommConfig = model.config
        else:
            self.backend = model
            cfg = model.config
        if cfg.num_channels != 3:
            raise ConfigError(f"the FOMM renderer needs an RGB model, config has {cfg.num_channels} channels")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.config = cfg
        self.side = cfg.image_size
        self.crop_size = out_size or source.shape[0]
        self.rig = rig
        self.batch_size = batch_size
        self.paste = paste
        self.source = self.backend.prepare_source(to_tensor(source, self.side))  # cached per portrait
        self.kp_initial: Keypoints = self.backend.detect(to_tensor(rig.rig_render_neutral(), self.side))
        self.scale = movement_scale(self.source.kp, self.kp_initial, cfg.normalization.adapt_movement_scale)
        probe = self.paste(np.zeros((self.crop_size, self.crop_size, 3), np.uint8)) if paste else None
        hw = probe.shape[:2] if probe is not None else (self.crop_size, self.crop_size)
        self.height: int = int(hw[0])
        self.width: int = int(hw[1])

    @classmethod
    def from_checkpoint(
        cls,
        portrait: Any,
        checkpoint: str | Path,
        config: str | Path | None = None,
        *,
        device: str = "cpu",
        backend: str | None = None,
        dtype: str | None = None,
        batch_size: int = 8,
        framing: Framing | None = None,
    ) -> FommRenderer:
        """Build from an emostream.render.portrait.Portrait and a checkpoint (+ YAML config; our
        own checkpoints embed theirs). ``device`` cpu -> torch-cpu fp32, cuda -> torch-cuda fp16;
        ``backend`` overrides (ort-cpu, ort-cuda, ort-tensorrt, ...)."""
        model = load_fomm(checkpoint, config)
        name = backend or ("torch-cuda" if device == "cuda" else "torch-cpu")
        dt = dtype or ("fp16" if name == "torch-cuda" else "fp32")
        rig = AnalyticRenderer(portrait, framing=framing)
        return cls(
            portrait.crop, rig, model, backend=name, dtype=dt, batch_size=batch_size,
            paste=rig.paste, out_size=portrait.size,
        )  # fmt: skip

    def driving_keypoints(self, motion: np.ndarray) -> Keypoints:
        """float32[B, 55] -> normalised keypoints (relative motion In -> It applied to T)."""
        kd = self.backend.detect(to_tensor(self.rig.rig_render(motion), self.side))
        return normalize_kp(self.source.kp, kd, self.kp_initial, self.config.normalization, scale=self.scale)

    def render(self, motion: np.ndarray) -> np.ndarray:
        """float32[B, 55] -> uint8[B, height, width, 3]."""
        motion = np.atleast_2d(np.asarray(motion, np.float32))
        if motion.ndim != 2 or motion.shape[1] != MOTION_DIM:
            raise ValueError(f"motion must be [B, {MOTION_DIM}], got {motion.shape}")
        out = np.empty((len(motion), self.height, self.width, 3), np.uint8)
        for i in range(0, len(motion), self.batch_size):
            chunk = motion[i : i + self.batch_size]
            frames = to_uint8(
                self.backend.animate(self.source, self.driving_keypoints(chunk)), self.crop_size
            )
            for j, f in enumerate(frames):
                out[i + j] = self.paste(f) if self.paste is not None else f
        return out


def render_sessions(renderers: list[FommRenderer], motions: list[np.ndarray]) -> list[np.ndarray]:
    """Render one chunk of motion for each of several sessions that share one backend, batching
    their generator passes together (torch backends: one forward when the chunk sizes match)."""
    if not renderers:
        return []
    backend = renderers[0].backend
    if any(r.backend is not backend for r in renderers):
        raise ConfigError("render_sessions needs renderers that share one backend")
    kps = [
        r.driving_keypoints(np.atleast_2d(np.asarray(m, np.float32)))
        for r, m in zip(renderers, motions, strict=True)
    ]
    preds = backend.animate_many([r.source for r in renderers], kps)
    out = []
    for r, p in zip(renderers, preds, strict=True):
        frames = to_uint8(p, r.crop_size)
        out.append(np.stack([r.paste(f) for f in frames]) if r.paste is not None else frames)
    return out
