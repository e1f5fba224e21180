"""DenseMotionNetwork: sparse keypoint motions -> dense deformation, masks, occlusion map."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from emostream.models.fomm.blocks import (
    AntiAliasInterpolation2d,
    Hourglass,
    inverse2x2,
    kp2gaussian,
    make_coordinate_grid,
)
from emostream.models.fomm.config import DenseMotionConfig
from emostream.models.fomm.keypoints import Keypoints


@dataclass
class DenseMotion:
    sparse_deformed: torch.Tensor  # (B, K+1, C, h, w)
    mask: torch.Tensor  # (B, K+1, h, w)
    deformation: torch.Tensor  # (B, h, w, 2) grid_sample layout
    occlusion_map: torch.Tensor | None  # (B, 1, h, w)


def heatmap_representation(s: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints, var: float):
    """(B, K+1, 1, h, w): 0 for the background, then G(kp_driving) - G(kp_source)."""
    b, _, h, w = s.shape
    heat = kp2gaussian(kp_driving.value, h, w, var) - kp2gaussian(kp_source.value, h, w, var)
    zeros = torch.zeros(b, 1, h, w, dtype=heat.dtype, device=heat.device)
    return torch.cat([zeros, heat], dim=1).unsqueeze(2)


def sparse_motions(s: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> torch.Tensor:
    """(B, K+1, h, w, 2): identity, then T_k(z) = p_s + J_s J_d^-1 (z - p_d)."""
    b, _, h, w = s.shape
    k = kp_driving.value.shape[1]
    identity = make_coordinate_grid(h, w, s.dtype, s.device).view(1, 1, h, w, 2)
    coords = identity - kp_driving.value.view(b, k, 1, 1, 2)
    if kp_driving.jacobian is not None:
        assert kp_source.jacobian is not None
        jac = torch.matmul(kp_source.jacobian, inverse2x2(kp_driving.jacobian))  # (B, K, 2, 2)
        jac = jac.unsqueeze(-3).unsqueeze(-3).repeat(1, 1, h, w, 1, 1)
        coords = torch.matmul(jac, coords.unsqueeze(-1)).squeeze(-1)
    driving_to_source = coords + kp_source.value.view(b, k, 1, 1, 2)
    return torch.cat([identity.repeat(b, 1, 1, 1, 1), driving_to_source], dim=1)


def deform_sparse(s: torch.Tensor, motions: torch.Tensor) -> torch.Tensor:
    """s (B, C, h, w), motions (B, K+1, h, w, 2) -> (B, K+1, C, h, w), bilinear, zero padding."""
    b, c, h, w = s.shape
    n = motions.shape[1]
    rep = s.unsqueeze(1).expand(b, n, c, h, w).reshape(b * n, c, h, w)
    out = F.grid_sample(rep, motions.reshape(b * n, h, w, 2), align_corners=False)
    return out.view(b, n, c, h, w)


class DenseMotionNetwork(nn.Module):
    def __init__(self, p: DenseMotionConfig, num_kp: int, num_channels: int, estimate_occlusion_map: bool):
        super().__init__()
        self.hourglass = Hourglass(
            p.block_expansion, (num_kp + 1) * (num_channels + 1), p.num_blocks, p.max_features
        )
        self.mask = nn.Conv2d(self.hourglass.out_filters, num_kp + 1, 7, padding=3)
        self.occlusion: nn.Conv2d | None = None
        if estimate_occlusion_map:
            self.occlusion = nn.Conv2d(self.hourglass.out_filters, 1, 7, padding=3)
        self.num_kp = num_kp
        self.scale_factor = p.scale_factor
        self.kp_variance = p.kp_variance
        self.down: AntiAliasInterpolation2d | None = None
        if p.scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, p.scale_factor)

    def forward(self, source: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> DenseMotion:
        s = source if self.down is None else self.down(source)  # (B, C, h, w)
        b, _, h, w = s.shape
        heat = heatmap_representation(s, kp_driving, kp_source, self.kp_variance)  # (B, K+1, 1, h, w)
        motions = sparse_motions(s, kp_driving, kp_source)  # (B, K+1, h, w, 2)
        deformed = deform_sparse(s, motions)  # (B, K+1, C, h, w)
        x = torch.cat([heat, deformed], dim=2).view(b, -1, h, w)  # channel k*(C+1)+c
        feats = self.hourglass(x)
        mask = F.softmax(self.mask(feats), dim=1)  # (B, K+1, h, w)
        deformation = (motions.permute(0, 1, 4, 2, 3) * mask.unsqueeze(2)).sum(dim=1).permute(0, 2, 3, 1)
        occ = None if self.occlusion is None else torch.sigmoid(self.occlusion(feats))
        return DenseMotion(deformed, mask, deformation, occ)
