"""OcclusionAwareGenerator: source encoder, dense-motion warp of the features, decoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from emostream.models.fomm.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d, hourglass_width
from emostream.models.fomm.config import FommConfig
from emostream.models.fomm.dense_motion import DenseMotionNetwork
from emostream.models.fomm.keypoints import Keypoints


@dataclass
class GeneratorOutput:
    prediction: torch.Tensor  # (B, C, H, W) in [0, 1]
    mask: torch.Tensor | None = None  # (B, K+1, h, w)
    sparse_deformed: torch.Tensor | None = None  # (B, K+1, C, h, w)
    occlusion_map: torch.Tensor | None = None  # (B, 1, h, w)
    deformed: torch.Tensor | None = None  # (B, C, H, W)
    bottleneck_input: torch.Tensor | None = None  # (B, c(nd), H/2^nd, W/2^nd)


def resize_grid(deformation: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, h0, w0, 2) -> (B, h, w, 2), bilinear as a 2-channel image (align_corners=False)."""
    if deformation.shape[1:3] == (h, w):
        return deformation
    d = F.interpolate(deformation.permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=False)
    return d.permute(0, 2, 3, 1)


def warp(x: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
    """grid_sample x (B, C, H, W) by the deformation resized to (H, W)."""
    grid = resize_grid(deformation, x.shape[2], x.shape[3])
    return F.grid_sample(x, grid, align_corners=False)


class OcclusionAwareGenerator(nn.Module):
    def __init__(self, cfg: FommConfig) -> None:
        super().__init__()
        g = cfg.generator
        c = lambda i: hourglass_width(g.block_expansion, g.max_features, i)  # noqa: E731
        nd = g.num_down_blocks
        self.dense_motion_network: DenseMotionNetwork | None = None
        if g.dense_motion is not None:
            self.dense_motion_network = DenseMotionNetwork(
                g.dense_motion, cfg.num_kp, cfg.num_channels, g.estimate_occlusion_map
            )
        self.first = SameBlock2d(cfg.num_channels, g.block_expansion, kernel_size=7, padding=3)
        self.down_blocks = nn.ModuleList(DownBlock2d(c(i), c(i + 1)) for i in range(nd))
        self.up_blocks = nn.ModuleList(UpBlock2d(c(nd - i), c(nd - i - 1)) for i in range(nd))
        self.bottleneck = nn.Sequential()
        for i in range(g.num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(c(nd)))
        self.final = nn.Conv2d(g.block_expansion, cfg.num_channels, 7, padding=3)

    def encode(self, source: torch.Tensor) -> torch.Tensor:
        """source (B, C, H, W) -> features (B, c(nd), H/2^nd, W/2^nd); depends on the source only."""
        out = self.first(source)
        for block in self.down_blocks:
            out = block(out)
        return out

    def decode(self, out: torch.Tensor) -> torch.Tensor:
        """bottleneck features -> prediction (B, C, H, W) in [0, 1]."""
        out = self.bottleneck(out)
        for block in self.up_blocks:
            out = block(out)
        return torch.sigmoid(self.final(out))

    def forward(self, source: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> GeneratorOutput:
        out = self.encode(source)
        res = GeneratorOutput(prediction=source)
        if self.dense_motion_network is not None:
            dm = self.dense_motion_network(source, kp_driving, kp_source)
            res.mask, res.sparse_deformed, res.occlusion_map = dm.mask, dm.sparse_deformed, dm.occlusion_map
            out = warp(out, dm.deformation)
            if dm.occlusion_map is not None:
                occ = dm.occlusion_map
                if occ.shape[2:] != out.shape[2:]:
                    occ = F.interpolate(occ, size=out.shape[2:], mode="bilinear", align_corners=False)
                out = out * occ
            res.deformed = warp(source, dm.deformation)
        res.bottleneck_input = out
        res.prediction = self.decode(out)
        return res
