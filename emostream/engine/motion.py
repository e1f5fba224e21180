"""The motion stage: audio features + emotion → ARKit frames (52 blendshapes + head pose), live.

``MotionEngine.load()`` loads EmoDiff weights once (shared by every session) on a backend chosen
once; ``engine.new_stream(seed, emotion)`` is cheap and holds one session's sliding window.
An optional lip refiner (``emostream.engine.lip``) re-predicts the mouth of every frame from the
(VAD-gated) features EmoDiff sees (and, with a prior input, EmoDiff's own mouth of that frame); a
frame is returned once both its EmoDiff motion and the features of its refiner look-ahead exist:
with the refiner's look-ahead <= EmoDiff's it adds no latency (``MotionEngine.latency_frames``).

    engine = MotionEngine.load()                       # default distilled weights, 4 steps
    stream = engine.new_stream(seed=0, emotion=EmotionStyle("happy", 0.8))
    frames = stream.push(features)                     # float32[m, 55], frames ready so far
    tail = stream.flush()                              # end of input
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from emostream.arkit import MOTION_DIM, EmotionStyle
from emostream.config import DEFAULT_FPS, check_fps
from emostream.engine.backends import make_backend
from emostream.engine.blinks import BlinkShape, BlinkShaper
from emostream.engine.lip import LipRefiner
from emostream.engine.sampler import Guidance, WindowSampler, WindowSchedule
from emostream.errors import CheckpointError, ConfigError, InputError
from emostream.models.emodiff import EmoDiff, load_emodiff

log = logging.getLogger(__name__)

#: emostream/assets/weights/<name>.{safetensors,json}
DEFAULT_WEIGHTS = "emodiff_distilled"
TEACHER_WEIGHTS = "emodiff"
#: Zero-latency output filter weight (see ``WindowSchedule.smooth``).
DEFAULT_SMOOTH = 0.5
#: Frames emitted per window when the checkpoint's meta names no hop.
DEFAULT_HOP = 3


def weights_path(name: str = DEFAULT_WEIGHTS) -> Path:
    return Path(str(resources.files("emostream") / "assets" / "weights" / name))


class RefinerStream(Protocol):
    """The refiner's split streaming API (``emostream.engine.lip.LipStream``): it takes the
    features as they arrive, says how many frames it can refine, and refines EmoDiff's frames."""

    def step(self, features: np.ndarray) -> int: ...
    def finish(self) -> int: ...
    def apply(self, motion: np.ndarray) -> np.ndarray: ...
    @property
    def mouths_ready(self) -> int: ...
    def clear(self) -> None: ...
    # offline form (evaluation): motion in, refined motion out
    def push(self, features: np.ndarray, motion: np.ndarray) -> np.ndarray: ...
    def flush(self) -> np.ndarray: ...


class Refiner(Protocol):
    lookahead_frames: int

    def new_stream(self, style: Any = None) -> RefinerStream: ...


def _load_refiner(refiner: bool | str | Path | Refiner | None, device: str, backend: str) -> Refiner | None:
    if refiner is None or refiner is False:
        return None
    if not isinstance(refiner, (bool, str, Path)):
        return refiner  # an already built refiner object (new_stream(style) -> push/flush/clear)

    if refiner is True:
        try:
            return LipRefiner.load(None, device=device, backend=backend)
        except CheckpointError as e:
            log.warning("lip refiner disabled: %s", e)
            return None
    return LipRefiner.load(refiner, device=device, backend=backend)


class MotionEngine:
    """Loaded EmoDiff weights + backend + sampler settings, shared by all streams."""

    def __init__(
        self,
        model: EmoDiff,
        meta: dict[str, Any],
        *,
        device: str = "cpu",
        backend: str = "torch",
        steps: int | None = None,
        fps: int = DEFAULT_FPS,
        refiner: Refiner | None = None,
        guidance: Guidance = Guidance(),
        smooth: float = DEFAULT_SMOOTH,
        hop: int | None = None,
        blinks: BlinkShape | None = BlinkShape(),
    ) -> None:
        self.fps = check_fps(fps)
        trained_fps = int(meta.get("fps", fps))
        if trained_fps != fps:
            raise ConfigError(f"these EmoDiff weights were trained at {trained_fps} fps, not {fps}")
        self.model = model.eval()
        self.meta = meta
        self.steps = int(steps if steps is not None else model.cfg.sampler_steps)
        if self.steps < 1:
            raise ConfigError(f"sampler steps must be >= 1, got {self.steps}")
        # hop None: the checkpoint's (meta "hop"). Each frame less of hop is a frame less of
        # latency; a window runs every hop frames, so EmoDiff's time per frame grows as 1 / hop.
        hop = int(meta.get("hop", DEFAULT_HOP)) if hop is None else int(hop)
        self.schedule = WindowSchedule(model.cfg.window, hop, int(meta.get("lookahead", 2)), smooth=smooth)
        self.backend_name = backend
        self.net = make_backend(model, backend, device)
        self.refiner = refiner
        self.guidance = guidance
        self.blinks = blinks  # None: EmoDiff's blinks as sampled (see emostream.engine.blinks)
        self._mean = model.motion_mean.cpu().numpy().copy()
        self._std = model.motion_std.cpu().numpy().copy()
        self._silence = model.silence_feat.cpu().numpy().copy()

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        device: str = "cpu",
        backend: str = "torch",
        steps: int | None = None,
        fps: int = DEFAULT_FPS,
        refiner: bool | str | Path | Refiner | None = True,
        guidance: Guidance | None = None,
        smooth: float = DEFAULT_SMOOTH,
        hop: int | None = None,
        blinks: BlinkShape | None = BlinkShape(),
    ) -> MotionEngine:
        """``path`` None → the default distilled weights shipped in the package. ``steps`` None →
        the steps the checkpoint was trained/distilled for. ``refiner`` True → the default lip
        refiner if its weights are shipped, a path → that checkpoint, False/None → no refiner.
        ``guidance`` None → the checkpoint's recommended guidance (meta ``guidance``), else none.
        ``hop`` None → the checkpoint's sliding-window hop (meta ``hop``), else this one.
        ``blinks`` → EmoDiff's blink onsets drawn as whole blinks (``emostream.engine.blinks``);
        None → its blinks as sampled."""
        p = weights_path() if path is None else Path(path)
        try:
            model, meta = load_emodiff(p)
        except CheckpointError as e:
            if path is None:
                raise CheckpointError(
                    "default EmoDiff weights are missing from the package; train them with "
                    "`emostream train emodiff` + `emostream train distill`, or pass a checkpoint",
                    p,
                ) from e
            raise
        if guidance is None:
            g = meta.get("guidance") or {}
            try:
                guidance = Guidance(
                    float(g.get("audio", 1.0)),
                    float(g.get("style", 1.0)),
                    bool(g.get("audio_mouth_only", False)),
                )
            except (TypeError, ValueError, AttributeError) as e:
                raise CheckpointError(f"bad 'guidance' in the checkpoint meta: {g!r}", p) from e
        return cls(
            model,
            meta,
            device=device,
            backend=backend,
            steps=steps,
            fps=fps,
            refiner=_load_refiner(refiner, device, backend),
            guidance=guidance,
            smooth=smooth,
            hop=hop,
            blinks=blinks,
        )

    @property
    def feature_dim(self) -> int:
        return self.model.cfg.feature_dim

    @property
    def latency_frames(self) -> int:
        """Algorithmic latency in frames: frame ``i`` is out once the features of frames
        ``<= i + latency_frames - 1`` are in. EmoDiff needs ``hop + lookahead`` (the first frame
        of a hop waits for the whole hop and its look-ahead); the lip refiner reads the same
        features and needs ``refiner lookahead + 1`` for its mouth, so with a refiner
        look-ahead <= EmoDiff's it adds nothing."""
        lip = int(getattr(self.refiner, "lookahead_frames", 0)) + 1 if self.refiner is not None else 0
        return max(self.schedule.latency_frames, lip)

    def style_vector(self, style: EmotionStyle | np.ndarray) -> np.ndarray:
        if not isinstance(style, EmotionStyle):
            ref = np.asarray(style, dtype=np.float32)
            if ref.ndim != 2 or ref.shape[1] != MOTION_DIM or len(ref) < 1:
                raise InputError(f"style reference must be float32[T>=1, {MOTION_DIM}], got {ref.shape}")
            if not np.isfinite(ref).all():
                raise InputError("style reference contains NaN or inf")
        return self.model.style_encoder.style_vector(style)

    def new_stream(self, seed: int = 0, emotion: EmotionStyle = EmotionStyle()) -> MotionStream:
        return MotionStream(self, seed, emotion)

    def generate(
        self, features: np.ndarray, emotion: EmotionStyle = EmotionStyle(), seed: int = 0
    ) -> np.ndarray:
        """Offline: the whole clip through one stream (identical to streaming it)."""
        s = self.new_stream(seed, emotion)
        return np.concatenate([s.push(features), s.flush()], axis=0)


class MotionStream:
    """One session. Not thread-safe: one producer calls push/flush/clear/set_*."""

    def __init__(self, engine: MotionEngine, seed: int, emotion: EmotionStyle) -> None:
        self.engine = engine
        self.seed = int(seed)
        self.emotion: EmotionStyle | None = emotion
        self._sampler = WindowSampler(
            engine.net,
            engine._mean,
            engine._std,
            engine._silence,
            engine.style_vector(emotion),
            seeds=(self.seed,),
            steps=engine.steps,
            schedule=engine.schedule,
            guidance=engine.guidance,
        )
        self._refiner = engine.refiner.new_stream(emotion) if engine.refiner is not None else None
        self._blinks = BlinkShaper(engine.blinks, engine.fps) if engine.blinks is not None else None
        self._waiting: list[np.ndarray] = []  # EmoDiff frames float32[k, 55] waiting for their mouth

    @property
    def frames_emitted(self) -> int:
        return self._sampler.emitted

    def _out(self, motion: np.ndarray) -> np.ndarray:
        """EmoDiff's new frames (one seed) -> the frames whose refined mouth is ready too, with
        their blinks shaped."""
        out = self._refined(motion)
        return self._blinks.shape_frames(out) if self._blinks is not None else out

    def _refined(self, motion: np.ndarray) -> np.ndarray:
        if self._refiner is None:
            return motion
        if len(motion):
            self._waiting.append(motion)
        n_wait = sum(len(m) for m in self._waiting)
        k = min(n_wait, self._refiner.mouths_ready)
        if k == 0:
            return np.zeros((0, MOTION_DIM), np.float32)
        rows = np.concatenate(self._waiting) if len(self._waiting) > 1 else self._waiting[0]
        self._waiting = [rows[k:]] if k < len(rows) else []
        return self._refiner.apply(rows[:k])

    def push(self, features: np.ndarray, vad: np.ndarray | None = None) -> np.ndarray:
        """features float32[n, FEATURE_DIM] (+ optional per-frame speech probability; frames under
        0.5 are treated as silence) -> float32[m, 55]: the frames ready so far."""
        gated = self._sampler.gate(features, vad)
        if self._refiner is not None:
            self._refiner.step(gated)  # the same features EmoDiff sees, as soon as they arrive
        motion, _ = self._sampler.push_gated(gated)
        return self._out(motion[0])

    def flush(self) -> np.ndarray:
        """End of input: the remaining frames float32[k, 55]; the stream can continue afterwards."""
        motion, _ = self._sampler.flush()
        if self._refiner is not None:
            self._refiner.finish()
        out = self._out(motion[0])
        if self._waiting:  # cannot happen: both stages have seen the same frames
            raise RuntimeError("lip refiner and EmoDiff disagree on the number of frames")
        return out

    def set_emotion(self, emotion: EmotionStyle) -> None:
        """Takes effect from the next window, blended over half a window."""
        self.emotion = emotion
        self._sampler.set_style(self.engine.style_vector(emotion))
        if self._refiner is not None and hasattr(self._refiner, "set_emotion"):
            self._refiner.set_emotion(emotion.name, emotion.intensity)

    def set_style(self, reference: np.ndarray) -> None:
        """Emotion style from a reference clip of ARKit frames float32[T, 55] ("like this")."""
        self.emotion = None
        self._sampler.set_style(self.engine.style_vector(reference))
        if self._refiner is not None and hasattr(self._refiner, "set_style"):
            self._refiner.set_style(np.asarray(reference, dtype=np.float32))

    def clear(self) -> int:
        """Barge-in: drop every frame not yet returned (queued features, EmoDiff frames waiting
        for their mouth, queued mouths); motion continues from the last frame EmoDiff emitted, so
        with silence it relaxes smoothly to idle. Returns the number of frames dropped: the
        features of that many frames were pushed but their frames will never be returned, so the
        next features pushed belong to the frame that many frames later on the caller's
        timeline."""
        dropped = self._sampler.clear() + sum(len(m) for m in self._waiting)
        self._waiting = []
        if self._refiner is not None:
            self._refiner.clear()
        return dropped
