"""KPDetector: hourglass + softmax heatmaps -> keypoints (x, y) and local jacobians."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from emostream.models.fomm.blocks import AntiAliasInterpolation2d, Hourglass, make_coordinate_grid
from emostream.models.fomm.config import FommConfig
from emostream.models.fomm.keypoints import Keypoints


class KPDetector(nn.Module):
    """images (B, C, H, W) in [0, 1] -> Keypoints(value (B, K, 2), jacobian (B, K, 2, 2))."""

    def __init__(self, cfg: FommConfig) -> None:
        super().__init__()
        p = cfg.kp_detector
        self.num_kp = cfg.num_kp
        self.predictor = Hourglass(p.block_expansion, cfg.num_channels, p.num_blocks, p.max_features)
        self.kp = nn.Conv2d(self.predictor.out_filters, cfg.num_kp, 7, padding=p.pad)
        self.num_jacobian_maps = 1 if p.single_jacobian_map else cfg.num_kp
        self.jacobian: nn.Conv2d | None = None
        if cfg.estimate_jacobian:
            self.jacobian = nn.Conv2d(
                self.predictor.out_filters, 4 * self.num_jacobian_maps, 7, padding=p.pad
            )
            nn.init.zeros_(self.jacobian.weight)
            with torch.no_grad():
                assert self.jacobian.bias is not None
                self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0] * self.num_jacobian_maps))
        self.temperature = p.temperature
        self.scale_factor = p.scale_factor
        self.down: AntiAliasInterpolation2d | None = None
        if p.scale_factor != 1:
            self.down = AntiAliasInterpolation2d(cfg.num_channels, p.scale_factor)

    def heatmaps(self, feature_map: torch.Tensor) -> torch.Tensor:
        """features (B, be+C, h, w) -> softmax heatmaps (B, K, h', w') (h' = h + 2 pad - 6)."""
        logits = self.kp(feature_map)
        b, k, h, w = logits.shape
        return F.softmax(logits.view(b, k, -1) / self.temperature, dim=2).view(b, k, h, w)

    def forward(self, x: torch.Tensor) -> Keypoints:
        if self.down is not None:
            x = self.down(x)  # (B, C, H*s, W*s)
        feature_map = self.predictor(x)  # (B, be+C, H*s, W*s)
        heatmap = self.heatmaps(feature_map)  # (B, K, h', w')
        b, k, h, w = heatmap.shape
        grid = make_coordinate_grid(h, w, heatmap.dtype, heatmap.device).view(1, 1, h, w, 2)
        value = (heatmap.unsqueeze(-1) * grid).sum(dim=(2, 3))  # (B, K, 2)
        if self.jacobian is None:
            return Keypoints(value)
        jmap = self.jacobian(feature_map).reshape(b, self.num_jacobian_maps, 4, h, w)
        jac = (heatmap.unsqueeze(2) * jmap).view(b, k, 4, -1).sum(dim=-1)  # (B, K, 4)
        return Keypoints(value, jac.view(b, k, 2, 2))
