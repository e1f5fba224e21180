"""A tiny random EmoDiff (no training needed) for tests of the motion engine's plumbing."""

from __future__ import annotations

import torch

from emostream.models.emodiff import EmoDiff, EmoDiffConfig

FDIM = 10
#: The engine meta the tiny model is run with: hop 3 + look-ahead 2 → latency 5 frames.
META = {"hop": 3, "lookahead": 2, "fps": 25}


def tiny_emodiff(steps: int = 2, feature_dim: int = FDIM) -> EmoDiff:
    """Window 12, 2 layers of width 32, weights drawn with seed 0 (std 0.2), motion stats 0.3/0.2."""
    torch.manual_seed(0)
    cfg = EmoDiffConfig.from_dict({"feature_dim": feature_dim, "window": 12, "d_model": 32, "n_layers": 2,
                                   "n_heads": 2, "d_ff": 64, "dropout": 0.0, "sampler_steps": steps,
                                   "style": {"d_style": 8, "hidden": 8}})  # fmt: skip
    m = EmoDiff(cfg)
    for p in m.parameters():
        if p.ndim > 1:
            torch.nn.init.normal_(p, std=0.2)
    with torch.no_grad():
        m.get_buffer("motion_mean").fill_(0.3)
        m.get_buffer("motion_std").fill_(0.2)
    return m
