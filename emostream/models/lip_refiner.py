"""Lip refiner network (DREAM-Talk's lip-sync refinement, made streamable).

Re-predicts only the mouth subset of the ARKit vector (``emostream.arkit.MOUTH_SLICE``: the 27
jaw* and mouth* entries) from the audio features and the emotion style, so the diffusion model's
emotional upper face is kept while the mouth follows the audio tightly.

- **Audio encoder**: per-frame input projection + a *unidirectional* LSTM, so it streams with its
  state carried across chunks. Lookahead is a fixed output delay: the output at step ``s`` is the
  mouth of frame ``s - lookahead_frames`` (the network has heard ``lookahead_frames`` frames past
  the frame it predicts).
- **Emotion encoder** (same style interface as EmoDiff: a label + intensity, or a reference clip of
  ARKit frames): a learned label embedding interpolated from neutral by the intensity, or a 1-D CNN
  over the reference clip's non-mouth channels (eyes, brows, cheeks, nose, tongue, head: the mouth
  of a reference clip carries its own speech, not the emotion), mean-pooled over time.
- **Head**: a per-frame MLP on [LSTM output, style vector] → 27 mouth values (clamped to [0, 1] by
  the engine, not here, so training sees an unclipped signal) + a lip-closure logit that gates
  mouthClose towards jawOpen (see ``LipRefiner.mouth``), so p/b/m close the lips fully.
- **Prior** (``prior_input``, optional): EmoDiff's own mouth for the frame being predicted. It is
  fed to the LSTM beside the audio (step ``s`` gets the features of frame ``s`` and the prior of
  frame ``s - lookahead_frames``, zeros before the first frame) and to the head, which then predicts
  a residual on it. EmoDiff sees further ahead (lip rounding spreads backwards over consonants
  before a rounded vowel) while the refiner hears the lips shut; together they beat either alone.
  The prior of frame ``i`` is out when EmoDiff emits frame ``i``, which already needs the features
  of ``i + lookahead_frames``, so the stage adds no latency.

Several trained refiners can run as one: ``emostream.models.lip_ensemble.LipEnsemble`` averages
their head outputs before the closure gate (the shipped weights are such an ensemble).

Shapes: B batch, T frames, F = ``feature_dim``, H = ``hidden``, D = ``style_dim``, M = 27,
P = M with ``prior_input`` else 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from emostream.arkit import (
    BLENDSHAPE_INDEX,
    EMOTION_INDEX,
    MOUTH_INDICES,
    NON_MOUTH_INDICES,
    NUM_EMOTIONS,
    NUM_MOUTH,
)
from emostream.config import DEFAULT_FPS, check_fps
from emostream.errors import CheckpointError, ConfigError
from emostream.models.weights import (
    checkpoint_paths,
    load_into,
    read_checkpoint_json,
    save_checkpoint,
)

#: Reference clips are encoded from these channels of the motion vector (everything but the mouth).
CLIP_CHANNELS: tuple[int, ...] = NON_MOUTH_INDICES
NEUTRAL = EMOTION_INDEX["neutral"]
_JAW = MOUTH_INDICES.index(BLENDSHAPE_INDEX["jawOpen"])  # positions inside the mouth subset
_CLOSE = MOUTH_INDICES.index(BLENDSHAPE_INDEX["mouthClose"])


def closure_gate(raw: torch.Tensor, logit: torch.Tensor, scale: float, bias: float) -> torch.Tensor:
    """raw mouth float[..., M], closure logit float[...] → mouth float[..., M]: mouthClose raised
    by p · (jawOpen − mouthClose)⁺ with p = σ(scale · logit + bias) (see ``LipRefiner.mouth``)."""
    jaw, close = raw[..., _JAW], raw[..., _CLOSE]
    p = torch.sigmoid(scale * logit + bias)  # [...]
    closed = close + p * torch.relu(jaw - close)  # [...]
    return torch.cat([raw[..., :_CLOSE], closed[..., None], raw[..., _CLOSE + 1 :]], dim=-1)


@dataclass(frozen=True)
class LipRefinerConfig:
    feature_dim: int
    fps: int = DEFAULT_FPS
    lookahead_frames: int = 2  # output delay; 2 frames = 80 ms at 25 fps
    hidden: int = 128  # LSTM width H
    lstm_layers: int = 2
    style_dim: int = 32  # D
    cnn_channels: int = 64
    head_hidden: int = 128
    mouth_dim: int = NUM_MOUTH  # M = 27
    clip_dim: int = len(CLIP_CHANNELS)  # 28
    # Closure-gate calibration, p = σ(gate_scale · logit + gate_bias); (1, 0) during training,
    # chosen on held-out synthetic data afterwards (see LipRefiner.mouth).
    gate_scale: float = 1.0
    gate_bias: float = 0.0
    prior_input: bool = False  # EmoDiff's mouth of the predicted frame is an input (see above)

    def __post_init__(self) -> None:
        check_fps(self.fps)
        if self.feature_dim <= 0 or self.hidden <= 0 or self.style_dim <= 0:
            raise ConfigError(f"lip refiner sizes must be positive: {self}")
        if not 0 <= self.lookahead_frames <= 8:
            raise ConfigError(f"lookahead_frames must be in 0..8, got {self.lookahead_frames}")
        if not self.gate_scale > 0:
            raise ConfigError(f"gate_scale must be > 0, got {self.gate_scale}")
        if self.mouth_dim != NUM_MOUTH or self.clip_dim != len(CLIP_CHANNELS):
            raise ConfigError("lip refiner mouth_dim / clip_dim do not match emostream.arkit")

    @property
    def prior_dim(self) -> int:
        """P: width of the prior input (0 without one)."""
        return self.mouth_dim if self.prior_input else 0

    @property
    def lookahead_ms(self) -> float:
        return 1000.0 * self.lookahead_frames / self.fps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LipRefinerConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown lip refiner config keys: {sorted(unknown)}")
        return cls(**d)


class EmotionEncoder(nn.Module):
    """Style → float[B, D], from a label + intensity or from a reference ARKit clip."""

    def __init__(self, cfg: LipRefinerConfig) -> None:
        super().__init__()
        self.label = nn.Embedding(NUM_EMOTIONS, cfg.style_dim)
        c = cfg.cnn_channels
        self.cnn = nn.Sequential(
            nn.Conv1d(cfg.clip_dim, c, kernel_size=5, padding=2),
            nn.GELU(),
            nn.Conv1d(c, c, kernel_size=5, padding=2, stride=2),
            nn.GELU(),
            nn.Conv1d(c, cfg.style_dim, kernel_size=3, padding=1),
        )

    def from_label(self, index: torch.Tensor, intensity: torch.Tensor) -> torch.Tensor:
        """index: long[B], intensity: float[B] in [0, 1] → float[B, D]."""
        neutral = self.label.weight[NEUTRAL]  # [D]
        return neutral + intensity[:, None] * (self.label(index) - neutral)

    def from_clip(self, clip: torch.Tensor) -> torch.Tensor:
        """clip: float[B, T_ref, 28] (non-mouth channels, T_ref >= 1) → float[B, D]."""
        h = self.cnn(clip.transpose(1, 2))  # [B, D, ceil(T_ref/2)]
        return h.mean(dim=2)


class LipRefiner(nn.Module):
    feat_mean: torch.Tensor  # [F] buffer
    feat_std: torch.Tensor  # [F] buffer

    def __init__(self, cfg: LipRefinerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        f, h = cfg.feature_dim, cfg.hidden
        # Feature normalisation, fitted on the training corpus (part of the weights).
        self.register_buffer("feat_mean", torch.zeros(f))
        self.register_buffer("feat_std", torch.ones(f))
        self.in_proj = nn.Sequential(nn.Linear(f + cfg.prior_dim, h), nn.GELU())
        self.lstm = nn.LSTM(h, h, num_layers=cfg.lstm_layers, batch_first=True)
        self.emotion = EmotionEncoder(cfg)
        self.head = nn.Sequential(
            nn.Linear(h + cfg.style_dim + cfg.prior_dim, cfg.head_hidden),
            nn.GELU(),
            nn.Linear(cfg.head_hidden, cfg.mouth_dim + 1),  # + the lip-closure logit
        )

    def initial_state(self, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """(h, c), each float[layers, B, H] of zeros."""
        shape = (self.cfg.lstm_layers, batch, self.cfg.hidden)
        return torch.zeros(shape), torch.zeros(shape)

    def _inputs(self, features: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
        """features float[..., F] (+ prior float[..., M]) → the LSTM input float[..., H]."""
        x = (features - self.feat_mean) / self.feat_std
        if self.cfg.prior_input:
            if prior is None:
                raise ConfigError("this lip refiner takes EmoDiff's mouth as a prior input")
            x = torch.cat([x, prior], dim=-1)  # [..., F + M]
        return self.in_proj(x)

    def forward(
        self,
        features: torch.Tensor,
        style: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
        prior: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """features: float[B, T, F]; style: float[B, D] or float[B, T, D] (per frame); prior
        (``prior_input`` only): float[B, T, M], ``prior[:, s]`` = EmoDiff's mouth of frame
        ``s - lookahead_frames`` (zeros before the first frame).

        Returns (mouth float[B, T, M], new state). ``mouth[:, s]`` is the mouth of frame
        ``s - lookahead_frames``.
        """
        b, t, f = features.shape
        assert f == self.cfg.feature_dim, f"expected {self.cfg.feature_dim} features, got {f}"
        x = self._inputs(features, prior)  # [B, T, H]
        if state is None:
            state = self.initial_state(b)
        out, new_state = self.lstm(x, state)  # [B, T, H]
        if style.dim() == 2:
            style = style[:, None, :].expand(b, t, -1)  # [B, T, D]
        y, _ = self.mouth(out, style, prior)  # [B, T, M]
        return y, (new_state[0], new_state[1])

    def mouth(
        self, out: torch.Tensor, style: torch.Tensor, prior: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """LSTM output float[..., H], style float[..., D] (+ prior float[..., M]) →
        (mouth float[..., M], closure logit float[...]).

        With a prior the head predicts a residual: mouth = prior + head(...).
        Lip closure gate: the head also predicts how closed the lips are, p = σ(logit), and
        mouthClose is raised by p · (jawOpen − mouthClose)⁺, so at p → 1 the lips meet exactly
        (ARKit: mouthClose = jawOpen cancels the jaw's lip gap) instead of a regression's blur.
        p = σ(gate_scale · logit + gate_bias): a calibration of the trained gate (config)."""
        raw, logit = self.head_raw(out, style, prior)
        return self.gate(raw, logit), logit

    def head_raw(
        self, out: torch.Tensor, style: torch.Tensor, prior: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The head before the closure gate: (raw mouth float[..., M], closure logit float[...])."""
        z = [out, style] + ([prior] if self.cfg.prior_input and prior is not None else [])
        h = self.head(torch.cat(z, dim=-1))  # [..., M + 1]
        raw, logit = h[..., : self.cfg.mouth_dim], h[..., self.cfg.mouth_dim]
        if self.cfg.prior_input and prior is not None:
            raw = raw + prior
        return raw, logit

    def gate(self, raw: torch.Tensor, logit: torch.Tensor) -> torch.Tensor:
        """The calibrated closure gate on raw float[..., M] → mouth float[..., M]."""
        return closure_gate(raw, logit, self.cfg.gate_scale, self.cfg.gate_bias)

    def label_table(self) -> torch.Tensor:
        """float[8, D]: the label embeddings (a label style is neutral + intensity · (label − neutral))."""
        return self.emotion.label.weight

    def encode_clip(self, clip: torch.Tensor) -> torch.Tensor:
        """clip float[B, T_ref, 28] → style float[B, D]."""
        return self.emotion.from_clip(clip)

    def forward_train(
        self, features: torch.Tensor, style: torch.Tensor, prior: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """As ``forward`` from a zero state, also returning the closure logits float[B, T]."""
        x = self._inputs(features, prior)  # [B, T, H]
        out, _ = self.lstm(x, self.initial_state(features.shape[0]))  # [B, T, H]
        style = style[:, None, :].expand(-1, features.shape[1], -1)  # [B, T, D]
        return self.mouth(out, style, prior)

    def step(
        self,
        feature: torch.Tensor,
        style: torch.Tensor,
        h: torch.Tensor,
        c: torch.Tensor,
        prior: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One frame: feature float[B, F], style float[B, D], h/c float[layers, B, H] (+ prior
        float[B, M]) → (mouth float[B, M], h', c'). What the streaming engine and the ONNX graph
        run: the same weights as ``forward``, written as explicit LSTM cells (a few small matmuls
        per frame, cheaper than a length-1 ``nn.LSTM`` call)."""
        raw, logit, h, c = self.step_raw(feature, style, h, c, prior)
        return self.gate(raw, logit), h, c

    def step_raw(
        self,
        feature: torch.Tensor,
        style: torch.Tensor,
        h: torch.Tensor,
        c: torch.Tensor,
        prior: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``step`` before the closure gate: (raw mouth float[B, M], closure logit float[B], h', c')."""
        x = self._inputs(feature, prior)  # [B, H]
        hs, cs = [], []
        for k in range(self.cfg.lstm_layers):
            w_ih = getattr(self.lstm, f"weight_ih_l{k}")  # [4H, H]
            w_hh = getattr(self.lstm, f"weight_hh_l{k}")  # [4H, H]
            b = getattr(self.lstm, f"bias_ih_l{k}") + getattr(self.lstm, f"bias_hh_l{k}")  # [4H]
            gates = x @ w_ih.t() + h[k] @ w_hh.t() + b  # [B, 4H], PyTorch order i, f, g, o
            i, f, g, o = gates.chunk(4, dim=1)
            ck = torch.sigmoid(f) * c[k] + torch.sigmoid(i) * torch.tanh(g)  # [B, H]
            x = torch.sigmoid(o) * torch.tanh(ck)  # [B, H]
            hs.append(x)
            cs.append(ck)
        raw, logit = self.head_raw(x, style, prior)  # [B, M], [B]
        return raw, logit, torch.stack(hs), torch.stack(cs)


KIND = "lip_refiner"


def save_lip_checkpoint(model: LipRefiner, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write ``NAME.safetensors`` + ``NAME.json`` (config + training metadata)."""
    return save_checkpoint(path, KIND, model.cfg.to_dict(), model.state_dict(), meta)


def load_lip_checkpoint(path: str | Path) -> tuple[LipRefiner, dict[str, Any]]:
    """Read a checkpoint written by ``save_lip_checkpoint`` (every name, shape, dtype checked).

    Returns (model in eval mode, the JSON ``meta``)."""
    doc = read_checkpoint_json(path, KIND)
    _, js_path = checkpoint_paths(path)
    try:
        cfg = LipRefinerConfig.from_dict(doc["config"])
    except (TypeError, ConfigError) as e:
        raise CheckpointError(f"bad lip refiner config: {e}", js_path) from e
    model = LipRefiner(cfg)
    load_into(path, model)
    model.eval()
    meta = doc.get("meta", {})
    return model, meta if isinstance(meta, dict) else {}
