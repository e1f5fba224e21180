"""The lip refiner stage of the engine: re-predicts the mouth of each motion frame from the audio.

``LipRefiner.load()`` loads the default weights (or a checkpoint: one refiner, or an ensemble of
refiners, ``emostream.models.lip_ensemble``, which streams the same way) on a backend chosen once
(torch on cpu/cuda, or ONNX Runtime); ``.new_stream(emotion)`` gives a ``LipStream`` that carries
the LSTM state across chunks. Frames are processed one at a time, so the output is bit-identical
for any chunking of the same input.

Contract (the MotionEngine's refiner hook): ``stream.step(features float32[n, F]) -> int`` takes
the features as they arrive and returns how many frames' mouths can now be made: the network hears
``lookahead_frames`` frames ahead, so frame ``i`` is ready once features ``<= i + lookahead_frames``
are in. ``stream.apply(motion float32[k, 55])`` takes EmoDiff's next ``k`` frames and returns them
with ``MOUTH_SLICE`` replaced by the refined mouth (clamped to [0, 1]; every other value passed
through bit-exact). The network steps frame by frame inside ``apply``, because a refiner with a
prior input (``LipRefinerConfig.prior_input``) also reads EmoDiff's mouth of the frame it refines;
EmoDiff emits frame ``i`` only after features ``i + lookahead`` anyway, so this adds no latency.
``finish()`` at the end of a segment makes the last frames ready (the audio padded by repeating
its last feature frame, as in training); the LSTM state is reset once they are applied.

``stream.push(features, motion) -> float32[m, 55]`` (offline use: eval, tests) is built on these:
the frames whose mouth is ready (``m = n`` once the first ``lookahead_frames`` frames are in);
``flush()`` returns the held-back frames and resets; ``clear()`` drops everything (barge-in).
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections import deque
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from emostream.arkit import EMOTION_INDEX, MOTION_DIM, MOUTH_SLICE, EmotionStyle
from emostream.errors import CheckpointError, ConfigError, DependencyError, DeviceError, InputError
from emostream.models.lip_ensemble import ClipGraph, LipNet, StepGraph, load_lip_net
from emostream.models.lip_refiner import CLIP_CHANNELS, NEUTRAL, LipRefinerConfig

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS = "lip_refiner"  # emostream/assets/weights/lip_refiner.{safetensors,json}
#: A style change (set_emotion / set_style) is blended in linearly over this many frames.
STYLE_BLEND_FRAMES = 8
BACKENDS = ("torch", "onnx")


def default_weights_path() -> Path:
    return Path(str(resources.files("emostream") / "assets" / "weights" / DEFAULT_WEIGHTS))


class _Backend(Protocol):
    """One streaming step, written once per backend; the stream logic is shared."""

    def initial_state(self) -> Any: ...

    def step(
        self, feature: np.ndarray, style: np.ndarray, state: Any, prior: np.ndarray
    ) -> tuple[np.ndarray, Any]:
        """feature float32[1, F], style float32[1, D], prior float32[1, M] (ignored without a prior
        input) → (mouth float32[M], new state)."""
        ...

    def encode_clip(self, clip: np.ndarray) -> np.ndarray:
        """clip float32[1, T_ref, 28] → style float32[D]."""
        ...


class _TorchBackend:
    def __init__(self, net: LipNet, device: str) -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()

    def initial_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = self.net.initial_state(1)
        return h.to(self.device), c.to(self.device)

    @torch.inference_mode()
    def step(
        self,
        feature: np.ndarray,
        style: np.ndarray,
        state: tuple[torch.Tensor, torch.Tensor],
        prior: np.ndarray,
    ) -> tuple[np.ndarray, tuple[torch.Tensor, torch.Tensor]]:
        x = torch.from_numpy(feature).to(self.device)
        s = torch.from_numpy(style).to(self.device)
        p = torch.from_numpy(prior).to(self.device) if self.net.cfg.prior_input else None
        y, h, c = self.net.step(x, s, state[0], state[1], p)
        return y[0].cpu().numpy(), (h, c)

    @torch.inference_mode()
    def encode_clip(self, clip: np.ndarray) -> np.ndarray:
        out = self.net.encode_clip(torch.from_numpy(clip).to(self.device))
        return out[0].cpu().numpy().astype(np.float32)


def export_onnx(net: LipNet, step_path: str | Path, clip_path: str | Path) -> None:
    """Export the streaming step and the reference-clip encoder as two ONNX graphs (opset 17).

    step: feature[1, F], style[1, D], h[L, 1, H], c[L, 1, H] (+ prior[1, M]) → mouth[1, M], h_out, c_out
    clip: clip[1, T_ref, 28] → style[1, D]  (T_ref dynamic)
    """
    cfg = net.cfg
    net = net.cpu().eval()
    h, c = net.initial_state(1)
    args: tuple[torch.Tensor, ...] = (torch.zeros(1, cfg.feature_dim), torch.zeros(1, cfg.style_dim), h, c)
    names = ["feature", "style", "h", "c"]
    if cfg.prior_input:
        args += (torch.zeros(1, cfg.mouth_dim),)
        names.append("prior")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about the legacy exporter
        torch.onnx.export(
            StepGraph(net), args, step_path, dynamo=False, opset_version=17,
            input_names=names, output_names=["mouth", "h_out", "c_out"],
        )  # fmt: skip
        torch.onnx.export(
            ClipGraph(net), (torch.zeros(1, 16, cfg.clip_dim),), clip_path, dynamo=False,
            opset_version=17, input_names=["clip"], output_names=["style"],
            dynamic_axes={"clip": {1: "frames"}},
        )  # fmt: skip


class _OnnxBackend:
    def __init__(self, net: LipNet, device: str) -> None:
        # deferred: onnxruntime (heavy), loaded only when the ONNX backend is chosen
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - onnxruntime is a core dependency
            raise DependencyError("onnxruntime is not installed: pip install onnxruntime") from e
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise DeviceError("ONNX Runtime has no CUDA provider: pip install 'emostream[cuda]'")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        with tempfile.TemporaryDirectory(prefix="emostream-lip-") as tmp:
            step_path, clip_path = Path(tmp) / "lip_step.onnx", Path(tmp) / "lip_clip.onnx"
            export_onnx(net, step_path, clip_path)
            self.step_sess = ort.InferenceSession(str(step_path), opts, providers=providers)
            self.clip_sess = ort.InferenceSession(str(clip_path), opts, providers=providers)
        self.cfg = net.cfg

    def initial_state(self) -> tuple[np.ndarray, np.ndarray]:
        shape = (self.cfg.lstm_layers, 1, self.cfg.hidden)
        return np.zeros(shape, np.float32), np.zeros(shape, np.float32)

    def step(
        self,
        feature: np.ndarray,
        style: np.ndarray,
        state: tuple[np.ndarray, np.ndarray],
        prior: np.ndarray,
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        feeds = {"feature": feature, "style": style, "h": state[0], "c": state[1]}
        if self.cfg.prior_input:
            feeds["prior"] = prior
        y, h, c = self.step_sess.run(None, feeds)
        return y[0], (h, c)

    def encode_clip(self, clip: np.ndarray) -> np.ndarray:
        (out,) = self.clip_sess.run(None, {"clip": clip})
        return np.asarray(out[0], dtype=np.float32)


@dataclass(frozen=True)
class StyleRef:
    """A reference clip of ARKit frames (float32[T, 55]) whose emotion the mouth should follow."""

    frames: np.ndarray


class LipRefiner:
    """A loaded lip refiner: weights + backend. Cheap ``new_stream()`` per session."""

    def __init__(self, net: LipNet, backend: str = "torch", device: str = "cpu") -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"lip refiner backend must be one of {BACKENDS}, got {backend!r}")
        if device.startswith("cuda") and not torch.cuda.is_available() and backend == "torch":
            raise DeviceError("--device cuda requested but torch sees no CUDA GPU")
        if not (device == "cpu" or device.startswith("cuda")):
            raise ConfigError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
        self.cfg: LipRefinerConfig = net.cfg
        #: Output lags input by this many frames (the network hears them before it answers).
        self.lookahead_frames: int = net.cfg.lookahead_frames
        self.backend_name = backend
        self.device = device
        net = net.eval()
        # The label embedding is a table: label styles are computed here, identically for all backends.
        self._labels = net.label_table().detach().cpu().numpy().astype(np.float32)  # [8, D]
        self._backend: _Backend = (
            _TorchBackend(net, device) if backend == "torch" else _OnnxBackend(net, device)
        )

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu", backend: str = "torch") -> LipRefiner:
        """Load ``path`` (NAME, NAME.safetensors or NAME.json) or, if None, the default weights."""
        p = default_weights_path() if path is None else Path(path)
        try:
            net, _ = load_lip_net(p)
        except CheckpointError as e:
            if path is None:
                raise CheckpointError(
                    "default lip refiner weights are missing from the package; "
                    "train them with `emostream train lip` or pass a checkpoint",
                    p,
                ) from e
            raise
        return cls(net, backend=backend, device=device)

    @property
    def feature_dim(self) -> int:
        return self.cfg.feature_dim

    @property
    def fps(self) -> int:
        return self.cfg.fps

    def label_style(self, emotion: EmotionStyle) -> np.ndarray:
        """float32[D]: neutral + intensity · (label − neutral), as in training."""
        neutral = self._labels[NEUTRAL]
        return (neutral + np.float32(emotion.intensity) * (self._labels[emotion.index] - neutral)).astype(
            np.float32
        )

    def clip_style(self, reference: np.ndarray) -> np.ndarray:
        """float32[D] from a reference clip float32[T, 55] (its non-mouth channels)."""
        ref = np.asarray(reference, dtype=np.float32)
        if ref.ndim != 2 or ref.shape[1] != MOTION_DIM or ref.shape[0] < 1:
            raise InputError(f"style reference must be float32[T>=1, {MOTION_DIM}], got {ref.shape}")
        if not np.isfinite(ref).all():
            raise InputError("style reference contains NaN or infinite values")
        return self._backend.encode_clip(np.ascontiguousarray(ref[None][:, :, list(CLIP_CHANNELS)]))

    def style_vector(self, style: EmotionStyle | StyleRef | np.ndarray | str | None) -> np.ndarray:
        if style is None:
            return self.label_style(EmotionStyle())
        if isinstance(style, str):
            return self.label_style(EmotionStyle.parse(style))
        if isinstance(style, EmotionStyle):
            return self.label_style(style)
        if isinstance(style, StyleRef):
            return self.clip_style(style.frames)
        return self.clip_style(np.asarray(style))

    def new_stream(self, style: EmotionStyle | StyleRef | np.ndarray | str | None = None) -> LipStream:
        return LipStream(self, self.style_vector(style))

    def refine(
        self,
        features: np.ndarray,
        motion: np.ndarray,
        style: EmotionStyle | StyleRef | np.ndarray | str | None = None,
    ) -> np.ndarray:
        """Offline: a whole sequence through one stream (same numbers as streaming it)."""
        stream = self.new_stream(style)
        out = [stream.push(features, motion), stream.flush()]
        return np.concatenate(out, axis=0)


class LipStream:
    """Per-session streaming state. Not thread-safe: one producer calls push/flush/clear."""

    def __init__(self, refiner: LipRefiner, style: np.ndarray) -> None:
        self._r = refiner
        self._b = refiner._backend
        self.lookahead_frames = refiner.lookahead_frames
        self._style = style.astype(np.float32)
        self._style_from = self._style
        self._style_to = self._style
        self._blend_pos = STYLE_BLEND_FRAMES
        self._reset()

    def _reset(self) -> None:
        self._state = self._b.initial_state()
        self._feats: deque[np.ndarray] = deque()  # features not stepped yet, in order
        self._pending: deque[np.ndarray] = deque()  # push(): motion frames waiting for their mouth
        self._seen = 0  # feature frames received since the last reset (padding excluded)
        self._made = 0  # mouths produced since the last reset
        self._stepped = 0  # network steps since the last reset (padding included)
        self._finished = False  # finish() called: the segment's last frames may be padded
        self._last_feature: np.ndarray | None = None

    # -- style -------------------------------------------------------------------------
    def set_emotion(self, name: str, intensity: float = 1.0) -> None:
        if name not in EMOTION_INDEX:
            EmotionStyle(name, intensity)  # raises the ConfigError with the list of names
        self._set_target(self._r.label_style(EmotionStyle(name, intensity)))

    def set_style(self, reference: EmotionStyle | StyleRef | np.ndarray | str) -> None:
        self._set_target(self._r.style_vector(reference))

    def _set_target(self, vec: np.ndarray) -> None:
        self._style_from = self._current_style()
        self._style_to = vec.astype(np.float32)
        self._blend_pos = 0

    def _current_style(self) -> np.ndarray:
        if self._blend_pos >= STYLE_BLEND_FRAMES:
            return self._style_to
        a = np.float32((self._blend_pos + 1) / STYLE_BLEND_FRAMES)
        return (self._style_from + a * (self._style_to - self._style_from)).astype(np.float32)

    # -- data: split API (live path) --------------------------------------------------
    def _step(self, feature: np.ndarray, prior: np.ndarray) -> np.ndarray:
        """One network step (feature of frame ``_stepped``, prior of frame ``_stepped - L``)."""
        style = self._current_style()
        if self._blend_pos < STYLE_BLEND_FRAMES:
            self._blend_pos += 1
        mouth, self._state = self._b.step(feature[None], style[None], self._state, prior[None])
        self._stepped += 1
        return mouth

    def _next_feature(self) -> np.ndarray:
        if self._feats:
            return self._feats.popleft()
        assert self._finished and self._last_feature is not None  # padding past the segment's end
        return self._last_feature

    def step(self, features: np.ndarray) -> int:
        """Take features float32[n, F]; returns the number of frames whose mouth is ready."""
        features = np.asarray(features)
        f = self._r.feature_dim
        if features.ndim != 2 or features.shape[1] != f:
            raise InputError(f"lip refiner features must be float32[n, {f}], got {features.shape}")
        if self._finished and features.shape[0]:
            raise InputError("lip refiner: apply the finished segment's frames before new features")
        features = np.ascontiguousarray(features, dtype=np.float32)
        no_prior = self._zero_prior
        for i in range(features.shape[0]):
            if self._stepped < self.lookahead_frames:  # steps before frame 0: no prior frame yet
                self._step(features[i], no_prior)
            else:
                self._feats.append(features[i])
            self._seen += 1
        if features.shape[0]:
            self._last_feature = features[-1].copy()
        return self.mouths_ready

    def finish(self) -> int:
        """End of segment: the frames still waiting for their look-ahead become ready (the audio
        padded by repeating its last feature frame); the LSTM state is reset once they are
        applied. Returns the number of mouths ready."""
        if self._made == self._seen:
            self._end_segment()
            return 0
        self._finished = True
        while self._stepped < self.lookahead_frames:  # a segment shorter than the look-ahead
            self._step(self._next_feature(), self._zero_prior)
        return self.mouths_ready

    @property
    def _zero_prior(self) -> np.ndarray:
        return np.zeros(self._r.cfg.mouth_dim, np.float32)

    def _end_segment(self) -> None:
        """A fresh LSTM state for the next segment; push()'s waiting motion frames are kept."""
        pending = self._pending
        self._reset()
        self._pending = pending

    @property
    def mouths_ready(self) -> int:
        if self._finished:
            return self._seen - self._made
        return max(0, self._seen - self.lookahead_frames - self._made)

    def apply(self, motion: np.ndarray) -> np.ndarray:
        """motion float32[k <= mouths_ready, 55] (EmoDiff's next frames) → the same frames with
        the refined mouth."""
        motion = np.asarray(motion, dtype=np.float32)
        if motion.ndim != 2 or motion.shape[1] != MOTION_DIM:
            raise InputError(f"lip refiner motion must be float32[n, {MOTION_DIM}], got {motion.shape}")
        ready = self.mouths_ready
        if motion.shape[0] > ready:
            raise InputError(f"lip refiner has {ready} mouths ready, asked for {motion.shape[0]}")
        out = motion.copy()
        for k in range(motion.shape[0]):
            prior = np.ascontiguousarray(motion[k, MOUTH_SLICE])
            out[k, MOUTH_SLICE] = np.clip(self._step(self._next_feature(), prior), 0.0, 1.0)
            self._made += 1
        if self._finished and self._made == self._seen:
            self._end_segment()
        return out

    # -- data: motion in, refined motion out (offline use) ----------------------------
    def _take_ready(self) -> np.ndarray:
        k = min(len(self._pending), self.mouths_ready)
        if k == 0:
            return np.zeros((0, MOTION_DIM), np.float32)
        return self.apply(np.stack([self._pending.popleft() for _ in range(k)]))

    def push(self, features: np.ndarray, motion: np.ndarray) -> np.ndarray:
        """features float32[n, F], motion float32[n, 55] → the final frames float32[m, 55]."""
        features = np.asarray(features)
        motion = np.asarray(motion)
        f = self._r.feature_dim
        if features.ndim != 2 or features.shape[1] != f:
            raise InputError(f"lip refiner features must be float32[n, {f}], got {features.shape}")
        if motion.ndim != 2 or motion.shape[1] != MOTION_DIM:
            raise InputError(f"lip refiner motion must be float32[n, {MOTION_DIM}], got {motion.shape}")
        if motion.shape[0] != features.shape[0]:
            raise InputError(
                f"lip refiner got {features.shape[0]} feature frames but {motion.shape[0]} motion frames"
            )
        self.step(features)
        self._pending.extend(np.asarray(motion, dtype=np.float32))
        return self._take_ready()

    def flush(self) -> np.ndarray:
        """End of segment: the held-back frames float32[k <= lookahead, 55]; then a fresh state."""
        self.finish()
        out = self._take_ready()
        self._reset()
        return out

    def clear(self) -> None:
        """Barge-in: drop queued mouths, held-back frames and the LSTM state (the style is kept)."""
        self._reset()

    @property
    def pending_frames(self) -> int:
        return len(self._pending)
