"""An ensemble of lip refiners: several independently trained ``LipRefiner`` nets run side by side;
their heads' outputs before the closure gate (raw mouth and closure logit) are averaged and one
calibrated gate is applied to the average. Averaging members trained with different loss weights
and data mixes cuts their independent errors (mouth MAE on held-out real speech drops ~7 % with
three members) and sharpens the agreed closure logit.

To the engine an ensemble looks like one refiner with a wider state (``LipEnsemble.stream_cfg``):
the members' LSTM states are stacked along the layer axis, ``h``/``c`` float[ΣL, B, H] (members
share the width H), and their style vectors are concatenated, float[B, ΣD]. A label style is
linear in its table row, so the concatenated table gives the concatenation of the members' styles.
Members must agree on everything the stream feeds them: features, fps, lookahead, width, prior.

Checkpoint: kind ``lip_ensemble``; config ``{"members": [member configs], "gate_scale", "gate_bias"}``;
tensors ``members.K.<member tensor>``. ``load_lip_net`` reads either kind.

``LipNet`` is either network, and ``StepGraph``/``ClipGraph`` wrap either for ONNX export (they live
here, beside both networks, so ``lip_refiner`` does not import this module).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from emostream.errors import CheckpointError, ConfigError
from emostream.models.lip_refiner import KIND as REFINER_KIND
from emostream.models.lip_refiner import LipRefiner, LipRefinerConfig, closure_gate, load_lip_checkpoint
from emostream.models.weights import checkpoint_paths, load_into, read_checkpoint_json, save_checkpoint

KIND = "lip_ensemble"
#: What must be equal across members for one stream to feed them all.
_SHARED = ("feature_dim", "fps", "lookahead_frames", "hidden", "prior_input", "mouth_dim", "clip_dim")


@dataclass(frozen=True)
class LipEnsembleConfig:
    members: tuple[LipRefinerConfig, ...]
    gate_scale: float = 1.0  # the ensemble's own closure-gate calibration (members' are unused)
    gate_bias: float = 0.0

    def __post_init__(self) -> None:
        if len(self.members) < 2:
            raise ConfigError(f"a lip ensemble needs at least 2 members, got {len(self.members)}")
        first = self.members[0]
        for k, m in enumerate(self.members[1:], start=1):
            diff = [f for f in _SHARED if getattr(m, f) != getattr(first, f)]
            if diff:
                raise ConfigError(f"ensemble member {k} differs from member 0 in {', '.join(diff)}")
        if not self.gate_scale > 0:
            raise ConfigError(f"gate_scale must be > 0, got {self.gate_scale}")

    def stream_cfg(self) -> LipRefinerConfig:
        """The shapes the stream sees: layers and style widths summed over the members."""
        return replace(
            self.members[0],
            lstm_layers=sum(m.lstm_layers for m in self.members),
            style_dim=sum(m.style_dim for m in self.members),
            gate_scale=self.gate_scale,
            gate_bias=self.gate_bias,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "members": [m.to_dict() for m in self.members],
            "gate_scale": self.gate_scale,
            "gate_bias": self.gate_bias,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LipEnsembleConfig:
        unknown = set(d) - {"members", "gate_scale", "gate_bias"}
        if unknown:
            raise ConfigError(f"unknown lip ensemble config keys: {sorted(unknown)}")
        members = d.get("members")
        if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
            raise ConfigError("lip ensemble config needs 'members': a list of lip refiner configs")
        return cls(
            tuple(LipRefinerConfig.from_dict(m) for m in members),
            float(d.get("gate_scale", 1.0)),
            float(d.get("gate_bias", 0.0)),
        )


class LipEnsemble(nn.Module):
    """N lip refiners, one averaged head, one gate; the streaming interface of ``LipRefiner``."""

    def __init__(self, cfg: LipEnsembleConfig) -> None:
        super().__init__()
        # The gate calibration lives in ``cfg`` only (as on ``LipRefiner``: replace it there);
        # ``ens_cfg`` is derived from it and the members.
        self.cfg = cfg.stream_cfg()
        self.members = nn.ModuleList(LipRefiner(m) for m in cfg.members)
        self._layers = [m.lstm_layers for m in cfg.members]
        self._styles = [m.style_dim for m in cfg.members]

    @classmethod
    def of(cls, members: list[LipRefiner], gate_scale: float = 1.0, gate_bias: float = 0.0) -> LipEnsemble:
        """An ensemble holding copies of trained ``members``' weights."""
        cfg = LipEnsembleConfig(
            tuple(replace(m.cfg, gate_scale=1.0, gate_bias=0.0) for m in members), gate_scale, gate_bias
        )
        ens = cls(cfg)
        for dst, src in zip(ens.members, members, strict=True):
            dst.load_state_dict(src.state_dict())
        return ens.eval()

    @property
    def nets(self) -> list[LipRefiner]:
        """The members, typed."""
        return cast(list[LipRefiner], list(self.members))

    @property
    def ens_cfg(self) -> LipEnsembleConfig:
        """The checkpoint config: the members' configs and the current gate."""
        return LipEnsembleConfig(tuple(m.cfg for m in self.nets), self.cfg.gate_scale, self.cfg.gate_bias)

    def initial_state(self, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """(h, c), each float[ΣL, B, H] of zeros."""
        shape = (self.cfg.lstm_layers, batch, self.cfg.hidden)
        return torch.zeros(shape), torch.zeros(shape)

    def label_table(self) -> torch.Tensor:
        """float[8, ΣD]: the members' label tables side by side."""
        return torch.cat([m.label_table() for m in self.nets], dim=1)

    def encode_clip(self, clip: torch.Tensor) -> torch.Tensor:
        """clip float[B, T_ref, 28] → style float[B, ΣD]."""
        return torch.cat([m.encode_clip(clip) for m in self.nets], dim=1)

    def step(
        self,
        feature: torch.Tensor,
        style: torch.Tensor,
        h: torch.Tensor,
        c: torch.Tensor,
        prior: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One frame, as ``LipRefiner.step``: feature float[B, F], style float[B, ΣD], h/c
        float[ΣL, B, H] (+ prior float[B, M]) → (mouth float[B, M], h', c')."""
        raws, logits, hs, cs = [], [], [], []
        styles = style.split(self._styles, dim=1)  # N × [B, D_k]
        for m, s, hk, ck in zip(self.nets, styles, h.split(self._layers), c.split(self._layers), strict=True):
            raw, logit, h2, c2 = m.step_raw(feature, s, hk, ck, prior)
            raws.append(raw)
            logits.append(logit)
            hs.append(h2)
            cs.append(c2)
        raw = torch.stack(raws).mean(dim=0)  # [B, M]
        logit = torch.stack(logits).mean(dim=0)  # [B]
        mouth = closure_gate(raw, logit, self.cfg.gate_scale, self.cfg.gate_bias)
        return mouth, torch.cat(hs), torch.cat(cs)


#: Either network the engine can stream.
LipNet = LipRefiner | LipEnsemble


class StepGraph(nn.Module):
    """Export wrapper for one streaming step (ONNX inputs/outputs by position; ``prior`` float[1, M]
    is an input only with ``prior_input``)."""

    def __init__(self, model: LipNet) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        feature: torch.Tensor,
        style: torch.Tensor,
        h: torch.Tensor,
        c: torch.Tensor,
        prior: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.model.step(feature, style, h, c, prior)


class ClipGraph(nn.Module):
    """Export wrapper for the reference-clip emotion encoder: float[1, T_ref, 28] → float[1, D]."""

    def __init__(self, model: LipNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.model.encode_clip(clip)


def save_lip_ensemble(
    model: LipEnsemble, path: str | Path, meta: dict[str, Any] | None = None, half: bool = False
) -> Path:
    """Write ``NAME.safetensors`` (``half``: float16, as shipped) + ``NAME.json``."""
    return save_checkpoint(path, KIND, model.ens_cfg.to_dict(), model.state_dict(), meta, half=half)


def load_lip_net(path: str | Path) -> tuple[LipNet, dict[str, Any]]:
    """A lip refiner or lip ensemble checkpoint (its JSON ``kind`` decides) → (model in eval mode, meta)."""
    doc = read_checkpoint_json(path, (REFINER_KIND, KIND))
    if doc["kind"] == REFINER_KIND:
        return load_lip_checkpoint(path)
    try:
        cfg = LipEnsembleConfig.from_dict(doc["config"])
    except (TypeError, ValueError, ConfigError) as e:
        raise CheckpointError(f"bad lip ensemble config: {e}", checkpoint_paths(path)[1]) from e
    model = LipEnsemble(cfg)
    load_into(path, model)
    model.eval()
    meta = doc.get("meta", {})
    return model, meta if isinstance(meta, dict) else {}
