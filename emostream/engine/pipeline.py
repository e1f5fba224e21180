"""The one audio → features + VAD → motion → frames core, shared by offline and live paths.

``MotionPipeline`` (``emostream.engine.stages``, re-exported here) is the streaming core:
``push(audio16k)`` any number of samples, get the motion frames (float32[m, 55]) that became
computable; ``flush()`` at the end. Its output does not depend on how the audio is chunked.
``Engine`` holds what many sessions share (the motion model's weights, the renderers per portrait)
and builds per-stream state cheaply; ``Engine.new_session`` wraps it in a live ``Session``.

Offline entry points (used by ``emostream render --audio`` and tests):
``offline_motion(engine, audio)`` → float32[T, 55] and
``offline_render(engine, audio)`` → (motion float32[T, 55], frames uint8[T, H, W, 3]),
with ``T = frames_covering(len(audio), fps)``. The live ``Session`` pushes the same audio
through the same ``MotionPipeline``, so with a fixed seed both produce identical frames.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from emostream.arkit import MOTION_DIM, EmotionStyle
from emostream.assets import sample_path
from emostream.config import DEFAULT_FPS, DEFAULT_SEED, SAMPLE_RATE, check_fps, frames_covering
from emostream.engine import features, vad
from emostream.engine.blinks import BlinkShape
from emostream.engine.clock import Clock
from emostream.engine.session import Session, SessionConfig
from emostream.engine.stages import (
    FeatureStage,
    MotionModel,
    MotionPipeline,
    MotionStream,
    PortraitKey,
    StageTimes,
    VadStage,
)
from emostream.media.audio import load_audio
from emostream.native_logs import quiet_onnxruntime
from emostream.render.base import Renderer
from emostream.render.factory import create_renderer
from emostream.render.framing import Framing
from emostream.render.portrait import load_image, prepare_portrait

__all__ = [
    "MAX_CACHED_PORTRAITS",
    "Engine",
    "EngineConfig",
    "FeatureStage",
    "MotionModel",
    "MotionPipeline",
    "MotionStream",
    "PortraitKey",
    "StageTimes",
    "VadStage",
    "iter_offline_motion",
    "offline_motion",
    "offline_render",
]


@dataclass(frozen=True)
class EngineConfig:
    """What the shared engine loads once."""

    renderer: str = "analytic"
    size: int = 256
    device: str = "cpu"
    fps: int = DEFAULT_FPS
    motion_path: str | None = None
    steps: int | None = None
    #: EmoDiff sliding-window hop (frames per window); None: the checkpoint's meta "hop".
    hop: int | None = None
    #: EmoDiff + lip refiner backend, "torch" or "onnx". None: ONNX Runtime on CPU (2.9x less CPU
    #: per EmoDiff window than torch at one thread; the window is on the critical path of each
    #: hop's first frame: 60 s live runs at load 3-4 dropped 16-41 frames vs 76 with torch, first
    #: frame 248-299 ms vs 652 ms), torch on CUDA.
    backend: str | None = None
    refiner: bool = True
    #: EmoDiff's blink onsets drawn as whole blinks (emostream.engine.blinks); False: as sampled.
    blink_shaping: bool = True
    #: Output framing (emostream.render.framing): None = the square face crop of ``size``.
    framing: Framing | None = None
    #: FOMM checkpoint (and its config) for renderer="fomm".
    renderer_checkpoint: str | None = None
    renderer_config: str | None = None
    #: torch intra-op threads on CPU (process-wide). The per-frame models are tiny, so extra threads
    #: only spin: the distilled sampler measured 2.1 CPU ms/frame at 1 thread vs 12.4 at 2.
    #: Parallelism comes from one worker thread per session instead. None leaves torch's default.
    torch_threads: int | None = 1

    def __post_init__(self) -> None:
        check_fps(self.fps)

    @property
    def resolved_backend(self) -> str:
        if self.backend is not None:
            return self.backend
        return "onnx" if self.device == "cpu" else "torch"


#: Renderers kept per Engine (least recently used dropped first; a session keeps its own).
MAX_CACHED_PORTRAITS = 8


@dataclass
class Engine:
    """Weights shared by every stream: the motion model and one renderer per portrait
    (the ``MAX_CACHED_PORTRAITS`` most recently used are kept).

    Per-stream state (features, VAD, sampler state) is built by ``new_pipeline`` in
    microseconds; ``new_session`` wraps it in a live ``Session``. Stage factories are
    injectable so the runtime can be tested on its own.
    """

    motion_model: MotionModel
    renderer_factory: Callable[[Any], Renderer]
    featurizer_factory: Callable[[int], FeatureStage]
    vad_factory: Callable[[int], VadStage]
    lookahead_samples: int
    fps: int = DEFAULT_FPS
    portrait_loader: Callable[[PortraitKey], Any] = field(default=lambda key: key)
    _renderers: OrderedDict[str, Renderer] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, config: EngineConfig | None = None) -> Engine:
        """Load the real stages: features, Silero VAD, EmoDiff + refiner, a renderer."""
        # deferred: torch (heavy); the runtime alone (stage doubles, sessions, transports) never needs it
        import torch

        from emostream.engine.motion import MotionEngine

        cfg = config or EngineConfig()
        quiet_onnxruntime()  # before any ONNX Runtime session: its log lines only with --debug
        if cfg.device == "cpu" and cfg.torch_threads is not None:
            torch.set_num_threads(cfg.torch_threads)
        motion = MotionEngine.load(
            cfg.motion_path, device=cfg.device, backend=cfg.resolved_backend, steps=cfg.steps,
            fps=cfg.fps, refiner=cfg.refiner, hop=cfg.hop,
            blinks=BlinkShape() if cfg.blink_shaping else None,
        )  # fmt: skip

        def make_renderer(prepared: Any) -> Renderer:
            return create_renderer(
                cfg.renderer, prepared, size=cfg.size, device=cfg.device,
                framing=cfg.framing, checkpoint=cfg.renderer_checkpoint, config=cfg.renderer_config,
            )  # fmt: skip

        engine = cls(
            motion_model=motion,
            renderer_factory=make_renderer,
            featurizer_factory=features.Featurizer,
            vad_factory=lambda fps: vad.SileroVAD(fps=fps, causal=True),
            lookahead_samples=max(
                features.Featurizer(cfg.fps).lookahead_samples,
                vad.SileroVAD(cfg.fps, causal=True).lookahead_samples,
            ),
            fps=cfg.fps,
            portrait_loader=lambda key: prepare_portrait(load_image(key), cfg.size, path=key),
        )
        engine.warm_up()
        return engine

    @property
    def latency_frames(self) -> int:
        """Frame ``i`` needs the features of frames ``<= i + latency_frames - 1`` (motion model)."""
        return int(self.motion_model.latency_frames)

    @property
    def latency(self) -> Fraction:
        """Algorithmic latency in seconds: audio look-ahead of the features/VAD + the motion
        model's frames (a frame's own duration included)."""
        return Fraction(self.lookahead_samples, SAMPLE_RATE) + Fraction(self.latency_frames, self.fps)

    def warm_up(self, portrait: PortraitKey = None) -> None:
        """Run every stage once (allocations, kernel selection) so a session's first frame
        is not slowed by one-time costs."""
        speech = load_audio(sample_path())[:SAMPLE_RATE]  # speech and silence take different paths
        motion = offline_motion(self, np.concatenate([speech, np.zeros(SAMPLE_RATE // 2, np.float32)]))
        self.renderer_for(portrait).render(motion[:1])

    def renderer_for(self, portrait: PortraitKey = None) -> Renderer:
        """The cached renderer of a portrait (None: the default portrait)."""
        key = "<default>" if portrait is None else str(Path(portrait).expanduser().resolve())
        with self._lock:
            r = self._renderers.get(key)
            if r is None:
                r = self.renderer_factory(self.portrait_loader(portrait))
                self._renderers[key] = r
                while len(self._renderers) > MAX_CACHED_PORTRAITS:
                    self._renderers.popitem(last=False)
            self._renderers.move_to_end(key)
            return r

    def new_pipeline(
        self, *, seed: int = DEFAULT_SEED, emotion: EmotionStyle | None = None,
        times: StageTimes | None = None,
    ) -> MotionPipeline:  # fmt: skip
        style = emotion or EmotionStyle()
        return MotionPipeline(
            self.featurizer_factory(self.fps),
            self.vad_factory(self.fps),
            self.motion_model.new_stream(seed, style),
            times=times,
        )

    def new_session(
        self,
        portrait: PortraitKey = None,
        *,
        emotion: EmotionStyle | None = None,
        seed: int = DEFAULT_SEED,
        config: SessionConfig | None = None,
        clock: Clock | None = None,
    ) -> Session:
        return Session(self, portrait, emotion=emotion, seed=seed, config=config, clock=clock)


def iter_offline_motion(
    engine: Engine, audio: np.ndarray, *, seed: int = DEFAULT_SEED,
    emotion: EmotionStyle | None = None, chunk: int = SAMPLE_RATE,
    times: StageTimes | None = None,
) -> Iterator[np.ndarray]:  # fmt: skip
    """Stream ``audio`` (float32[n] 16 kHz) through the pipeline in ``chunk``-sample pieces,
    yielding motion blocks float32[m, 55]; in total exactly ``frames_covering(n, fps)`` frames."""
    audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
    pipe = engine.new_pipeline(seed=seed, emotion=emotion, times=times)
    total = frames_covering(audio.size, engine.fps)
    done = 0
    for start in range(0, audio.size, max(int(chunk), 1)):
        block = pipe.push(audio[start : start + chunk])
        block = block[: max(total - done, 0)]
        done += len(block)
        if len(block):
            yield block
    block = pipe.flush()[: max(total - done, 0)]
    done += len(block)
    if len(block):
        yield block
    if done < total:
        raise RuntimeError(f"motion pipeline produced {done} frames for {total} frames of audio")


def offline_motion(
    engine: Engine, audio: np.ndarray, *, seed: int = DEFAULT_SEED,
    emotion: EmotionStyle | None = None, chunk: int = SAMPLE_RATE,
) -> np.ndarray:  # fmt: skip
    """float32[n] 16 kHz audio -> float32[frames_covering(n, fps), 55] motion."""
    blocks = list(iter_offline_motion(engine, audio, seed=seed, emotion=emotion, chunk=chunk))
    return np.concatenate(blocks) if blocks else np.zeros((0, MOTION_DIM), np.float32)


def offline_render(
    engine: Engine, audio: np.ndarray, *, portrait: PortraitKey = None,
    seed: int = DEFAULT_SEED, emotion: EmotionStyle | None = None, batch: int = 16,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Audio -> (motion float32[T, 55], frames uint8[T, H, W, 3]) through the shared core."""
    motion = offline_motion(engine, audio, seed=seed, emotion=emotion)
    renderer = engine.renderer_for(portrait)
    frames = [renderer.render(motion[i : i + batch]) for i in range(0, len(motion), batch)]
    video = np.concatenate(frames) if frames else np.zeros((0, renderer.height, renderer.width, 3), np.uint8)
    return motion, video
