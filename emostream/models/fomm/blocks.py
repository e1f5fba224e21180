"""FOMM building blocks, exactly as the official modules/util.py (state_dict names included)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def make_coordinate_grid(
    h: int, w: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None
):
    """(h, w, 2) grid, [..., 0] = x = 2*col/(w-1) - 1, [..., 1] = y likewise."""
    x = torch.arange(w, dtype=dtype, device=device)
    y = torch.arange(h, dtype=dtype, device=device)
    x = 2 * (x / (w - 1)) - 1
    y = 2 * (y / (h - 1)) - 1
    yy = y.view(-1, 1).repeat(1, w)
    xx = x.view(1, -1).repeat(h, 1)
    return torch.cat([xx.unsqueeze(2), yy.unsqueeze(2)], 2)


def kp2gaussian(value: torch.Tensor, h: int, w: int, kp_variance: float) -> torch.Tensor:
    """value (B, K, 2) -> heatmaps (B, K, h, w) = exp(-0.5 |z - p|^2 / var) on the (h, w) grid."""
    grid = make_coordinate_grid(h, w, value.dtype, value.device).view(1, 1, h, w, 2)
    diff = grid - value.view(*value.shape[:2], 1, 1, 2)
    return torch.exp(-0.5 * (diff**2).sum(-1) / kp_variance)


def inverse2x2(m: torch.Tensor) -> torch.Tensor:
    """Closed-form inverse of (..., 2, 2) matrices (ONNX-exportable, unlike torch.inverse)."""
    a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
    det = a * d - b * c
    row0 = torch.stack([d, -b], dim=-1)
    row1 = torch.stack([-c, a], dim=-1)
    return torch.stack([row0, row1], dim=-2) / det.unsqueeze(-1).unsqueeze(-1)


class SameBlock2d(nn.Module):
    """conv -> BN -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(cout, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class DownBlock2d(nn.Module):
    """3x3 conv -> BN -> ReLU -> 2x2 avg-pool: (B, cin, H, W) -> (B, cout, H/2, W/2)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm = nn.BatchNorm2d(cout, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), 2)


class UpBlock2d(nn.Module):
    """nearest x2 -> 3x3 conv -> BN -> ReLU: (B, cin, H, W) -> (B, cout, 2H, 2W)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm = nn.BatchNorm2d(cout, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.relu(self.norm(self.conv(x)))


class ResBlock2d(nn.Module):
    """Pre-activation residual block: x + conv2(relu(bn2(conv1(relu(bn1(x))))))."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.norm1 = nn.BatchNorm2d(c, affine=True)
        self.norm2 = nn.BatchNorm2d(c, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


def hourglass_width(block_expansion: int, max_features: int, i: int) -> int:
    """c(i) = min(mf, be * 2^i)."""
    return min(max_features, block_expansion * (2**i))


class Encoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        c = lambda i: hourglass_width(block_expansion, max_features, i)  # noqa: E731
        self.down_blocks = nn.ModuleList(
            DownBlock2d(in_features if i == 0 else c(i), c(i + 1)) for i in range(num_blocks)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class Decoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        c = lambda i: hourglass_width(block_expansion, max_features, i)  # noqa: E731
        self.up_blocks = nn.ModuleList(
            UpBlock2d((1 if i == num_blocks - 1 else 2) * c(i + 1), c(i)) for i in reversed(range(num_blocks))
        )
        self.out_filters = block_expansion + in_features

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        feats = list(feats)
        out = feats.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), feats.pop()], dim=1)
        return out


class Hourglass(nn.Module):
    """U-Net: (B, cin, H, W) -> (B, be + cin, H, W); H, W divisible by 2^num_blocks."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def antialias_kernel(channels: int, scale: float) -> torch.Tensor:
    """The fixed Gaussian anti-alias kernel (C, 1, k, k), sigma = (1/s - 1)/2, k = 2*round(4 sigma)+1."""
    sigma = (1 / scale - 1) / 2
    k = 2 * round(sigma * 4) + 1
    mgrid = torch.arange(k, dtype=torch.float32)
    g = torch.exp(-((mgrid - (k - 1) / 2) ** 2) / (2 * sigma**2))
    kernel = g.view(-1, 1) * g.view(1, -1)
    kernel = kernel / kernel.sum()
    return kernel.view(1, 1, k, k).repeat(channels, 1, 1, 1)


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur at full resolution, then keep every int(1/s)-th row/col starting at 0.

    Buffer ``weight`` (C, 1, k, k) is stored in official checkpoints."""

    weight: torch.Tensor

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        self.register_buffer("weight", antialias_kernel(channels, scale))
        k = self.weight.shape[-1]
        self.ka = k // 2
        self.kb = self.ka - 1 if k % 2 == 0 else self.ka
        self.groups = channels
        self.scale = scale
        self.step = int(1 / scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1.0:
            return x
        out = F.pad(x, (self.ka, self.kb, self.ka, self.kb))
        out = F.conv2d(out, weight=self.weight, groups=self.groups)
        return out[:, :, :: self.step, :: self.step]
