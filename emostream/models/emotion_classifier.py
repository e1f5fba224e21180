"""Emotion classifier: judges which of the 8 emotions a motion sequence shows (the eval metric).

    clip float32[B, T, 55] (raw ARKit + head radians; any T >= 1) -> logits float32[B, 8]

A 1-D CNN over time (dilated, GELU) on normalised motion, then mean+max pooling over time. It is
trained on the corpus targets (``emostream train classifier``) and then applied to generated
sequences: ``emotion_acc`` of EmoDiff is this classifier's accuracy on them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from emostream.arkit import MOTION_DIM, NUM_EMOTIONS
from emostream.errors import CheckpointError
from emostream.models.weights import checkpoint_paths, load_into, read_checkpoint_json, save_checkpoint

KIND = "emotion_classifier"


@dataclass(frozen=True)
class ClassifierConfig:
    hidden: int = 64
    kernel: int = 5
    layers: int = 3
    dropout: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassifierConfig:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown classifier config key(s): {', '.join(sorted(unknown))}")
        return cls(**d)


class EmotionClassifier(nn.Module):
    motion_mean: torch.Tensor
    motion_std: torch.Tensor

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        ch = MOTION_DIM
        for i in range(cfg.layers):
            dil = 2**i
            layers += [
                nn.Conv1d(ch, cfg.hidden, cfg.kernel, padding=dil * (cfg.kernel // 2), dilation=dil),
                nn.GELU(),
            ]
            ch = cfg.hidden
        self.cnn = nn.Sequential(*layers)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(2 * cfg.hidden, NUM_EMOTIONS)
        self.register_buffer("motion_mean", torch.zeros(MOTION_DIM))
        self.register_buffer("motion_std", torch.ones(MOTION_DIM))

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """clip [B, T, 55] -> logits [B, 8]"""
        assert clip.ndim == 3 and clip.shape[-1] == MOTION_DIM, clip.shape
        x = ((clip - self.motion_mean) / self.motion_std).transpose(1, 2)  # [B, 55, T]
        h = self.cnn(x)  # [B, hidden, T]
        return self.head(self.drop(torch.cat([h.mean(2), h.amax(2)], dim=1)))


def save_classifier(
    model: EmotionClassifier, path: str | Path, meta: dict[str, Any] | None = None, *, half: bool = False
) -> Path:
    return save_checkpoint(path, KIND, model.cfg.to_dict(), model.state_dict(), meta, half=half)


def load_classifier(path: str | Path) -> tuple[EmotionClassifier, dict[str, Any]]:
    doc = read_checkpoint_json(path, KIND)
    try:
        cfg = ClassifierConfig.from_dict(doc["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"bad classifier config: {e}", checkpoint_paths(path)[1]) from e
    model = EmotionClassifier(cfg)
    load_into(path, model)
    meta = doc.get("meta", {})
    return model.eval(), meta if isinstance(meta, dict) else {}
