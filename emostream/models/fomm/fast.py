"""Fast inference path derived from the official modules (same weights, same maths).

What changes against the straightforward forward (emostream.models.fomm.generator):
- the source's encoder features, its dense-motion downsample, its keypoints and its Gaussian
  heatmaps are computed once per portrait (:class:`SourceState`) and reused for every frame;
- eval BatchNorms are folded into the preceding convolutions (ResBlock's pre-activation norm1
  stays a per-channel affine);
- nearest-x2 upsample + 3x3 conv is computed as four 2x2 convolutions on the low-resolution
  input, one per output phase (2.25x fewer multiply-adds), interleaved afterwards;
- the anti-alias downsample is one strided depthwise convolution (only the kept pixels);
- frames that share a source sample it through one tall grid (no repeat of the source);
- only ``prediction`` is produced (no ``deformed`` / ``sparse_deformed`` / ``mask`` outputs).
Results agree with the reference modules to float32 rounding (see tests/test_fomm_fast.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from emostream.models.fomm.blocks import (
    AntiAliasInterpolation2d,
    DownBlock2d,
    Hourglass,
    ResBlock2d,
    SameBlock2d,
    UpBlock2d,
    inverse2x2,
    kp2gaussian,
    make_coordinate_grid,
)
from emostream.models.fomm.checkpoint import FommModel
from emostream.models.fomm.keypoints import Keypoints

_M = TypeVar("_M", bound=nn.Module)

#: Below this many input pixels an UpBlock runs as upsample + 3x3 conv (small maps fall off oneDNN).
SUBPIXEL_MIN_PIXELS = 16 * 16


def _as(m: nn.Module, cls: type[_M]) -> _M:
    assert isinstance(m, cls), f"expected {cls.__name__}, got {type(m).__name__}"
    return m


def _fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and bias of conv followed by eval BN, as one convolution."""
    assert bn.running_var is not None and bn.running_mean is not None
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    w = conv.weight * scale.view(-1, 1, 1, 1)
    b = (conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)) - bn.running_mean
    return w.detach().clone(), (b * scale + bn.bias).detach().clone()


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    assert bn.running_var is not None and bn.running_mean is not None
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale.detach().view(1, -1, 1, 1).clone(), (bn.bias - bn.running_mean * scale).detach().view(
        1, -1, 1, 1
    ).clone()


class FusedConv(nn.Module):
    """conv(+folded BN) -> ReLU [-> 2x2 avg-pool]."""

    def __init__(self, block: SameBlock2d | DownBlock2d, pool: bool) -> None:
        super().__init__()
        w, b = _fold_bn(block.conv, block.norm)
        self.weight = nn.Parameter(w, requires_grad=False)
        self.bias = nn.Parameter(b, requires_grad=False)
        self.padding = block.conv.padding
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(F.conv2d(x, self.weight, self.bias, padding=self.padding))
        return F.avg_pool2d(y, 2) if self.pool else y


def _phase_kernels(w: torch.Tensor) -> torch.Tensor:
    """3x3 kernel on a nearest-x2 image -> (4, Cout, Cin, 2, 2) kernels on the low-res image.

    Output row 2i+a reads upsampled rows 2i+a-1..2i+a+1 = low-res rows: a=0 -> (i-1, i, i),
    a=1 -> (i, i, i+1); taps landing on the same low-res row are summed."""
    rows = [
        torch.stack([w[:, :, 0], w[:, :, 1] + w[:, :, 2]], 2),
        torch.stack([w[:, :, 0] + w[:, :, 1], w[:, :, 2]], 2),
    ]
    out = []
    for r in rows:
        out.append(torch.stack([r[..., 0], r[..., 1] + r[..., 2]], -1))
        out.append(torch.stack([r[..., 0] + r[..., 1], r[..., 2]], -1))
    return torch.stack(out)  # phases (0,0), (0,1), (1,0), (1,1)


class FusedUp(nn.Module):
    """UpBlock2d as four 2x2 convolutions on the low-res input (sub-pixel form), BN folded."""

    def __init__(self, block: UpBlock2d) -> None:
        super().__init__()
        w, b = _fold_bn(block.conv, block.norm)
        self.w3 = nn.Parameter(w, requires_grad=False)
        k = _phase_kernels(w)
        self.k00, self.k01, self.k10, self.k11 = (nn.Parameter(k[i], requires_grad=False) for i in range(4))
        self.bias = nn.Parameter(b, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        if h * w < SUBPIXEL_MIN_PIXELS:  # tiny maps: oneDNN's 3x3 path beats four 2x2 convolutions
            return F.relu(
                F.conv2d(F.interpolate(x, scale_factor=2.0, mode="nearest"), self.w3, self.bias, padding=1)
            )
        xp = F.pad(x, (1, 1, 1, 1))  # (B, Cin, h+2, w+2)
        y00 = F.conv2d(xp[:, :, :-1, :-1], self.k00, self.bias)
        y01 = F.conv2d(xp[:, :, :-1, 1:], self.k01, self.bias)
        y10 = F.conv2d(xp[:, :, 1:, :-1], self.k10, self.bias)
        y11 = F.conv2d(xp[:, :, 1:, 1:], self.k11, self.bias)
        y = torch.stack([torch.stack([y00, y01], -1), torch.stack([y10, y11], -1)], 3)  # (B, C, h, 2, w, 2)
        return F.relu(y.reshape(b, -1, 2 * h, 2 * w))


class FusedRes(nn.Module):
    """ResBlock2d with norm2 folded into conv1 and norm1 as a per-channel affine."""

    def __init__(self, block: ResBlock2d) -> None:
        super().__init__()
        s1, t1 = _bn_affine(block.norm1)
        w1, b1 = _fold_bn(block.conv1, block.norm2)
        self.s1 = nn.Parameter(s1, requires_grad=False)
        self.t1 = nn.Parameter(t1, requires_grad=False)
        self.w1 = nn.Parameter(w1, requires_grad=False)
        self.b1 = nn.Parameter(b1, requires_grad=False)
        self.w2 = nn.Parameter(block.conv2.weight.detach().clone(), requires_grad=False)
        assert block.conv2.bias is not None
        self.b2 = nn.Parameter(block.conv2.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(torch.addcmul(self.t1, x, self.s1))
        out = F.relu(F.conv2d(out, self.w1, self.b1, padding=1))
        return F.conv2d(out, self.w2, self.b2, padding=1) + x


class FusedHourglass(nn.Module):
    def __init__(self, hg: Hourglass) -> None:
        super().__init__()
        self.down = nn.ModuleList(FusedConv(_as(b, DownBlock2d), pool=True) for b in hg.encoder.down_blocks)
        self.up = nn.ModuleList(FusedUp(_as(b, UpBlock2d)) for b in hg.decoder.up_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [x]
        for block in self.down:
            skips.append(block(skips[-1]))
        out = skips.pop()
        for block in self.up:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return out


class StridedAntiAlias(nn.Module):
    """AntiAliasInterpolation2d computing only the kept pixels (stride = 1/scale)."""

    def __init__(self, aa: AntiAliasInterpolation2d) -> None:
        super().__init__()
        self.weight = nn.Parameter(aa.weight.detach().clone(), requires_grad=False)
        self.pads = (aa.ka, aa.kb, aa.ka, aa.kb)
        self.step = aa.step
        self.groups = aa.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, self.pads), self.weight, stride=self.step, groups=self.groups)


def _maybe_down(aa: AntiAliasInterpolation2d | None) -> nn.Module:
    return nn.Identity() if aa is None else StridedAntiAlias(aa)


@dataclass
class SourceState:
    """Everything that depends only on the source portrait (batch S of sources)."""

    source: torch.Tensor  # (S, C, H, W)
    features: torch.Tensor  # (S, c(nd), H/2^nd, W/2^nd) encoder output
    motion_source: torch.Tensor  # (S, C, h, w) dense-motion downsample
    kp: Keypoints  # (S, K, 2), (S, K, 2, 2)
    heat: torch.Tensor  # (S, K, h, w) Gaussian heatmaps of kp on the dense-motion grid


def _sample_shared(img: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """img (S, C, h0, w0) with grid (N, ..., h, w, 2), N a multiple of S (frames grouped by source
    in order) -> (N, ..., C, h, w) via one tall grid per source (no copy of img)."""
    s, c = img.shape[:2]
    n, h, w = grid.shape[0], grid.shape[-3], grid.shape[-2]
    mid = grid.shape[1:-3]
    tall = grid.reshape(s, -1, w, 2)  # (S, (N/S)*prod(mid)*h, w, 2)
    out = F.grid_sample(img, tall, align_corners=False)  # (S, C, (N/S)*prod(mid)*h, w)
    out = out.view(s, c, n // s, *mid, h, w).movedim(1, -3)  # (S, N/S, ..., C, h, w)
    return out.reshape(n, *mid, c, h, w)


class FastFomm(nn.Module):
    """Inference-only FOMM built from a loaded :class:`FommModel` (weights copied and fused)."""

    def __init__(self, model: FommModel) -> None:
        super().__init__()
        cfg = model.config
        kd, g = model.kp_detector, model.generator
        self.config = cfg
        # keypoint detector
        self.kp_down = _maybe_down(kd.down)
        self.kp_hourglass = FusedHourglass(kd.predictor)
        self.kp_head = kd.kp
        self.jac_head = kd.jacobian
        self.temperature = kd.temperature
        self.num_jacobian_maps = kd.num_jacobian_maps
        # generator
        dm = g.dense_motion_network
        assert dm is not None, "FastFomm needs a generator with a dense motion network"
        self.first = FusedConv(g.first, pool=False)
        self.enc = nn.ModuleList(FusedConv(_as(b, DownBlock2d), pool=True) for b in g.down_blocks)
        self.dm_down = _maybe_down(dm.down)
        self.dm_hourglass = FusedHourglass(dm.hourglass)
        self.mask_head = dm.mask
        self.occ_head = dm.occlusion
        self.kp_variance = dm.kp_variance
        self.bottleneck = nn.Sequential(*[FusedRes(_as(b, ResBlock2d)) for b in g.bottleneck])
        self.up = nn.ModuleList(FusedUp(_as(b, UpBlock2d)) for b in g.up_blocks)
        self.final = g.final
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    # -- keypoints ---------------------------------------------------------------------------
    def detect(self, x: torch.Tensor) -> Keypoints:
        """images (B, C, H, W) -> Keypoints, as KPDetector.forward."""
        feats = self.kp_hourglass(self.kp_down(x))
        logits = self.kp_head(feats)
        b, k, h, w = logits.shape
        heat = F.softmax(logits.view(b, k, -1) / self.temperature, dim=2)  # (B, K, h*w)
        grid = make_coordinate_grid(h, w, x.dtype, x.device).view(h * w, 2)
        value = heat @ grid  # (B, K, 2)
        if self.jac_head is None:
            return Keypoints(value)
        jmap = self.jac_head(feats).view(b, self.num_jacobian_maps, 4, h * w)
        jac = (heat.unsqueeze(2) * jmap).sum(-1)  # (B, K, 4)
        return Keypoints(value, jac.view(b, k, 2, 2))

    # -- source ------------------------------------------------------------------------------
    def encode_source(self, source: torch.Tensor, kp: Keypoints | None = None) -> SourceState:
        """source (S, C, H, W) -> the per-portrait cache (exact: the same ops run once)."""
        feats = self.first(source)
        for block in self.enc:
            feats = block(feats)
        ms = self.dm_down(source)
        kp = self.detect(source) if kp is None else kp
        heat = kp2gaussian(kp.value, ms.shape[2], ms.shape[3], self.kp_variance)
        return SourceState(source, feats, ms, kp, heat)

    # -- frames ------------------------------------------------------------------------------
    @staticmethod
    def motion_input(
        src: torch.Tensor,
        kps: torch.Tensor,
        jac: torch.Tensor | None,
        kd: torch.Tensor,
        heat_src: torch.Tensor,
        kp_variance: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Heatmaps + sparse motions + warped source: the dense-motion hourglass input.

        src (S, C, h, w); kps, kd (N, K, 2); jac (N, K, 2, 2) = J_s J_d^-1 or None; heat_src
        (N, K, h, w) -> (x (N, (K+1)(C+1), h, w) with channel k(C+1)+c, motions (N, K+1, h, w, 2)).
        The CUDA backend swaps in cupy_kernels.fused_motion_input (one kernel, same result)."""
        n, k = kd.shape[:2]
        h, w = src.shape[2:]
        identity = make_coordinate_grid(h, w, src.dtype, src.device)  # (h, w, 2)
        delta = identity.view(1, 1, h, w, 2) - kd.view(n, k, 1, 1, 2)
        if jac is not None:
            delta = torch.einsum("nkij,nkhwj->nkhwi", jac, delta)
        motions = torch.cat([identity.expand(n, 1, h, w, 2), delta + kps.view(n, k, 1, 1, 2)], dim=1)
        heat = kp2gaussian(kd, h, w, kp_variance) - heat_src
        heat = torch.cat([heat.new_zeros(n, 1, h, w), heat], 1).unsqueeze(2)  # (N, K+1, 1, h, w)
        deformed = _sample_shared(src, motions)  # (N, K+1, C, h, w)
        return torch.cat([heat, deformed], 2).view(n, -1, h, w), motions

    def animate(self, state: SourceState, kp_driving: Keypoints) -> torch.Tensor:
        """Normalised driving keypoints (N, K, 2) -> prediction (N, C, H, W). Frames are grouped
        by source: frame n uses source n // (N / S)."""
        src = state.motion_source  # (S, C, h, w)
        s_count, h, w = src.shape[0], src.shape[2], src.shape[3]
        n = kp_driving.value.shape[0]
        assert n % s_count == 0, "frames must split evenly over the sources"
        rep = n // s_count

        def per_frame(t: torch.Tensor) -> torch.Tensor:  # (S, ...) -> (N, ...)
            return t.expand(n, *t.shape[1:]) if s_count == 1 else t.repeat_interleave(rep, 0)

        jac = None
        if kp_driving.jacobian is not None:
            assert state.kp.jacobian is not None
            jac = torch.matmul(per_frame(state.kp.jacobian), inverse2x2(kp_driving.jacobian))
        x, motions = self.motion_input(
            src, per_frame(state.kp.value), jac, kp_driving.value, per_frame(state.heat), self.kp_variance
        )
        feats = self.dm_hourglass(x)
        mask = F.softmax(self.mask_head(feats), dim=1)  # (N, K+1, h, w)
        deformation = torch.einsum("nkhwi,nkhw->nhwi", motions, mask.to(motions.dtype))  # (N, h, w, 2)
        fh, fw = state.features.shape[2:]
        if (h, w) != (fh, fw):
            deformation = F.interpolate(
                deformation.permute(0, 3, 1, 2), size=(fh, fw), mode="bilinear", align_corners=False
            ).permute(0, 2, 3, 1)
        out = _sample_shared(state.features, deformation.unsqueeze(1)).squeeze(1)  # (N, c, fh, fw)
        if self.occ_head is not None:
            occ = torch.sigmoid(self.occ_head(feats))
            if (h, w) != (fh, fw):
                occ = F.interpolate(occ, size=(fh, fw), mode="bilinear", align_corners=False)
            out = out * occ
        out = self.bottleneck(out)
        for block in self.up:
            out = block(out)
        return torch.sigmoid(self.final(out))
