"""Emotion style encoder: one style vector from either a label + intensity, or a reference clip.

Two paths into the same space ``float32[d_style]``:

- ``from_label(emotion[B] int64, intensity[B] float32) -> [B, d_style]``: a learned embedding per
  emotion, scaled by intensity around a learned "no emotion" anchor, then a small MLP.
- ``from_reference(clip[B, T, 55] float32) -> [B, d_style]``: a 1-D CNN over the ARKit frames of a
  reference recording ("like this recording"), mean-pooled over time. It is trained to land on the
  label path's vector of the clip's emotion (``reference_loss``), so both paths are interchangeable.

The EmoDiff denoiser and the lip refiner take this vector as their style condition.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from emostream.arkit import MOTION_DIM, NUM_EMOTIONS, EmotionStyle


@dataclass(frozen=True)
class StyleConfig:
    d_style: int = 32
    hidden: int = 48
    kernel: int = 5

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class StyleEncoder(nn.Module):
    motion_mean: torch.Tensor
    motion_std: torch.Tensor

    def __init__(self, cfg: StyleConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.emotion = nn.Embedding(NUM_EMOTIONS, cfg.hidden)  # [8, hidden]
        self.anchor = nn.Parameter(torch.zeros(cfg.hidden))  # intensity 0 = this point
        self.label_mlp = nn.Sequential(
            nn.Linear(cfg.hidden + 1, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.d_style)
        )
        pad = cfg.kernel // 2
        self.ref_cnn = nn.Sequential(
            nn.Conv1d(MOTION_DIM, cfg.hidden, cfg.kernel, padding=pad),
            nn.GELU(),
            nn.Conv1d(cfg.hidden, cfg.hidden, cfg.kernel, padding=pad, dilation=1),
            nn.GELU(),
            nn.Conv1d(cfg.hidden, cfg.hidden, cfg.kernel, padding=2 * pad, dilation=2),
            nn.GELU(),
        )
        self.ref_out = nn.Linear(2 * cfg.hidden, cfg.d_style)
        # normalisation of reference motion (set from the training data)
        self.register_buffer("motion_mean", torch.zeros(MOTION_DIM))
        self.register_buffer("motion_std", torch.ones(MOTION_DIM))

    def from_label(self, emotion: torch.Tensor, intensity: torch.Tensor) -> torch.Tensor:
        """emotion int64[B], intensity float32[B] -> float32[B, d_style]"""
        w = intensity.to(self.anchor.dtype).unsqueeze(-1)  # [B, 1]
        h = self.anchor + w * (self.emotion(emotion) - self.anchor)  # [B, hidden]
        return self.label_mlp(torch.cat([h, w], dim=-1))

    def from_reference(self, clip: torch.Tensor) -> torch.Tensor:
        """clip float32[B, T, 55] (raw ARKit + head radians) -> float32[B, d_style]"""
        assert clip.ndim == 3 and clip.shape[-1] == MOTION_DIM, clip.shape
        x = ((clip - self.motion_mean) / self.motion_std).transpose(1, 2)  # [B, 55, T]
        h = self.ref_cnn(x)  # [B, hidden, T]
        pooled = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)  # [B, 2*hidden]
        return self.ref_out(pooled)

    def reference_loss(
        self, clip: torch.Tensor, emotion: torch.Tensor, intensity: torch.Tensor
    ) -> torch.Tensor:
        """Pull the reference path onto the (detached) label path's vector."""
        target = self.from_label(emotion, intensity).detach()
        return ((self.from_reference(clip) - target) ** 2).mean()

    @torch.no_grad()
    def style_vector(self, style: EmotionStyle | np.ndarray) -> np.ndarray:
        """An ``EmotionStyle`` or a reference clip float32[T, 55] -> float32[d_style]."""
        dev = self.anchor.device
        if isinstance(style, EmotionStyle):
            v = self.from_label(
                torch.tensor([style.index], device=dev), torch.tensor([float(style.intensity)], device=dev)
            )
        else:
            clip = torch.as_tensor(np.asarray(style, dtype=np.float32), device=dev)
            v = self.from_reference(clip.unsqueeze(0))
        return v[0].float().cpu().numpy()
