"""EmoDiff: a small transformer sequence denoiser over windows of ARKit motion (v-prediction).

Shapes (B = batch, W = window frames, F = audio feature dim, S = style dim, D = 55 motion dims):

    x_t     float32[B, W, D]   noisy normalised motion  z_t = alpha_t * x0 + sigma_t * eps
    t       float32[B]         diffusion time in [0, 1] (cosine schedule, see engine.sampler)
    audio   float32[B, W, F]   per-frame audio features (raw; normalised inside with buffers)
    style   float32[B, W, S]   per-frame style vector (StyleEncoder); per-frame so a change blends
    prefix  float32[B, W, D]   known normalised motion (previous frames / overlap), 0 where unknown
    mask    float32[B, W, 1]   1 where ``prefix`` is a hard condition, else 0
    keep    float32[B, 2]      classifier-free guidance switches (audio, style): 1 keep, 0 drop
    ->  v   float32[B, W, D]   v-prediction  v = alpha_t * eps - sigma_t * x0

Conditions enter as per-frame token sums (motion/prefix/mask projection + audio encoder + style
projection + learned positions); the diffusion time drives adaptive LayerNorm in every block.
Dropped conditions are replaced by learned null vectors (trained with ``p_drop_*``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from emostream.arkit import MOTION_DIM
from emostream.errors import CheckpointError
from emostream.models.style_encoder import StyleConfig, StyleEncoder
from emostream.models.weights import checkpoint_paths, load_into, read_checkpoint_json, save_checkpoint


@dataclass(frozen=True)
class EmoDiffConfig:
    feature_dim: int
    window: int = 24  # W frames per denoised window
    d_model: int = 96
    n_layers: int = 3
    n_heads: int = 4
    d_ff: int = 192
    dropout: float = 0.05
    p_drop_audio: float = 0.1  # CFG dropout during training
    p_drop_style: float = 0.1
    sampler_steps: int = 8  # steps this network is meant to be sampled with (teacher: DDIM)
    style: StyleConfig = field(default_factory=StyleConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EmoDiffConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown EmoDiff config key(s): {', '.join(unknown)}")
        kw = dict(d)
        kw["style"] = StyleConfig(**kw.get("style", {}))
        return cls(**kw)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """t float32[B] in [0, 1] -> float32[B, dim] sinusoidal features."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = (t.float() * 1000.0).unsqueeze(-1) * freqs  # [B, half]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class Block(nn.Module):
    """Pre-LN transformer block with adaLN (scale/shift/gate from the time embedding)."""

    def __init__(self, cfg: EmoDiffConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        # Python constants, not read off tensor shapes: the ONNX tracer then records no
        # shape-to-float conversions (and prints no TracerWarnings).
        self.d_model, self.head_dim = d, d // cfg.n_heads
        self.att_scale = 1.0 / math.sqrt(self.head_dim)
        self.ln1 = nn.LayerNorm(d, elementwise_affine=False)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d, elementwise_affine=False)
        self.ff = nn.Sequential(nn.Linear(d, cfg.d_ff), nn.GELU(), nn.Linear(cfg.d_ff, d))
        self.ada = nn.Linear(d, 6 * d)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """h [B, W, d], c [B, d] -> [B, W, d]"""
        B, W = h.shape[0], h.shape[1]
        s1, b1, g1, s2, b2, g2 = self.ada(c).unsqueeze(1).chunk(6, dim=-1)  # each [B, 1, d]
        x = self.ln1(h) * (1 + s1) + b1
        q, k, v = self.qkv(x).view(B, W, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        att = (q @ k.transpose(-1, -2)) * self.att_scale  # [B, H, W, W]
        y = (att.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, W, self.d_model)  # [B, W, d]
        h = h + (1 + g1) * self.drop(self.proj(y))
        x = self.ln2(h) * (1 + s2) + b2
        return h + (1 + g2) * self.drop(self.ff(x))


class EmoDiff(nn.Module):
    feat_mean: torch.Tensor
    feat_std: torch.Tensor
    motion_mean: torch.Tensor
    motion_std: torch.Tensor
    silence_feat: torch.Tensor

    def __init__(self, cfg: EmoDiffConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, S, Fd = cfg.d_model, cfg.style.d_style, cfg.feature_dim
        self.style_encoder = StyleEncoder(cfg.style)
        self.in_proj = nn.Linear(2 * MOTION_DIM + 1, d)  # [x_t, prefix, mask]
        self.audio_enc = nn.Sequential(nn.Linear(Fd, d), nn.GELU(), nn.Linear(d, d))
        self.audio_conv = nn.Conv1d(d, d, 5, padding=2, groups=d // 16)
        self.style_proj = nn.Linear(S, d)
        self.null_audio = nn.Parameter(torch.zeros(d))
        self.null_style = nn.Parameter(torch.zeros(d))
        self.pos = nn.Parameter(torch.randn(cfg.window, d) * 0.02)
        self.t_mlp = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_out = nn.LayerNorm(d)
        self.out = nn.Linear(d, MOTION_DIM)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        # normalisation statistics of the training data
        self.register_buffer("feat_mean", torch.zeros(Fd))
        self.register_buffer("feat_std", torch.ones(Fd))
        self.register_buffer("motion_mean", torch.zeros(MOTION_DIM))
        self.register_buffer("motion_std", torch.ones(MOTION_DIM))
        self.register_buffer("silence_feat", torch.zeros(Fd))  # features of silent audio

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        audio: torch.Tensor,
        style: torch.Tensor,
        prefix: torch.Tensor,
        mask: torch.Tensor,
        keep: torch.Tensor,
    ) -> torch.Tensor:
        if not torch.jit.is_tracing():  # the exported graph has these shapes fixed
            _B, W, D = x_t.shape
            assert self.cfg.window == W and D == MOTION_DIM, (W, D)
        a = self.audio_enc((audio - self.feat_mean) / self.feat_std)  # [B, W, d]
        a = a + self.audio_conv(a.transpose(1, 2)).transpose(1, 2)  # local context
        ka, ks = keep[:, 0:1].unsqueeze(-1), keep[:, 1:2].unsqueeze(-1)  # [B, 1, 1] each
        a = ka * a + (1 - ka) * self.null_audio
        s = ks * self.style_proj(style) + (1 - ks) * self.null_style  # [B, W, d]
        h = self.in_proj(torch.cat([x_t, prefix * mask, mask], dim=-1)) + a + s + self.pos
        c = self.t_mlp(timestep_embedding(t, self.cfg.d_model))  # [B, d]
        for blk in self.blocks:
            h = blk(h, c)
        return self.out(self.ln_out(h))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


KIND = "emodiff"


def save_emodiff(
    model: EmoDiff, path: str | Path, meta: dict[str, Any] | None = None, *, half: bool = False
) -> Path:
    """Write ``NAME.safetensors`` + ``NAME.json`` (config + training metadata)."""
    return save_checkpoint(path, KIND, model.cfg.to_dict(), model.state_dict(), meta, half=half)


def load_emodiff(path: str | Path) -> tuple[EmoDiff, dict[str, Any]]:
    """Read a checkpoint written by ``save_emodiff``; every tensor's name/shape/dtype is checked.
    Returns (model in eval mode, the JSON ``meta``)."""
    doc = read_checkpoint_json(path, KIND)
    _, js_path = checkpoint_paths(path)
    try:
        cfg = EmoDiffConfig.from_dict(doc["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"bad EmoDiff config: {e}", js_path) from e
    model = EmoDiff(cfg)
    load_into(path, model)
    model.eval()
    meta = doc.get("meta", {})
    return model, meta if isinstance(meta, dict) else {}
