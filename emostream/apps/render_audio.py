"""Speech file → talking-portrait mp4, streamed: memory stays bounded however long the file is.

The audio is decoded one block at a time (``iter_audio``); each block goes through the
features and the motion model (``Featurizer`` and ``MotionStream`` are streaming and chunk
invariant, so the motion equals the whole-file pass) and the frames that are ready are rendered
and written at once, with the block's audio, into the mp4 (``Mp4Writer``: a hidden temporary
file renamed on success, removed on any failure or interrupt). Nothing is held but one block,
the models' look-ahead and, with ``arkit_csv``, the motion rows (55 floats a frame) for the CSV.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from emostream.arkit import EmotionStyle
from emostream.config import DEFAULT_FPS, SAMPLE_RATE, frames_covering
from emostream.engine.features import Featurizer
from emostream.errors import AudioError, InputError
from emostream.media.audio import check_file, iter_audio
from emostream.render.base import Renderer
from emostream.streaming.sinks.mp4 import Mp4Writer

#: Audio decoded per step (samples): 10 s.
BLOCK = 10 * SAMPLE_RATE
#: Frames rendered per renderer call.
BATCH = 16


def render_audio(
    renderer: Renderer,
    audio: str | Path,
    out: str | Path,
    *,
    fps: int = DEFAULT_FPS,
    emotion: EmotionStyle | None = None,
    style: np.ndarray | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: Callable[[float], None] | None = None,
    keep_motion: bool = False,
) -> tuple[int, np.ndarray | None]:
    """Stream ``audio`` through the motion model and ``renderer`` into ``out`` (H.264 + AAC).
    Returns (frames written, the motion float32[T, 55] if ``keep_motion`` else None).
    ``progress(seconds of audio done)`` is called after each block."""
    # deferred: torch, onnxruntime (the motion model), after the inputs are checked
    from emostream.engine.motion import MotionEngine

    path = check_file(audio)
    engine = MotionEngine.load(device=device, fps=fps)  # CheckpointError names missing weights
    stream = engine.new_stream(seed=seed, emotion=emotion or EmotionStyle())
    if style is not None:
        stream.set_style(style)
    featurizer = Featurizer(fps)
    kept: list[np.ndarray] = []
    samples = written = 0
    with Mp4Writer(out, width=renderer.width, height=renderer.height, fps=fps, audio=True) as w:

        def emit(motion: np.ndarray, *, final: bool = False) -> None:
            nonlocal written
            if final:  # the look-ahead padding beyond the audio's last frame is dropped
                motion = motion[: max(frames_covering(samples, fps) - written, 0)]
            for i in range(0, len(motion), BATCH):
                for frame in renderer.render(motion[i : i + BATCH]):
                    w.write_video(frame)
            written += len(motion)
            if keep_motion and len(motion):
                kept.append(motion.astype(np.float32))

        for block in iter_audio(path, BLOCK):
            w.write_audio(block)
            samples += block.size
            emit(stream.push(featurizer.push(block)))
            if progress is not None:
                progress(samples / SAMPLE_RATE)
        if samples == 0:
            raise AudioError("the file holds no audio samples", path)
        emit(stream.push(featurizer.flush()), final=True)
        emit(stream.flush(), final=True)
        if written < frames_covering(samples, fps):
            raise InputError(f"the motion model produced {written} frames for {samples} samples", path)
    motion = np.concatenate(kept) if kept else None
    return written, motion
