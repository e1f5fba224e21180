"""Offline rendering to mp4: a motion sequence (and optionally its audio) → H.264 yuv420p (+ AAC).

Video frame ``i`` has pts ``i`` at ``fps``; audio sample ``k`` has pts ``k`` at 16 kHz, both from
t0 = 0, so picture and sound line up exactly (emostream.streaming.sinks.mp4.Mp4Writer).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from emostream.arkit import EmotionStyle
from emostream.config import DEFAULT_FPS
from emostream.engine.features import features_for
from emostream.errors import DependencyError, InputError
from emostream.native_logs import quiet_onnxruntime
from emostream.render.base import Renderer
from emostream.streaming.sinks.mp4 import Mp4Writer

BATCH = 16


def render_to_mp4(
    renderer: Renderer,
    motion: np.ndarray,
    out: str | Path,
    *,
    fps: int = DEFAULT_FPS,
    audio: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Render float32[T, 55] and write ``out``; returns the number of frames written."""
    if len(motion) == 0:
        raise InputError("no motion frames to render")
    with Mp4Writer(out, width=renderer.width, height=renderer.height, fps=fps, audio=audio is not None) as w:
        if audio is not None:
            w.write_audio(np.asarray(audio, np.float32))
        for i in range(0, len(motion), BATCH):
            for frame in renderer.render(motion[i : i + BATCH]):
                w.write_video(frame)
            if progress is not None:
                progress(min(i + BATCH, len(motion)), len(motion))
    return len(motion)


def motion_from_audio(
    audio: np.ndarray,
    *,
    fps: int = DEFAULT_FPS,
    emotion: EmotionStyle | None = None,
    style: np.ndarray | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> np.ndarray:
    """The full offline motion pipeline: features → EmoDiff (+ lip refiner) → float32[T, 55].

    Raises DependencyError saying what is missing when the motion engine or its weights are not
    installed."""
    # deferred: torch (heavy), only for rendering from audio (--motion CSVs do not need it)
    try:
        from emostream.engine.motion import MotionEngine
    except ImportError as e:
        raise DependencyError(
            f"the audio-to-motion engine is not available in this installation ({e})"
        ) from e
    quiet_onnxruntime()  # before any ONNX Runtime session: its log lines only with --debug
    engine = MotionEngine.load(device=device, fps=fps)  # CheckpointError names the missing weights
    stream = engine.new_stream(seed=seed, emotion=emotion or EmotionStyle())
    if style is not None:
        stream.set_style(style)
    feats = features_for(audio, fps)
    return np.concatenate([stream.push(feats), stream.flush()], axis=0).astype(np.float32)
